"""REST access: API keys with roles, and TLS peer verification where only a *listed* client certificate
grants anything; a certificate merely signed by the accepted CA gets a connection and no access."""

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest

from authserver import tls
from authserver.config import TLSMaterial
from tests.fixtures import forked_commands
from tests.fixtures.system import RunningSystem, start_system, stop_system
from tests.fixtures.tls import issue, make_ca


def _nextauth(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = forked_commands.run("nextauth.cli", args, env=env, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("secured")
    ca_key, ca = make_ca()
    server_key, server_cert = issue(ca_key, ca, "ns")
    listed = issue(ca_key, ca, "billing-app")
    unlisted = issue(ca_key, ca, "someone-else")
    (base / "listed.pem").write_text(listed[1])
    env = {
        "NEXTAUTH_DATA_DIR": str(base / "data"),
        "NEXTAUTH_NS_HTTP_TLS_KEY": server_key,
        "NEXTAUTH_NS_HTTP_TLS_CERTIFICATE": server_cert,
        "NEXTAUTH_NS_HTTP_CLIENT_AUTH": "required-ca",
        "NEXTAUTH_NS_HTTP_CLIENT_CA": ca,
    }
    (base / "data").mkdir()
    cli_env = {"PATH": "/usr/bin:/bin", **env}
    _nextauth(
        cli_env,
        "clientcert",
        "--name",
        "billing",
        "--roles",
        "servers",
        "--certificate",
        str(base / "listed.pem"),
    )
    sessions_key = _nextauth(cli_env, "apikey", "--name", "web", "--roles", "sessions")["api_key"]
    system = start_system(base / "data", command=("ns",), extra_env=env)
    yield {
        "system": system,
        "ca": ca,
        "listed": listed,
        "unlisted": unlisted,
        "sessions_key": sessions_key,
        "foreign": issue(*make_ca(), "stranger"),
    }
    stop_system(system)


def _get(setup: dict, path: str, certificate: tuple[str, str] | None, api_key: str | None = None) -> int:
    system: RunningSystem = setup["system"]
    context = tls.client_context(
        ca_pem=setup["ca"].encode(),
        certificate=TLSMaterial(certificate[0].encode(), certificate[1].encode(), "k", "c")
        if certificate
        else None,
    )
    request = urllib.request.Request(f"https://127.0.0.1:{system.port('ns', 'http')}{path}")
    if api_key:
        request.add_header("X-apikey", api_key)
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_listed_certificate_gets_its_roles(secured: dict) -> None:
    assert _get(secured, "/v1/servers", secured["listed"]) == 200
    assert _get(secured, "/v1/servers/default/users/x", secured["listed"]) == 403  # no "users" role


def test_ca_signed_but_unlisted_certificate_gets_nothing(secured: dict) -> None:
    assert _get(secured, "/v1/servers", secured["unlisted"]) == 401


def test_no_certificate_or_a_foreign_one_cannot_connect(secured: dict) -> None:
    for certificate in (None, secured["foreign"]):
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _get(secured, "/v1/servers", certificate)


def test_api_key_roles(secured: dict) -> None:
    key = secured["sessions_key"]
    assert _get(secured, "/v1/servers", secured["unlisted"], api_key=key) == 403  # sessions only
    assert _get(secured, "/v1/servers/default/sessions/", secured["unlisted"], api_key=key) == 400  # no nonce
    assert _get(secured, "/v1/servers", secured["unlisted"], api_key="na_" + "A" * 43) == 401
