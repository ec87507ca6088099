"""nextAuth forward-auth behind the real nginx, configured by the shipped
proxy-examples/nginx/nextauth.conf (docs/forward-auth.md#nginx): auth_request asks the IdP's /auth/nginx,
error_page shows the IdP's own answers (login redirect, 401, 403)."""

from collections.abc import Iterator

import pytest

from tests.fixtures.forward_proxies import (
    Setup,
    check_api_client_gets_401,
    check_identity_and_no_forgery,
    check_login_and_back_to_the_whole_url,
    check_logout,
    check_refusal_is_logged,
    check_rules,
    check_the_client_cannot_choose_what_is_checked,
    check_the_idp_refuses_a_header_sent_twice,
    check_unknown_hosts_are_refused,
    identity,
    minter,
    setup,
    through,
    tina,
)
from tests.fixtures.nginx import nginx_binary, start_nginx
from tests.fixtures.proxies import RunningProxy, stop
from tests.test_traefik import Minter, login_target

__all__ = ["minter", "setup", "tina"]
pytestmark = pytest.mark.e2e

HOST, VAULT = "app.nginx.test", "vault.nginx.test"
# A server whose check forgets to describe the request (no X-Forwarded-*, no X-Original-*): the IdP
# must refuse it, never decide it as GET /.
FORGETFUL = """
server {
    listen 127.0.0.1:{port};
    server_name forgetful.nginx.test;
    location / {
        auth_request /.nextauth/check;
        proxy_pass http://APP;
    }
    location = /.nextauth/check {
        internal;
        proxy_pass http://nextauth_idp/auth/nginx;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
}
# The shortest configuration: every client without a session is redirected to the login URL that
# /auth/nginx names in X-Nextauth-Login (API clients included).
server {
    listen 127.0.0.1:{port};
    server_name short.nginx.test;
    location / {
        auth_request /.nextauth/check;
        auth_request_set $nextauth_login $upstream_http_x_nextauth_login;
        error_page 401 =302 $nextauth_login;
        auth_request_set $nextauth_user $upstream_http_remote_user;
        proxy_set_header Remote-User $nextauth_user;
        proxy_pass http://APP;
    }
    location = /.nextauth/check {
        internal;
        proxy_pass http://nextauth_idp/auth/nginx;
        proxy_method GET;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Forwarded-Method $request_method;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header X-Forwarded-Uri $request_uri;
    }
}
"""


@pytest.fixture(scope="module")
def nginx(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    nginx_binary()  # skip early when nginx is missing
    app = f"127.0.0.1:{setup.app.port}"
    running = start_nginx(
        tmp_path_factory.mktemp("nginx"),
        idp=f"127.0.0.1:{setup.system.port('idp', 'http')}",
        app=app,
        hosts="*.nginx.test",
        extra=FORGETFUL.replace("APP", app),
    )
    yield running
    stop(running)


def test_a_browser_logs_in_and_returns_to_the_whole_url(nginx: RunningProxy, setup: Setup) -> None:
    check_login_and_back_to_the_whole_url(nginx, setup, HOST)


def test_an_api_client_gets_401(nginx: RunningProxy, setup: Setup) -> None:
    check_api_client_gets_401(nginx, setup, HOST)


def test_identity_arrives_and_forged_headers_never_do(nginx: RunningProxy, tina: str) -> None:
    check_identity_and_no_forgery(nginx, HOST, tina)


def test_rules_and_the_idps_pages(nginx: RunningProxy, tina: str, minter: Minter) -> None:
    check_rules(nginx, HOST, VAULT, tina, minter)


def test_the_client_cannot_choose_what_is_checked(nginx: RunningProxy, tina: str) -> None:
    check_the_client_cannot_choose_what_is_checked(nginx, HOST, tina)


def test_unknown_hosts_are_refused(nginx: RunningProxy, tina: str) -> None:
    check_unknown_hosts_are_refused(nginx, tina)


def test_logout_makes_the_cookie_useless(nginx: RunningProxy, setup: Setup) -> None:
    check_logout(nginx, setup, HOST)


def test_a_check_that_does_not_describe_the_request_is_refused(
    nginx: RunningProxy, setup: Setup, tina: str
) -> None:
    # nginx answers 500 when its check fails; before, the IdP decided such a request as GET /.
    for path in ("/admin", "/closed", "/"):
        assert through(nginx, "forgetful.nginx.test", path, token=tina).status_code == 500, path
    check_refusal_is_logged(setup, "X-Forwarded-Uri")
    # Without the proxy's own headers, a client's would be read: still refused, as they disagree or
    # lack the method.
    forged = [("X-Forwarded-Uri", "/public"), ("X-Forwarded-Host", "forgetful.nginx.test")]
    assert through(nginx, "forgetful.nginx.test", "/admin", token=tina, headers=forged).status_code == 500


def test_the_shortest_configuration_redirects_with_the_login_header(
    nginx: RunningProxy, setup: Setup, tina: str
) -> None:
    answer = through(nginx, "short.nginx.test", "/page?x=1&y=2")
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{setup.idp_url}/login?next=")
    assert login_target(answer.headers["location"]) == "http://short.nginx.test/page?x=1&y=2"
    forged = [("Remote-User", "admin"), ("remote_user", "admin")]
    assert identity(through(nginx, "short.nginx.test", "/page", token=tina, headers=forged))[0] == "tina"
    assert through(nginx, "short.nginx.test", "/closed", token=tina).status_code == 403


def test_the_idp_refuses_a_header_sent_twice(setup: Setup, tina: str) -> None:
    check_the_idp_refuses_a_header_sent_twice(setup, tina)
