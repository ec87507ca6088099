"""The package graph: imports run one way, nextauth -> idp -> authserver -> nextauth_core -> sigmai.

One known exception: sigmai reads JSON with nextauth_core.jsonlimits, a module that imports nothing of the
project."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the project's packages it must not import
FORBIDDEN = {
    "sigmai": {"nextauth_core", "authserver", "idp", "nextauth", "mobilesdk"},
    "nextauth_core": {"authserver", "idp", "nextauth", "mobilesdk"},
    "authserver": {"idp", "nextauth", "mobilesdk"},
    "idp": {"nextauth", "mobilesdk"},
    "mobilesdk": {"authserver", "idp", "nextauth"},
}
ALLOWED_MODULES = {"nextauth_core.jsonlimits"}


def imported_names(path: Path) -> set[str]:
    """Dotted names a module imports; ``from a import b`` counts as ``a.b``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def allowed(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in ALLOWED_MODULES)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_arrow_runs_up(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_names(path))
        if name.split(".")[0] in FORBIDDEN[package] and not allowed(name)
    ]
    assert wrong == []
