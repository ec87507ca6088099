"""Configuration: every variable also as _FILE, clear errors that name the variable and never the secret."""

import re
import secrets
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from authserver.config import ConfigError, Listen, load_config, read_setting, unknown_variables
from authserver.storage.kv import open_kv
from tests.fixtures.tls import issue, make_ca

SECRET = "s3cr3t-value-that-must-not-leak"


def test_defaults_standalone_and_all_in_one() -> None:
    ns = load_config("ns", {})
    assert ns.listen == {
        "http": Listen("0.0.0.0", 8080),
        "websocket": Listen("0.0.0.0", 9999),
        "sigmai": Listen("0.0.0.0", 8888),
        "admin": Listen("0.0.0.0", 9613),
    }
    assert ns.db_uri == "sqlite:///.nextauth/ns.db" and ns.kv_uri is None
    sfs = load_config("sfs", {}, port_offset_profile="all-in-one")
    assert sfs.listen == {"sigmai": Listen("127.0.0.1", 8889), "admin": Listen("127.0.0.1", 9614)}
    mc = load_config("mc", {}, port_offset_profile="all-in-one")
    assert mc.listen["grpc"] == Listen("127.0.0.1", 9090) and mc.listen["http"] == Listen("127.0.0.1", 8081)


def test_component_setting_wins_over_shared_one() -> None:
    env = {"NEXTAUTH_DB_URI": "postgresql://shared/db", "NEXTAUTH_SFS_DB_URI": "postgresql://sfs/db"}
    assert load_config("sfs", env).db_uri == "postgresql://sfs/db"
    assert load_config("mc", env).db_uri == "postgresql://shared/db"


def test_file_variant_and_trailing_newline(tmp_path: Path) -> None:
    secret_file = tmp_path / "db"
    secret_file.write_text("postgresql://user:pw@db/nextauth\n")
    assert read_setting("NEXTAUTH_NS_DB_URI", {"NEXTAUTH_NS_DB_URI_FILE": str(secret_file)}) == (
        "postgresql://user:pw@db/nextauth"
    )


def test_both_value_and_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_DB_URI and NEXTAUTH_NS_DB_URI_FILE"):
        read_setting("NEXTAUTH_NS_DB_URI", {"NEXTAUTH_NS_DB_URI": SECRET, "NEXTAUTH_NS_DB_URI_FILE": "/x"})


def test_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_ROOT_API_KEY_FILE") as error:
        read_setting("NEXTAUTH_NS_ROOT_API_KEY", {"NEXTAUTH_NS_ROOT_API_KEY_FILE": str(tmp_path / "nope")})
    assert "nope" in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("NEXTAUTH_NS_HTTP_LISTEN", "abc", "HOST:PORT"),
        ("NEXTAUTH_NS_HTTP_LISTEN", "0.0.0.0:70000", "1 to 65535"),
        ("NEXTAUTH_NS_HTTP_LISTEN", "[::1:80", "HOST:PORT|brackets"),
        ("NEXTAUTH_NS_SIGMAI_HANDSHAKE_TIMEOUT", "soon", "number"),
        ("NEXTAUTH_NS_SIGMAI_MAX_FRAME_BYTES", "-5", "greater than 0"),
        ("NEXTAUTH_NS_LOG_LEVEL", "LOUD", "DEBUG"),
        ("NEXTAUTH_NS_KV_URI", "memcached://x", "redis://"),
        ("NEXTAUTH_NS_HTTP_CLIENT_AUTH", "maybe", "none"),
    ],
)
def test_bad_values_fail_naming_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: .*({message})"):
        load_config("ns", {variable: value})


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_identity_key_must_be_ed25519() -> None:
    good = _pem(ed25519.Ed25519PrivateKey.generate())
    assert load_config("sfs", {"NEXTAUTH_SFS_IDENTITY_KEY": good}).identity_key_pem == good.encode()
    wrong = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match="NEXTAUTH_SFS_IDENTITY_KEY: must be an Ed25519 key") as error:
        load_config("sfs", {"NEXTAUTH_SFS_IDENTITY_KEY": wrong})
    assert "PRIVATE KEY" not in str(error.value)
    with pytest.raises(ConfigError, match="NEXTAUTH_SFS_IDENTITY_KEY") as error:
        load_config("sfs", {"NEXTAUTH_SFS_IDENTITY_KEY": SECRET})
    assert SECRET not in str(error.value)


def test_tls_key_and_certificate_go_together_and_must_match() -> None:
    ca_key, ca = make_ca()
    key, certificate = issue(ca_key, ca, "server")
    other_key, _ = issue(ca_key, ca, "other")
    env = {"NEXTAUTH_NS_SIGMAI_TLS_KEY": key, "NEXTAUTH_NS_SIGMAI_TLS_CERTIFICATE": certificate}
    assert set(load_config("ns", env).tls) == {"sigmai"}
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_SIGMAI_TLS_CERTIFICATE: needed too"):
        load_config("ns", {"NEXTAUTH_NS_SIGMAI_TLS_KEY": key})
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_SIGMAI_TLS_KEY: does not match") as error:
        load_config("ns", {**env, "NEXTAUTH_NS_SIGMAI_TLS_KEY": other_key})
    assert "PRIVATE KEY" not in str(error.value)
    with pytest.raises(ConfigError, match="NEXTAUTH_SFS_HTTP_TLS_KEY: sfs has no http endpoint"):
        load_config(
            "sfs", {"NEXTAUTH_SFS_HTTP_TLS_KEY": key, "NEXTAUTH_SFS_HTTP_TLS_CERTIFICATE": certificate}
        )


def test_client_certificates_need_tls_and_a_ca() -> None:
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_HTTP_CLIENT_CA: needed"):
        load_config("ns", {"NEXTAUTH_NS_HTTP_CLIENT_AUTH": "required-ca"})
    _, ca = make_ca()
    with pytest.raises(ConfigError, match="NEXTAUTH_NS_HTTP_CLIENT_AUTH: client certificates need TLS"):
        load_config("ns", {"NEXTAUTH_NS_HTTP_CLIENT_AUTH": "required", "NEXTAUTH_NS_HTTP_CLIENT_CA": ca})


def test_unknown_variables_are_reported() -> None:
    env = {
        "NEXTAUTH_NS_DB_URL": "typo",
        "NEXTAUTH_NS_DB_URI": "ok",
        "NEXTAUTH_SFS_PIN_MAX_ATTEMPTS_FILE": "/x",
        "NEXTAUTH_TEST_REDIS_URI": "ignored",
        "HOME": "/root",
    }
    assert unknown_variables(env) == ["NEXTAUTH_NS_DB_URL"]


def test_secrets_stay_out_of_the_repr() -> None:
    pem = _pem(ed25519.Ed25519PrivateKey.generate())
    config = load_config(
        "ns", {"NEXTAUTH_DB_URI": f"postgresql://app:{SECRET}@db/ns", "NEXTAUTH_NS_IDENTITY_KEY": pem}
    )
    assert SECRET not in repr(config) and "PRIVATE KEY" not in repr(config)


@pytest.mark.redis
def test_kv_prefix_is_shared_checked_and_reaches_the_store(redis_uri: str) -> None:
    """Deployments sharing one Redis keep apart by the prefix: every key ns writes carries it."""
    assert load_config("ns", {}).kv_prefix == "nextauth:"
    assert load_config("sfs", {"NEXTAUTH_KV_PREFIX": "shop-a:"}).kv_prefix == "shop-a:"
    assert load_config("sfs", {"NEXTAUTH_KV_PREFIX": "a:", "NEXTAUTH_SFS_KV_PREFIX": "b:"}).kv_prefix == "b:"
    for bad in ("with space", "x" * 65, "new\nline", "é:"):
        with pytest.raises(ConfigError, match="NEXTAUTH_NS_KV_PREFIX"):
            load_config("ns", {"NEXTAUTH_NS_KV_PREFIX": bad})
    prefix = f"test-prefix-{secrets.token_hex(6)}:"
    config = load_config("ns", {"NEXTAUTH_KV_URI": redis_uri, "NEXTAUTH_KV_PREFIX": prefix})
    store = open_kv(config.kv_uri, prefix=config.kv_prefix)
    client = redis.Redis.from_url(redis_uri)
    try:
        store.set("probe", b"1", ttl=30)
        assert client.get(prefix + "probe") == b"1"
        assert client.get("nextauth:probe") is None
    finally:
        client.delete(prefix + "probe")


def test_unknown_idp_variables_are_reported() -> None:
    from idp.server import unknown_variables as unknown_idp_variables

    env = {
        "NEXTAUTH_IDP_PUBLIC_URL": "https://login.example.com",
        "NEXTAUTH_IDP_SECRET_KEY_FILE": "/run/secrets/idp",
        "NEXTAUTH_IDP_RATE_LIMIT_LOGIN": "10/minute",
        "NEXTAUTH_IDP_FORWARD_AUTH_RULES_FILE": "/etc/rules.yaml",
        "NEXTAUTH_IDP_SAML_NAMEID_SECRET": "s" * 32,
        "NEXTAUTH_IDP_LOG_LEVEL": "DEBUG",
        "NEXTAUTH_IDP_PUBLIK_URL": "https://login.example.com",
        "NEXTAUTH_IDP_FORWARD_AUTH_RULEZ": "{}",
        "NEXTAUTH_NS_DB_URL": "sqlite://",  # a component's: reported by authserver.config, not here
    }
    assert unknown_idp_variables(env) == ["NEXTAUTH_IDP_FORWARD_AUTH_RULEZ", "NEXTAUTH_IDP_PUBLIK_URL"]


def test_an_idp_typo_is_logged_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nextauth import idp_runner

    monkeypatch.setenv("NEXTAUTH_IDP_SESION_SECONDS", "600")
    with caplog.at_level("WARNING", logger="nextauth"):
        idp_runner._warn_unknown_settings()
    assert "ignoring unknown setting NEXTAUTH_IDP_SESION_SECONDS (a typo?)" in caplog.text


def test_every_component_setting_the_code_spells_is_known() -> None:
    """A setting read in authserver/ but missing from the declarations would be reported as a typo."""
    root = Path(__file__).resolve().parents[1]
    spelled: set[str] = set()
    for path in [*(root / "authserver").rglob("*.py"), *(root / "nextauth").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        spelled |= set(re.findall(r"NEXTAUTH_(?:NS|SFS|MC)_[A-Z0-9_]*[A-Z0-9]", text))
    assert spelled
    assert unknown_variables(dict.fromkeys(spelled, "x")) == []
