"""The web authenticator's vendored copy of the JavaScript Mobile SDK, its @noble modules and the jsQR
decoder (``webapp/vendor/``, written by ``tools/vendor_webapp_sdk.py``) is exactly what the tool writes: every
file as its manifest records it, the SDK's files as ``mobilesdk-js/src`` holds them today, the packages at
the versions the lock files pin, and, where ``npm ci`` has run, the whole copy byte for byte."""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "webapp" / "vendor"


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_webapp_sdk", REPO / "tools" / "vendor_webapp_sdk.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def manifest() -> dict:  # type: ignore[type-arg]
    return json.loads((VENDOR / "MANIFEST.json").read_text())  # type: ignore[no-any-return]


def test_every_file_is_as_the_manifest_records_it() -> None:
    recorded = manifest()["files"]
    present = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert present == set(recorded)
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_sdk_copy_is_current() -> None:
    """A change to mobilesdk-js/src needs `python tools/vendor_webapp_sdk.py` (no npm needed for this)."""
    vendor = tool()
    fresh = vendor.collect(vendor.SDK, None)
    assert fresh, "the SDK's sources were not found"
    stale = [name for name, data in fresh.items() if (VENDOR / name).read_bytes() != data]
    assert stale == [], f"run python tools/vendor_webapp_sdk.py: {stale}"
    vendored = {name for name in manifest()["files"] if name.startswith("mobilesdk/")}
    assert vendored == set(fresh)


def test_package_versions_are_the_locked_ones() -> None:
    """@noble at the versions mobilesdk-js/package-lock.json pins, jsQR at webapp/package-lock.json's."""
    vendor = tool()
    locked = vendor.locked_versions(vendor.SDK)
    assert manifest()["packages"] == {name: locked[name] for name in manifest()["packages"]}
    assert set(manifest()["packages"]) == {"@noble/ciphers", "@noble/curves", "@noble/hashes", "jsqr"}


def test_only_relative_imports_remain() -> None:
    """A bare specifier would need an import map, an inline script the app's CSP refuses."""
    vendor = tool()
    for path in VENDOR.rglob("*.js"):
        for spec in vendor._imports(path.read_text(encoding="utf-8")):
            assert spec.startswith("./") or spec.startswith("../"), f"{path}: {spec}"


def test_the_whole_copy_is_what_the_tool_writes() -> None:
    vendor = tool()
    if not (vendor.SDK / "node_modules").is_dir() or not (vendor.WEBAPP / "node_modules").is_dir():
        pytest.skip("node_modules missing in mobilesdk-js/ or webapp/ (npm ci): packages not compared")
    assert vendor.main(["--check"]) == 0
