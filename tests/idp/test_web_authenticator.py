"""The web authenticator's serving (``idp/web/authenticator.py``), in-process: its files and their types,
the CSP that keeps foreign script away from the keys, the manifest, ``config.json`` and its settings, the
service worker's scope and shell list, and the login page's "Open in app" link."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authserver.config import ConfigError
from idp.authenticator import AuthenticatorConfig
from idp.context import IdpServices
from idp.ns_client import NsClient
from idp.server import load_settings
from idp.web import create_app
from idp.web.authenticator import WEBAPP, shell_files, shell_version
from tests.fixtures.idp_offline import offline_idp_services

ISSUER = "http://idp.example.test"
SFS_HASH = "a" * 64
MC_HASH = "b" * 64
APP_CONFIG = json.dumps(
    {
        "sfs": {"uri": "wss://id.example.test/sfs/sigmai", "key_hash": SFS_HASH},
        "mc": {"uri": "wss://id.example.test/mc/sigmai", "key_hash": MC_HASH},
    }
)
NS_URI = "wss://id.example.test/ns/sigmai"
SETTINGS = {
    "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
    "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:8080",
    "NEXTAUTH_IDP_NS_API_KEY": "key",
    "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:9999/ns/websocket",
}


class LoginQrOnly(NsClient):
    """ns as the login page needs it here: a session that is not logged in, with its QR code."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "unused", "default")

    def session(self, nonce: str, *, client_ip: str = "", user_agent: str = "") -> dict[str, Any]:
        return {"loggedin": False, "loginqrdata": f"NA1.qr-for-{nonce[:8]}", "hsid": f"hsid-{nonce[:8]}"}


def make_services(tmp_path: Path, config: AuthenticatorConfig | None) -> IdpServices:
    return offline_idp_services(tmp_path / "idp.db", ISSUER, authenticator=config)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[IdpServices]:
    idp = make_services(tmp_path, AuthenticatorConfig.parse(APP_CONFIG, NS_URI))
    yield idp
    idp.engine.dispose()


@pytest.fixture
def app(services: IdpServices) -> Flask:
    return create_app(services, secret_key=b"k" * 32, websocket_url="ws://ns.example.test/ns/websocket")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def directives(response: object) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in policy.split("; ")}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/app/", "text/html; charset=utf-8"),
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/storage.js", "text/javascript; charset=utf-8"),
        ("/app/codes.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "text/css; charset=utf-8"),
        ("/app/manifest.webmanifest", "application/manifest+json"),
        ("/app/icons/icon.svg", "image/svg+xml; charset=utf-8"),
        ("/app/icons/icon-192.png", "image/png"),
        ("/app/sw.js", "text/javascript; charset=utf-8"),
        ("/app/config.json", "application/json"),
    ],
)
def test_each_file_has_its_type_and_the_strict_policy(
    client: FlaskClient, path: str, content_type: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == content_type
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert "camera=(self)" in answer.headers["Permissions-Policy"]
    policy = directives(answer)
    assert policy["default-src"] == "'none'"
    # Scripts from the IdP only: no inline script, no eval, no other host (an XSS would reach the keys).
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["form-action"] == "'none'"
    # Connections: the IdP and the three sigmai endpoints, nothing else.
    assert policy["connect-src"].split() == [
        "'self'",
        NS_URI,
        "wss://id.example.test/sfs/sigmai",
        "wss://id.example.test/mc/sigmai",
    ]


def test_the_page_has_no_inline_script_or_style(client: FlaskClient) -> None:
    page = client.get("/app/").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="app.js">']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"<[^>]+\son[a-z]+=", page), "an inline event handler would need 'unsafe-inline'"
    assert '<link rel="manifest" href="manifest.webmanifest">' in page


def test_without_a_slash_redirects_and_unknown_files_are_404(client: FlaskClient) -> None:
    moved = client.get("/app")
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/app/")
    for path in (
        "/app/nothing.js",
        "/app/../idp/server.py",
        "/app/%2e%2e/README.md",
        "/app/.hidden",
        "/app/icons/",
    ):
        assert client.get(path).status_code == 404, path


def test_shell_files_are_revalidated_and_conditional(client: FlaskClient) -> None:
    first = client.get("/app/app.js")
    assert first.headers["Cache-Control"] == "no-cache" and first.headers.get("ETag")
    again = client.get("/app/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_manifest_makes_the_app_installable(client: FlaskClient) -> None:
    manifest = client.get("/app/manifest.webmanifest").get_json(force=True)
    assert manifest["name"] and manifest["short_name"]
    assert manifest["start_url"] == "/app/" and manifest["scope"] == "/app/" and manifest["id"] == "/app/"
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    assert any("maskable" in icon.get("purpose", "") for icon in manifest["icons"])
    for icon in manifest["icons"]:
        answer = client.get("/app/" + icon["src"])
        assert answer.status_code == 200, icon["src"]
        if icon["type"] == "image/png":
            width, height = int.from_bytes(answer.data[16:20]), int.from_bytes(answer.data[20:24])
            assert f"{width}x{height}" == icon["sizes"]


def test_config_tells_where_the_services_are_and_is_never_stored(client: FlaskClient) -> None:
    answer = client.get("/app/config.json")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.get_json() == {
        "ns": {"uri": NS_URI},
        "sfs": {"uri": "wss://id.example.test/sfs/sigmai", "key_hash": SFS_HASH},
        "mc": {"uri": "wss://id.example.test/mc/sigmai", "key_hash": MC_HASH},
    }


def test_service_worker_scope_version_and_shell(client: FlaskClient) -> None:
    answer = client.get("/app/sw.js")
    assert answer.headers["Service-Worker-Allowed"] == "/app/"
    assert answer.headers["Cache-Control"] == "no-cache"
    source = answer.get_data(as_text=True)
    assert "__SHELL_VERSION__" not in source and f"'{shell_version()}'" in source
    listed = re.search(r"const SHELL = \[(.*?)\];", source, re.S)
    assert listed is not None
    names = set(re.findall(r"'([^']+)'", listed.group(1)))
    # The worker adds the vendored SDK from the vendor manifest when it installs.
    vendor = json.loads(client.get("/app/vendor/MANIFEST.json").data)["files"]
    names |= {f"vendor/{name}" for name in vendor if name.endswith(".js")}
    # Every file of the app is cached for offline use, except the worker itself, the vendor manifest
    # and the page under its own name (the page is cached as './'); config.json is never in the list.
    expected = {"./"} | set(shell_files()) - {"sw.js", "index.html", "vendor/MANIFEST.json"}
    assert names == expected
    assert "config.json" not in listed.group(1)


def test_shell_version_follows_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "webapp"
    copy.mkdir()
    for name in shell_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((WEBAPP / name).read_bytes())
    import idp.web.authenticator as module

    monkeypatch.setattr(module, "WEBAPP", copy)
    before = module.shell_version()
    (copy / "sw.js").write_text((copy / "sw.js").read_text() + "\n// the worker alone changes nothing\n")
    assert module.shell_version() == before
    (copy / "app.css").write_text((copy / "app.css").read_text() + "\n")
    assert module.shell_version() != before


def test_login_page_opens_the_app_with_its_code(client: FlaskClient) -> None:
    client.application.extensions["nextauth_idp"].ns = LoginQrOnly()
    page = client.get("/login").get_data(as_text=True)
    link = re.search(r'<a id="open-in-app" href="([^"]+)"[^>]*>', page)
    assert link is not None
    code = re.search(r'data-qrdata="([^"]+)"', page)
    assert code is not None
    assert link.group(1) == f"/app/#login={code.group(1)}"
    assert 'target="_blank"' in link.group(0) and 'rel="noopener"' in link.group(0)


def test_off_unless_configured(tmp_path: Path) -> None:
    idp = make_services(tmp_path, None)
    try:
        idp.ns = LoginQrOnly()
        client = create_app(idp, secret_key=b"k" * 32, websocket_url="ws://ns.example.test/ws").test_client()
        for path in ("/app", "/app/", "/app/config.json", "/app/sw.js", "/app/app.js"):
            assert client.get(path).status_code == 404, path
        assert "open-in-app" not in client.get("/login").get_data(as_text=True)
    finally:
        idp.engine.dispose()


def test_settings_turn_it_on_from_the_app_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "app-config.json"
    config_file.write_text(APP_CONFIG + "\n")
    settings = load_settings(
        {
            **SETTINGS,
            "NEXTAUTH_IDP_AUTHENTICATOR_CONFIG_FILE": str(config_file),
            "NEXTAUTH_IDP_AUTHENTICATOR_NS_URI": NS_URI,
        },
        data_dir=tmp_path,
    )
    assert settings.authenticator is not None
    assert settings.authenticator.sfs.key_hash == SFS_HASH and settings.authenticator.ns_uri == NS_URI
    assert load_settings(SETTINGS, data_dir=tmp_path).authenticator is None


def test_an_https_idp_needs_wss_endpoints(tmp_path: Path) -> None:
    environ = {
        **SETTINGS,
        "NEXTAUTH_IDP_PUBLIC_URL": "https://id.example.test",
        "NEXTAUTH_IDP_AUTHENTICATOR_CONFIG": APP_CONFIG,
        "NEXTAUTH_IDP_AUTHENTICATOR_NS_URI": "ws://id.example.test/ns/sigmai",
    }
    with pytest.raises(ConfigError, match=re.escape("use wss:// for ws://id.example.test/ns/sigmai")):
        load_settings(environ, data_dir=tmp_path)
    environ["NEXTAUTH_IDP_AUTHENTICATOR_NS_URI"] = NS_URI
    assert load_settings(environ, data_dir=tmp_path).authenticator is not None


@pytest.mark.parametrize(
    ("config", "ns_uri", "message"),
    [
        (APP_CONFIG, None, "set both or neither"),
        (None, NS_URI, "set both or neither"),
        ("not json", NS_URI, "JSON"),
        (json.dumps({"mc": {"uri": "wss://x/", "key_hash": MC_HASH}}), NS_URI, "sfs"),
        (json.dumps({"sfs": {"uri": "wss://x/", "key_hash": "ab"}}), NS_URI, "key_hash"),
        (json.dumps({"sfs": {"uri": "https://x/", "key_hash": SFS_HASH}}), NS_URI, "ws://"),
        # Each URI goes into the CSP: nothing may end the directive or add a source.
        (json.dumps({"sfs": {"uri": "wss://x/; script-src *", "key_hash": SFS_HASH}}), NS_URI, "sfs uri"),
        (json.dumps({"sfs": {"uri": "wss://x/ https://evil", "key_hash": SFS_HASH}}), NS_URI, "sfs uri"),
        (APP_CONFIG, "wss://x/ns?a=b", "ns sigmai URI"),
        (APP_CONFIG, "wss://x/ns'", "ns sigmai URI"),
        (json.dumps({"sfs": {"uri": "wss://x/", "key_hash": SFS_HASH}, "ns": {}}), NS_URI, "unknown"),
    ],
)
def test_settings_refuse_what_cannot_work(
    tmp_path: Path, config: str | None, ns_uri: str | None, message: str
) -> None:
    environ = dict(SETTINGS)
    if config is not None:
        environ["NEXTAUTH_IDP_AUTHENTICATOR_CONFIG"] = config
    if ns_uri is not None:
        environ["NEXTAUTH_IDP_AUTHENTICATOR_NS_URI"] = ns_uri
    with pytest.raises(ConfigError, match=message):
        load_settings(environ, data_dir=tmp_path)
