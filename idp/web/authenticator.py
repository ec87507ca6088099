"""The web authenticator: the installable app (a PWA, the repository's ``webapp/`` folder) at ``/app/``.

A person without the native app can use a phone's browser as the authenticator. The IdP serves the app's
files and ``/app/config.json``, which tells the app where ns, the SFS and the MC are and which SFS and MC
keys to pin: what a native app's publisher bakes into the app (``app-config.json`` of ``nextauth all``).

Why the headers are as they are: the app's keys live in the browser's storage for this origin, so any
script that runs on the IdP's origin could use them. The app's pages therefore get a CSP that allows
scripts only from the IdP itself (no inline script, no ``eval``), connections only to the IdP and the three
sigmai endpoints, no framing, no ``<base>``, no forms and no plugins; the camera only for the app itself.
The service worker keeps the shell for offline use and never caches an answer of an API, and
``config.json`` is never stored by the browser: a changed configuration reaches the app at once.

The app is off unless the operator configures it (``NEXTAUTH_IDP_AUTHENTICATOR_CONFIG``); ``nextauth all``
turns it on for its own services. See docs/web-authenticator.md.
"""

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, request, send_file

from idp.authenticator import AuthenticatorConfig
from idp.context import services

# The repository's top-level webapp/ folder; an installed package (the Docker image) names its copy.
WEBAPP = Path(os.environ.get("NEXTAUTH_IDP_WEBAPP_DIR") or Path(__file__).resolve().parents[2] / "webapp")

PATH = "/app/"
# Werkzeug adds "; charset=utf-8" to the text types (and SVG) itself.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
# The file names the app may have: letters, digits, '-', '_', '.', in sub-folders; nothing hidden.
_SAFE_NAME = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
# sw.js names its cache after this placeholder; the server puts in a hash of the shell, so every change
# to a shell file installs a new service worker, which fetches the new shell.
VERSION_PLACEHOLDER = "__SHELL_VERSION__"
# What npm keeps beside the app (its package files, and node_modules after `npm ci`): the app uses only
# the copy in vendor/, so none of it is served or part of the shell's version.
_NOT_SERVED = {"node_modules", "package.json", "package-lock.json"}

blueprint = Blueprint("authenticator", __name__)


def _config() -> AuthenticatorConfig:
    config = services().authenticator
    if config is None:
        abort(404)
    return config


def content_security_policy(config: AuthenticatorConfig) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "manifest-src 'self'",
            "worker-src 'self'",
            "connect-src 'self' " + " ".join(config.connect_sources()),
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def _headers(response: Response, config: AuthenticatorConfig) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(config)
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=(), payment=()"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def shell_files() -> list[str]:
    """Every file of the app, relative to ``webapp/``: the only names served, and what the service worker
    keeps for offline use."""
    return sorted(
        path.relative_to(WEBAPP).as_posix()
        for path in WEBAPP.rglob("*")
        if path.is_file()
        and path.suffix in CONTENT_TYPES
        and _SAFE_NAME.match(path.relative_to(WEBAPP).as_posix())
        and path.relative_to(WEBAPP).parts[0] not in _NOT_SERVED
    )


_versions: dict[tuple[tuple[str, int, int], ...], str] = {}


def shell_version() -> str:
    """A hash of every shell file but the worker; computed again only when a file's size or time changes."""
    files = [name for name in shell_files() if name != "sw.js"]
    infos = [(name, (WEBAPP / name).stat()) for name in files]
    stats = tuple((name, info.st_mtime_ns, info.st_size) for name, info in infos)
    if stats not in _versions:
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0" + (WEBAPP / name).read_bytes() + b"\0")
        _versions.clear()
        _versions[stats] = digest.hexdigest()[:16]
    return _versions[stats]


def _file(name: str) -> Response:
    if not _SAFE_NAME.match(name) or name not in shell_files():
        abort(404)
    path = WEBAPP / name
    response = send_file(path, mimetype=CONTENT_TYPES[path.suffix], conditional=True, max_age=0)
    # Always asked again (an ETag makes that cheap): offline use is the service worker's job.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.app_context_processor
def authenticator_link() -> dict[str, Any]:
    """The login page offers "Open in app" (``/app/#login=<code>``) only when the app is served."""
    return {"authenticator_url": PATH if services().authenticator is not None else None}


@blueprint.get("/app")
def without_slash() -> Any:
    _config()
    return redirect(PATH, code=301)


@blueprint.get(PATH)
def index() -> Response:
    return _headers(_file("index.html"), _config())


@blueprint.get(PATH + "config.json")
def config_json() -> Response:
    config = _config()
    response = jsonify(config.to_json())
    # The app reads it when it starts; an operator's change (a new SFS key) must not wait in a cache.
    response.headers["Cache-Control"] = "no-store"
    return _headers(response, config)


@blueprint.get(PATH + "sw.js")
def service_worker() -> Response:
    config = _config()
    source = (WEBAPP / "sw.js").read_text(encoding="utf-8").replace(VERSION_PLACEHOLDER, shell_version())
    response = Response(source, mimetype="text/javascript")
    response.headers["Service-Worker-Allowed"] = PATH
    # Browsers look for a new service worker on each visit; no cache of ours may hide it.
    response.headers["Cache-Control"] = "no-cache"
    return _headers(response, config)


@blueprint.get(PATH + "<path:name>")
def shell_file(name: str) -> Response:
    config = _config()
    if request.path.endswith("/"):
        abort(404)
    return _headers(_file(name), config)
