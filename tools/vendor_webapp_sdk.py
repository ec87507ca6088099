"""Copy the JavaScript Mobile SDK, the @noble modules it imports and the QR decoder into ``webapp/vendor/``.

The web authenticator runs the SDK in the browser, served by the IdP, and ``make run`` must work on a fresh
clone without Node or npm. So the exact files the browser needs are committed: the SDK's ES modules from
``mobilesdk-js/src`` (without its Node-only module) and, following their imports, the @noble files at the
versions ``mobilesdk-js/package-lock.json`` pins. Browsers cannot resolve bare specifiers such as
``@noble/curves/ed25519.js`` without an import map, and an import map is an inline script the app's CSP does
not allow; so each bare specifier is rewritten to a relative path. Nothing else in a file changes.

The QR decoder (jsQR, for browsers without ``BarcodeDetector``) is the web app's own package
(``webapp/package.json``, pinned by ``webapp/package-lock.json``): its one browser build and its licence
are copied as they are, to ``vendor/jsqr/``; the app loads it as a classic script when it scans.

``webapp/vendor/MANIFEST.json`` records the package versions and the SHA-256 of every file.
``tests/test_webapp_vendor.py`` checks that the copy matches the manifest and the SDK's sources, and,
where ``mobilesdk-js/node_modules`` exists, that running this again changes nothing.

    python tools/vendor_webapp_sdk.py           # after `npm ci` in mobilesdk-js/ and webapp/, to update
    python tools/vendor_webapp_sdk.py --check   # exit 1 if the committed copy is not what it would write
"""

import argparse
import hashlib
import json
import posixpath
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SDK = REPO / "mobilesdk-js"
WEBAPP = REPO / "webapp"
TARGET = WEBAPP / "vendor"
# The decoder's files: where they are in its package, and where they go under vendor/.
DECODER = {"jsqr/jsQR.js": "dist/jsQR.js", "jsqr/LICENSE": "LICENSE"}
ENTRY = "index.js"  # the SDK's browser entry: everything but src/node.js
# Static imports and re-exports at the start of a line (JSDoc examples start with '*' and are left alone);
# one statement may span lines. Dynamic import() (the SDK's Node-only 'ws') is not followed.
IMPORT = re.compile(
    r"""^(?P<head>[ \t]*(?:(?:import|export)\b[^;'"]*?\bfrom[ \t]*|import[ \t]*))"""
    r"""(?P<quote>['"])(?P<spec>[^'"\n]+)(?P=quote)""",
    re.MULTILINE,
)


class VendorError(Exception):
    pass


def _imports(source: str) -> list[str]:
    return [match.group("spec") for match in IMPORT.finditer(source)]


def _resolve_bare(spec: str, node_modules: Path) -> tuple[str, Path]:
    """``@noble/curves/ed25519.js`` -> (``noble/curves/ed25519.js``, its file), through the package's
    ``exports`` map, so only what the package publishes is used."""
    found = re.fullmatch(r"@noble/([a-z]+)/(.+)", spec)
    if not found:
        raise VendorError(f"unexpected bare import {spec!r}: only @noble packages are vendored")
    package, subpath = found.groups()
    manifest = json.loads((node_modules / "@noble" / package / "package.json").read_text())
    exported = manifest.get("exports", {}).get("./" + subpath)
    if isinstance(exported, dict):
        exported = exported.get("import") or exported.get("default")
    if not isinstance(exported, str):
        raise VendorError(f"{spec}: not exported by @noble/{package}")
    relative = posixpath.normpath(exported)
    return f"noble/{package}/{relative}", node_modules / "@noble" / package / relative


def collect(sdk: Path, node_modules: Path | None) -> dict[str, bytes]:
    """Every file the browser needs, by its path under ``webapp/vendor/``, imports rewritten; without
    ``node_modules`` only the SDK's own files (what a check can compare on a clone without npm)."""
    files: dict[str, bytes] = {}
    pending: list[tuple[str, Path]] = [(f"mobilesdk/{ENTRY}", sdk / "src" / ENTRY)]
    while pending:
        name, path = pending.pop()
        if name in files:
            continue
        if not path.is_file():
            raise VendorError(f"{path} is missing (run `npm ci` in mobilesdk-js/ first?)")
        source = path.read_text(encoding="utf-8")

        def rewrite(match: re.Match[str], name: str = name, path: Path = path) -> str:
            spec = match.group("spec")
            if spec.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), spec))
                origin = (path.parent / spec).resolve()
            elif node_modules is None:
                # Without the packages: the SDK's own files only, @noble paths as the packages export
                # them (each "./x.js" as itself), not followed.
                found = re.fullmatch(r"@noble/([a-z]+)/([a-z0-9_/-]+\.js)", spec)
                if not found:
                    raise VendorError(f"unexpected bare import {spec!r}")
                target = f"noble/{found.group(1)}/{found.group(2)}"
                spec = posixpath.relpath(target, posixpath.dirname(name))
                return f"{match.group('head')}{match.group('quote')}{spec}{match.group('quote')}"
            else:
                target, origin = _resolve_bare(spec, node_modules)
                spec = posixpath.relpath(target, posixpath.dirname(name))
                if not spec.startswith("."):
                    spec = "./" + spec
            if not target.startswith(("mobilesdk/", "noble/")):
                raise VendorError(f"{name} imports {spec}, outside the vendored tree")
            pending.append((target, origin))
            return f"{match.group('head')}{match.group('quote')}{spec}{match.group('quote')}"

        files[name] = IMPORT.sub(rewrite, source).encode("utf-8")
    if node_modules is not None:
        for package in sorted({name.split("/")[1] for name in files if name.startswith("noble/")}):
            files[f"noble/{package}/LICENSE"] = (node_modules / "@noble" / package / "LICENSE").read_bytes()
    return files


def decoder_files(webapp: Path) -> dict[str, bytes]:
    """The QR decoder's files, by their path under ``webapp/vendor/``, from ``webapp/node_modules``."""
    package = webapp / "node_modules" / "jsqr"
    missing = [source for source in DECODER.values() if not (package / source).is_file()]
    if missing:
        raise VendorError(f"{package} lacks {', '.join(missing)} (run `npm ci` in webapp/ first?)")
    return {name: (package / source).read_bytes() for name, source in DECODER.items()}


def locked_versions(sdk: Path, webapp: Path = WEBAPP) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, prefix in ((sdk, "node_modules/@noble/"), (webapp, "node_modules/jsqr")):
        lock = json.loads((folder / "package-lock.json").read_text())
        found |= {
            name.removeprefix("node_modules/"): entry["version"]
            for name, entry in lock.get("packages", {}).items()
            if name.startswith(prefix)
        }
    return found


def manifest(files: dict[str, bytes], sdk: Path) -> dict[str, object]:
    used = {"@noble/" + name.split("/")[1] for name in files if name.startswith("noble/")}
    used |= {"jsqr"} & {name.split("/")[0] for name in files}
    return {
        "about": "Written by tools/vendor_webapp_sdk.py; do not edit by hand.",
        "sdk": "mobilesdk-js/src",
        "packages": {name: version for name, version in sorted(locked_versions(sdk).items()) if name in used},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def write(target: Path, files: dict[str, bytes], sdk: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    for name, data in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    (target / "MANIFEST.json").write_text(json.dumps(manifest(files, sdk), indent=2) + "\n")


def differences(target: Path, files: dict[str, bytes], sdk: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "vendor"
        write(fresh, files, sdk)
        ours = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
        theirs = {p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file()}
        changed = sorted(
            name
            for name in ours | theirs
            if name not in ours
            or name not in theirs
            or (target / name).read_bytes() != (fresh / name).read_bytes()
        )
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    node_modules = SDK / "node_modules"
    try:
        files = collect(SDK, node_modules if node_modules.is_dir() else None)
        files |= decoder_files(WEBAPP)
    except VendorError as exc:
        sys.stderr.write(f"vendor: {exc}\n")
        return 2
    if args.check:
        changed = differences(TARGET, files, SDK)
        for name in changed:
            sys.stderr.write(f"vendor: webapp/vendor/{name} is not what tools/vendor_webapp_sdk.py writes\n")
        return 1 if changed else 0
    write(TARGET, files, SDK)
    sys.stdout.write(f"wrote {len(files)} files to {TARGET.relative_to(REPO)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
