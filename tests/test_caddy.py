"""nextAuth forward-auth behind the real Caddy, configured by the shipped proxy-examples/caddy/Caddyfile
(docs/forward-auth.md#caddy): forward_auth asks the IdP's /auth/forward and passes its answers on."""

from collections.abc import Iterator

import pytest

from tests.fixtures.caddy import caddy_binary, start_caddy
from tests.fixtures.forward_proxies import (
    Setup,
    check_api_client_gets_401,
    check_identity_and_no_forgery,
    check_login_and_back_to_the_whole_url,
    check_logout,
    check_refusal_is_logged,
    check_rules,
    check_the_client_cannot_choose_what_is_checked,
    check_unknown_hosts_are_refused,
    identity,
    minter,
    setup,
    through,
    tina,
)
from tests.fixtures.proxies import RunningProxy, stop
from tests.test_traefik import Minter

__all__ = ["minter", "setup", "tina"]
pytestmark = pytest.mark.e2e

HOST, VAULT = "app.caddy.test", "vault.caddy.test"
# A site whose forward_auth does not tell the IdP which request it checks: the IdP must refuse it,
# never decide it as GET /.
FORGETFUL = """
http://forgetful.caddy.test:{port} {
	forward_auth IDP {
		uri /auth/forward
		header_up -X-Forwarded-Uri
		header_up -X-Forwarded-Method
		copy_headers Remote-User
	}
	reverse_proxy APP
}
# A catch-all site (what the example warns against): any Host reaches the IdP's rules, so
# NEXTAUTH_IDP_FORWARD_AUTH_UNKNOWN_HOSTS=deny must refuse the hosts it was not told about.
http://:{port} {
	forward_auth IDP {
		uri /auth/forward
		copy_headers Remote-User Remote-Name Remote-Email Remote-Groups Remote-Auth-Method
	}
	reverse_proxy APP
}
# The example without its request_header lines: what they are for.
http://careless.caddy.test:{port} {
	forward_auth IDP {
		uri /auth/forward
		copy_headers Remote-User Remote-Name Remote-Email Remote-Groups Remote-Auth-Method
	}
	reverse_proxy APP
}
"""


@pytest.fixture(scope="module")
def caddy(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    caddy_binary()  # skip early when Caddy is missing
    app = f"127.0.0.1:{setup.app.port}"
    idp = f"127.0.0.1:{setup.system.port('idp', 'http')}"
    running = start_caddy(
        tmp_path_factory.mktemp("caddy"),
        idp=idp,
        app=app,
        hosts="*.caddy.test",
        extra=FORGETFUL.replace("APP", app).replace("IDP", idp),
    )
    yield running
    stop(running)


def test_a_browser_logs_in_and_returns_to_the_whole_url(caddy: RunningProxy, setup: Setup) -> None:
    check_login_and_back_to_the_whole_url(caddy, setup, HOST)


def test_an_api_client_gets_401(caddy: RunningProxy, setup: Setup) -> None:
    check_api_client_gets_401(caddy, setup, HOST)


def test_identity_arrives_and_forged_headers_never_do(caddy: RunningProxy, tina: str) -> None:
    check_identity_and_no_forgery(caddy, HOST, tina)


def test_underscore_aliases_pass_without_the_request_header_lines(caddy: RunningProxy, tina: str) -> None:
    """Why the example deletes them: forward_auth's copy_headers replaces only the exact names."""
    answer = through(caddy, "careless.caddy.test", "/staff", token=tina, headers=[("Remote_User", "admin")])
    assert answer.status_code == 200
    assert ("remote_user", "admin") in [(name.lower(), value) for name, value in answer.json()["headers"]]


def test_rules_and_the_idps_pages(caddy: RunningProxy, tina: str, minter: Minter) -> None:
    check_rules(caddy, HOST, VAULT, tina, minter)


def test_the_client_cannot_choose_what_is_checked(caddy: RunningProxy, tina: str) -> None:
    check_the_client_cannot_choose_what_is_checked(caddy, HOST, tina)


def test_unknown_hosts_are_refused(caddy: RunningProxy, tina: str) -> None:
    check_unknown_hosts_are_refused(caddy, tina)


def test_logout_makes_the_cookie_useless(caddy: RunningProxy, setup: Setup) -> None:
    check_logout(caddy, setup, HOST)


def test_a_check_that_does_not_describe_the_request_is_refused(
    caddy: RunningProxy, setup: Setup, tina: str
) -> None:
    for path in ("/admin", "/closed", "/"):
        answer = through(caddy, "forgetful.caddy.test", path, token=tina)
        assert answer.status_code == 400, (path, answer.status_code, answer.text)
        assert "X-Forwarded-Uri" in answer.json()["message"]
    check_refusal_is_logged(setup, "X-Forwarded-Uri")
    assert identity(through(caddy, HOST, "/staff", token=tina))[0] == "tina"
