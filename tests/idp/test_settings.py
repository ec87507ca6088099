"""IdP settings: defaults that run on a laptop, clear errors for what cannot work."""

from pathlib import Path

import pytest

from authserver.config import ConfigError
from idp.server import load_settings
from idp.web import safe_next

BASE = {
    "NEXTAUTH_IDP_SECRET_KEY": "k" * 40,
    "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:8080",
    "NEXTAUTH_IDP_NS_API_KEY": "key",
    "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:9999/ns/websocket",
}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(BASE, data_dir=tmp_path)
    assert settings.db_uri == f"sqlite:///{tmp_path / 'idp.db'}"
    assert settings.kv_uri is None and settings.cookie_domain is None
    assert settings.session_seconds == 8 * 3600 and settings.ns_check_seconds == 15
    assert settings.public_url == "http://0.0.0.0:8000"
    assert settings.oidc_poll_seconds == 5 and settings.device_code_seconds == 600
    assert "k" * 40 not in repr(settings) and "sqlite" not in repr(settings)  # secrets stay out of logs


def test_shared_database_and_store_settings_apply(tmp_path: Path) -> None:
    settings = load_settings(
        {**BASE, "NEXTAUTH_DB_URI": "postgresql://db/shared", "NEXTAUTH_KV_URI": "redis://cache:6379/0"},
        data_dir=tmp_path,
    )
    assert settings.db_uri == "postgresql://db/shared" and settings.kv_uri == "redis://cache:6379/0"
    own = load_settings(
        {**BASE, "NEXTAUTH_DB_URI": "postgresql://db/shared", "NEXTAUTH_IDP_DB_URI": "postgresql://db/idp"},
        data_dir=tmp_path,
    )
    assert own.db_uri == "postgresql://db/idp"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NEXTAUTH_IDP_SESSION_SECONDS", "10", "SESSION_SECONDS"),
        ("NEXTAUTH_IDP_SESSION_SECONDS", "soon", "SESSION_SECONDS"),
        ("NEXTAUTH_IDP_COOKIE_DOMAIN", "example.com/path", "COOKIE_DOMAIN"),
        ("NEXTAUTH_IDP_KV_URI", "memcached://x", "KV_URI"),
        ("NEXTAUTH_IDP_NS_CHECK_SECONDS", "0.2", "NS_CHECK_SECONDS"),
        ("NEXTAUTH_IDP_PUBLIC_URL", "id.example.com", "PUBLIC_URL"),
        ("NEXTAUTH_IDP_PUBLIC_URL", "https://id.example.com/?x", "PUBLIC_URL"),
        ("NEXTAUTH_IDP_SECRET_KEY", "short", "SECRET_KEY"),
        ("NEXTAUTH_IDP_OIDC_POLL_SECONDS", "0", "OIDC_POLL_SECONDS"),
        ("NEXTAUTH_IDP_OIDC_POLL_SECONDS", "61", "OIDC_POLL_SECONDS"),
        ("NEXTAUTH_IDP_OIDC_POLL_SECONDS", "1.5", "OIDC_POLL_SECONDS"),
    ],
)
def test_bad_values_are_refused_by_name(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**BASE, name: value}, data_dir=tmp_path)


def test_public_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(
        {**BASE, "NEXTAUTH_IDP_PUBLIC_URL": "https://id.example.com/"}, data_dir=tmp_path
    )
    assert settings.public_url == "https://id.example.com"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil",
        "/a\r\nSet-Cookie: x=1",
        "/a\tb",
        "/a\x00",
    ],
)
def test_login_returns_only_to_plain_local_paths(target: str) -> None:
    assert safe_next(target) == "/"


def test_local_paths_with_queries_are_kept() -> None:
    assert safe_next("/oidc/authorize?client_id=a&redirect_uri=https%3A%2F%2Fx") == (
        "/oidc/authorize?client_id=a&redirect_uri=https%3A%2F%2Fx"
    )
