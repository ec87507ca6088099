"""Run the IdP: its settings (``NEXTAUTH_IDP_*``, each also as ``_FILE``) and its gevent server."""

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gevent.pywsgi import WSGIServer

from authserver.config import ConfigError, Listen, parse_listen, read_setting
from idp.ns_client import NsClient
from idp.web import create_app


@dataclass(frozen=True)
class IdpSettings:
    listen: Listen
    ns_api_url: str
    ns_api_key: str
    ns_server: str
    websocket_url: str
    secret_key: bytes
    public_url: str


def load_settings(
    environ: Mapping[str, str],
    *,
    data_dir: Path,
    defaults: Mapping[str, str] | None = None,
    embedded: bool = False,
) -> IdpSettings:
    """``defaults`` fill in what the all-in-one mode knows (where its ns runs, its root API key)."""
    defaults = defaults or {}

    def get(flag: str, required: bool = True) -> str | None:
        name = f"NEXTAUTH_IDP_{flag}"
        value = read_setting(name, environ) or defaults.get(flag)
        if value is None and required:
            raise ConfigError(f"{name}: required")
        return value

    listen_name = "NEXTAUTH_IDP_LISTEN"
    listen = parse_listen(
        listen_name, get("LISTEN", required=False) or ("127.0.0.1:8000" if embedded else "0.0.0.0:8000")
    )
    secret = get("SECRET_KEY", required=not embedded)
    if secret is None:
        # Embedded mode only: a cookie-signing key kept beside the SQLite files, stable across restarts.
        path = data_dir / "idp-secret-key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        secret = path.read_text().strip()
    if len(secret) < 32:
        raise ConfigError("NEXTAUTH_IDP_SECRET_KEY: must be at least 32 characters of random text")
    websocket_url = get("NS_WEBSOCKET_URL") or ""
    if not websocket_url.startswith(("ws://", "wss://")):
        raise ConfigError(
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL: expected the ws:// or wss:// URL browsers use for ns"
        )
    api_url = get("NS_API_URL") or ""
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError("NEXTAUTH_IDP_NS_API_URL: expected the http(s):// URL of the ns REST API")
    return IdpSettings(
        listen=listen,
        ns_api_url=api_url,
        ns_api_key=get("NS_API_KEY") or "",
        ns_server=get("NS_SERVER", required=False) or "default",
        websocket_url=websocket_url,
        secret_key=secret.encode(),
        public_url=get("PUBLIC_URL", required=False) or f"http://{listen.host}:{listen.port}",
    )


def build_server(settings: IdpSettings) -> WSGIServer:
    ns = NsClient(settings.ns_api_url, settings.ns_api_key, settings.ns_server)
    app = create_app(
        ns,
        secret_key=settings.secret_key,
        websocket_url=settings.websocket_url,
        public_https=settings.public_url.startswith("https://"),
    )
    return WSGIServer((settings.listen.host, settings.listen.port), app, log=None)
