"""How /auth/forward and /auth/nginx learn which request they decide: both header conventions
(X-Forwarded-* and X-Original-*), refusal of requests that do not say, or contradict themselves, nginx's
401-with-login-URL answer, and the option that refuses hosts nobody configured. No proxy here:
tests/test_nginx.py and tests/test_caddy.py run the real ones."""

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authserver.config import ConfigError
from idp.context import IdpServices
from idp.forwardauth import views
from idp.forwardauth.forwarded import Forwarded, Unusable, describe
from idp.forwardauth.settings import load_settings
from tests.fixtures.system import REPO
from tests.test_forward_auth import BROWSER, idp, login, make_app

__all__ = ["idp"]  # the module-scoped IdP fixture, shared with tests/test_forward_auth.py

FULL = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.test",
    "X-Forwarded-Uri": "/page?x=1&y=2",
}


def headers(*pairs: tuple[str, str]) -> Any:
    def values(name: str) -> list[str]:
        return [value for key, value in pairs if key.lower() == name.lower()]

    return values


@pytest.fixture
def client(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    views._LOGGED.clear()
    return make_app(idp, monkeypatch).test_client()


def ask(client: FlaskClient, path: str = "/auth/forward", token: str | None = None, **sent: str) -> Any:
    client.delete_cookie("nextauth_session")
    if token is not None:
        client.set_cookie("nextauth_session", token)
    return client.get(path, headers={"Accept": "application/json", **sent})


# -- reading the description -----------------------------------------------------------------------------


def test_forwarded_headers_describe_the_request() -> None:
    assert describe(headers(*FULL.items())) == Forwarded("GET", "https", "app.example.test", "/page?x=1&y=2")


@pytest.mark.parametrize(
    "url",
    ["https://app.example.test/page?x=1&y=2", "HTTPS://app.example.test/page?x=1&y=2"],
)
def test_the_original_url_describes_the_request(url: str) -> None:
    asked = describe(headers(("X-Original-URL", url), ("X-Original-Method", "get")))
    assert asked == Forwarded("GET", "https", "app.example.test", "/page?x=1&y=2")


def test_a_path_as_original_url_needs_the_host_elsewhere() -> None:
    asked = describe(
        headers(("X-Original-URL", "/a?b=1"), ("X-Original-Method", "POST"), ("X-Forwarded-Host", "h.test"))
    )
    assert asked == Forwarded("POST", "https", "h.test", "/a?b=1")


def test_both_conventions_that_agree_are_one_request() -> None:
    asked = describe(
        headers(
            *FULL.items(),
            ("X-Original-URL", "https://APP.example.test/page?x=1&y=2"),
            ("X-Original-Method", "GET"),
        )
    )
    assert asked.uri == "/page?x=1&y=2"


MISSING = [
    ("X-Forwarded-Method", {"X-Forwarded-Method"}),
    ("X-Forwarded-Uri", {"X-Forwarded-Uri"}),
    ("X-Forwarded-Host", {"X-Forwarded-Host"}),
    ("X-Forwarded-Uri", set(FULL)),
]


@pytest.mark.parametrize(("named", "left_out"), MISSING)
def test_a_request_that_does_not_say_what_it_is_about_is_refused(named: str, left_out: set[str]) -> None:
    with pytest.raises(Unusable) as refused:
        describe(headers(*((k, v) for k, v in FULL.items() if k not in left_out)))
    assert refused.value.header == named


@pytest.mark.parametrize(
    "extra",
    [
        ("X-Original-URL", "https://app.example.test/admin"),  # the client's own, through nginx
        ("X-Original-URL", "https://other.example.test/page?x=1&y=2"),
        ("X-Original-URL", "http://app.example.test/page?x=1&y=2"),
        ("X-Original-Method", "POST"),
        ("X-Forwarded-Uri", "/admin"),  # twice
        ("X-Forwarded-Method", "GET"),  # twice, even alike
    ],
)
def test_a_request_described_two_ways_is_refused(extra: tuple[str, str]) -> None:
    with pytest.raises(Unusable):
        describe(headers(*FULL.items(), extra))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Forwarded-Uri", "admin"),
        ("X-Forwarded-Uri", "/a b"),
        ("X-Forwarded-Uri", "/" + "a" * 9000),
        ("X-Forwarded-Host", "a.test, b.test"),
        ("X-Forwarded-Host", "evil.test/x"),
        ("X-Forwarded-Method", "GET /"),
        ("X-Forwarded-Proto", "gopher"),
    ],
)
def test_odd_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(Unusable) as refused:
        describe(headers(*{**FULL, name: value}.items()))
    assert refused.value.header == name


@pytest.mark.parametrize(
    "url", ["ftp://app.example.test/x", "https://user@app.example.test/x", "app.example.test/x", "https:///x"]
)
def test_odd_original_urls_are_refused(url: str) -> None:
    with pytest.raises(Unusable):
        describe(headers(("X-Original-URL", url), ("X-Original-Method", "GET")))


# -- the endpoints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/forward", "/auth/nginx"])
def test_the_endpoints_refuse_an_undescribed_request_with_one_log_line(
    client: FlaskClient, idp: IdpServices, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    admin = login(idp, "root", ("wiki-admins",))
    caplog.set_level(logging.INFO, logger="nextauth.idp.forward_auth")
    for _ in range(3):
        answer = ask(client, path, admin, **{k: v for k, v in FULL.items() if k != "X-Forwarded-Uri"})
        assert answer.status_code == 400
        assert answer.json["error"] == "bad_request"
        assert "X-Forwarded-Uri" in answer.json["message"]
        assert answer.headers["Cache-Control"] == "no-store"
        assert not any(name.startswith("Remote-") for name in answer.headers.keys())
    lines = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(lines) == 1 and "X-Forwarded-Uri" in lines[0], lines


def test_a_host_alone_is_not_a_get_of_the_root(client: FlaskClient, idp: IdpServices) -> None:
    """/closed is denied; a request that names only its host must not become an allowed ``GET /``."""
    answer = ask(client, token=login(idp), **{"X-Forwarded-Host": "app.example.test"})
    assert answer.status_code == 400


def test_nginx_snippets_with_the_original_url_are_decided(client: FlaskClient, idp: IdpServices) -> None:
    sent = {"X-Original-URL": "https://app.example.test/closed?x=1", "X-Original-Method": "GET"}
    assert ask(client, token=login(idp), **sent).status_code == 403
    sent["X-Original-URL"] = "https://app.example.test/open?x=1&y=2"
    assert ask(client, token=login(idp, "bob"), **sent).headers["Remote-User"] == "bob"


def test_nginx_gets_401_with_the_login_url_of_the_whole_original_url(client: FlaskClient) -> None:
    for accept in (BROWSER, "application/json"):
        answer = ask(client, "/auth/nginx", **FULL, Accept=accept)
        assert answer.status_code == 401, accept
        login_url = answer.headers[views.LOGIN_HEADER]
        assert answer.json["login"] == login_url
        next_path = parse_qs(urlsplit(login_url).query)["next"][0]
        back = parse_qs(urlsplit(next_path).query)["url"][0]
        assert back == "https://app.example.test/page?x=1&y=2"


def test_nginx_gets_the_same_allow_and_forbid(client: FlaskClient, idp: IdpServices) -> None:
    bob = login(idp, "bob")
    allowed = ask(client, "/auth/nginx", bob, **FULL)
    assert allowed.status_code == 200 and allowed.headers["Remote-User"] == "bob"
    closed = {**FULL, "X-Forwarded-Uri": "/closed"}
    assert ask(client, "/auth/nginx", bob, **closed).status_code == 403
    assert ask(client, "/auth/nginx", None, **closed).status_code == 403
    assert views.LOGIN_HEADER not in ask(client, "/auth/nginx", bob, **closed).headers


def test_unknown_hosts_are_refused_when_asked(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> None:
    # RULES make /static on *.example.test public; HOSTS name *.example.test and app.other.test:8443.
    client: FlaskClient = make_app(idp, monkeypatch, UNKNOWN_HOSTS="deny").test_client()
    public = {**FULL, "X-Forwarded-Uri": "/static/a.css"}
    assert ask(client, **public).status_code == 200
    assert ask(client, **{**public, "X-Forwarded-Host": "app.example.test:443"}).status_code == 200
    for host in ("elsewhere.test", "example.test", "app.other.test", "app.other.test:443"):
        answer = ask(client, token=login(idp), **{**public, "X-Forwarded-Host": host})
        assert answer.status_code == 403, host
    assert (
        ask(client, token=login(idp), **{**FULL, "X-Forwarded-Host": "app.other.test:8443"}).status_code
        == 200
    )
    policy = client.get("/auth/policy").json
    assert policy["unknown_hosts"] == "deny"
    assert policy["known_hosts"] == ["*.example.test", "app.other.test:8443"]


def test_unknown_hosts_are_allowed_by_default(app: Flask) -> None:
    answer = ask(app.test_client(), **{**FULL, "X-Forwarded-Host": "elsewhere.test"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"NEXTAUTH_IDP_FORWARD_AUTH_UNKNOWN_HOSTS": "maybe"}, "allow (the rules decide) or deny"),
        ({"NEXTAUTH_IDP_FORWARD_AUTH_UNKNOWN_HOSTS": "deny"}, "needs NEXTAUTH_IDP_FORWARD_AUTH_HOSTS"),
    ],
)
def test_the_unknown_hosts_setting_is_checked(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


@pytest.fixture
def app(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> Flask:
    return make_app(idp, monkeypatch)


@pytest.mark.parametrize("example", ["nginx/nextauth.conf", "caddy/Caddyfile"])
def test_the_docs_show_the_tested_configuration(example: str) -> None:
    """docs/forward-auth.md shows the file tests/test_nginx.py and tests/test_caddy.py run, verbatim."""
    shipped = (REPO / "proxy-examples" / example).read_text(encoding="utf-8")
    docs = (REPO / "docs" / "forward-auth.md").read_text(encoding="utf-8")
    assert f"```{example.split('/')[0]}\n{shipped}```\n" in docs
