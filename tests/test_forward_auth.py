"""Forward-auth at the IdP without a proxy: the decision, the headers, the way back after login, what the
plugin fetches, and every security rule's negative case (tampered, expired, wrong audience or issuer,
unknown key, ended session, open redirects, path tricks, forged configuration)."""

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from sqlalchemy import event

from authserver.config import ConfigError
from idp.context import IdpServices
from idp.directory import Profile
from idp.forwardauth.rules import AccessRules, normalize_host, normalize_path, parse_rules
from idp.forwardauth.settings import HostPattern, load_settings
from idp.forwardauth.urls import original_url, safe_return, wants_html
from idp.sessions import AUDIENCE, TOKEN_TYPE
from idp.web import create_app
from tests.fixtures.idp_offline import offline_idp_services

ISSUER = "http://idp.example.test"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
RULES = {
    "default": "authenticated",
    "rules": [
        {"host": "*.example.test", "path": "/static", "policy": "public"},
        {"host": "wiki.example.test", "path": ["/admin", "/settings"], "groups": ["wiki-admins"]},
        {"path": "/mine", "users": ["alice"]},
        {"path": "/closed", "policy": "deny"},
        {"path": "/write", "methods": ["POST"], "groups": ["writers"]},
    ],
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdpServices]:
    services = offline_idp_services(tmp_path_factory.mktemp("forward-auth") / "idp.db", ISSUER)
    yield services
    services.engine.dispose()


def make_app(idp: IdpServices, monkeypatch: pytest.MonkeyPatch, **settings: str | None) -> Flask:
    """The IdP's app with forward-auth settings (flag -> value; None leaves a default setting unset)."""
    for name in list(os.environ):
        if name.startswith("NEXTAUTH_IDP_FORWARD_AUTH_"):
            monkeypatch.delenv(name)
    env = {
        "RULES": json.dumps(RULES),
        "HOSTS": "*.example.test,app.other.test:8443",
        **settings,
    }
    for flag, value in env.items():
        if value is not None:
            monkeypatch.setenv(f"NEXTAUTH_IDP_FORWARD_AUTH_{flag}", value)
    app = create_app(idp, secret_key=b"k" * 32, websocket_url="ws://127.0.0.1:9/ns/websocket")
    app.testing = True
    return app


@pytest.fixture
def app(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> Flask:
    return make_app(idp, monkeypatch)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(idp: IdpServices, user: str = "alice", groups: tuple[str, ...] = (), **profile: Any) -> str:
    return idp.sessions.start(
        ns_nonce=f"nonce-{user}-{time.monotonic_ns()}",
        profile=Profile(user, groups=groups, **profile),
        second_factor="pin",
        method="qr",
    )


def mint(idp: IdpServices, *, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A token signed with the IdP's real session key, with claims of the test's choosing."""
    key = idp.keys.active("session", "Ed25519")
    now = int(time.time())
    body = {
        "iss": ISSUER, "aud": AUDIENCE, "sid": f"sid-{now}-{time.monotonic_ns()}", "sub": "mallory",
        "auth_time": now, "iat": now, "exp": now + 600, "amr": ["swk"], "method": "qr",
    }  # fmt: skip
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    head = {"alg": "Ed25519", "kid": key.kid, "typ": TOKEN_TYPE, **(header or {})}
    return jwt.encode(head, body, key.jose, algorithms=["Ed25519"])


def ask(
    client: FlaskClient,
    token: str | None = None,
    *,
    host: str = "app.example.test",
    uri: str = "/page?x=1",
    method: str = "GET",
    accept: str | None = "application/json",
    cookie: str = "nextauth_session",
    **headers: str,
) -> Any:
    sent = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}
    sent["X-Forwarded-Method"] = method
    if accept is not None:
        sent["Accept"] = accept
    # The test client sends the cookies of its jar and nothing else as Cookie.
    client.delete_cookie(cookie)
    if token is not None:
        client.set_cookie(cookie, token)
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return client.get("/auth/forward", headers=sent)


IDENTITY = ("Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups", "Remote-Auth-Method")


# -- the decision over HTTP ------------------------------------------------------------------------------


def test_a_valid_session_gets_every_identity_header(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice", ("staff", "readers"), name="Zoë Łukasz", email="alice@example.test")
    answer = ask(client, token)
    assert answer.status_code == 200
    assert answer.headers["Remote-User"] == "alice"
    assert answer.headers["Remote-Name"].encode("latin-1").decode("utf-8") == "Zoë Łukasz"
    assert answer.headers["Remote-Email"] == "alice@example.test"
    assert answer.headers["Remote-Groups"] == "staff,readers"
    assert answer.headers["Remote-Auth-Method"] == "qr+pin"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in answer.headers


def test_unknown_fields_are_sent_empty(idp: IdpServices, client: FlaskClient) -> None:
    answer = ask(client, login(idp, "bob"))
    assert answer.status_code == 200
    assert [answer.headers.get(name) for name in IDENTITY] == ["bob", "", "", "", "qr+pin"]
    anonymous = ask(client, None, uri="/static/app.css")
    assert anonymous.status_code == 200
    assert [anonymous.headers.get(name) for name in IDENTITY] == [""] * 5


def test_control_characters_cannot_split_a_header(idp: IdpServices, client: FlaskClient) -> None:
    idp.directory.put(Profile("carol", name="Carol"))
    token = mint(idp, sub="carol", name="Carol\r\nRemote-User: admin")
    answer = ask(client, token)
    assert answer.status_code == 200
    assert answer.headers["Remote-Name"] == "CarolRemote-User: admin"
    assert answer.headers.getlist("Remote-User") == ["carol"]


def test_a_browser_without_session_is_sent_to_login(client: FlaskClient) -> None:
    answer = ask(client, accept=BROWSER, uri="/page?x=1&y=%2F")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/login"
    next_path = parse_qs(location.query)["next"][0]
    assert next_path.startswith("/auth/return?")
    assert parse_qs(urlsplit(next_path).query)["url"] == ["https://app.example.test/page?x=1&y=%2F"]


def test_an_api_client_without_session_gets_401(client: FlaskClient) -> None:
    for accept in ("application/json", "*/*", None, "text/html;q=0"):
        answer = ask(client, accept=accept)
        assert answer.status_code == 401, accept
        assert answer.json["error"] == "unauthenticated"
        assert answer.json["login"].startswith(f"{ISSUER}/login?next=")
        assert "Location" not in answer.headers


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": int(time.time()) - 5}, id="expired"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"sid": None}, id="no-sid"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-the-future"),
    ],
)
def test_tokens_that_are_not_current_sessions_are_refused(
    idp: IdpServices, client: FlaskClient, claims: dict[str, Any]
) -> None:
    assert ask(client, mint(idp, **claims)).status_code == 401
    assert ask(client, mint(idp)).status_code == 200  # the same minting, unchanged, passes


def test_a_tampered_token_is_refused(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice")
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert ask(client, f"{head}.{payload}.{flipped}").status_code == 401
    claims = json.loads(_b64(payload))
    claims["sub"] = "admin"
    forged = _b64e(json.dumps(claims).encode())
    assert ask(client, f"{head}.{forged}.{signature}").status_code == 401
    unsigned = _b64e(json.dumps({"alg": "none", "typ": TOKEN_TYPE}).encode())
    assert ask(client, f"{unsigned}.{payload}.").status_code == 401
    assert ask(client, "not-a-token").status_code == 401


def test_a_token_of_another_type_is_refused(idp: IdpServices, client: FlaskClient) -> None:
    assert ask(client, mint(idp, header={"typ": "JWT"})).status_code == 401


def test_unknown_keys_cost_at_most_one_reload_per_interval(
    idp: IdpServices, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    reloads: list[float] = []
    original = idp.keys.reload
    monkeypatch.setattr(idp.keys, "reload", lambda: (reloads.append(time.monotonic()), original())[1])
    token = login(idp, "alice")
    head, payload, signature = token.split(".")
    header = json.loads(_b64(head))
    for n in range(20):
        header["kid"] = f"made-up-{n}"
        assert ask(client, f"{_b64e(json.dumps(header).encode())}.{payload}.{signature}").status_code == 401
    assert len(reloads) <= 1


def test_an_ended_session_is_refused(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice")
    assert ask(client, token).status_code == 200
    sid = idp.sessions.verify(token).sid  # type: ignore[union-attr]
    idp.sessions.end(sid, by="user")
    assert ask(client, token).status_code == 401
    assert ask(client, token, accept=BROWSER).status_code == 302


def test_logout_at_the_idp_ends_access(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice")
    assert ask(client, token).status_code == 200
    client.set_cookie("nextauth_session", token)
    assert client.post("/logout").status_code == 302
    assert ask(client, token).status_code == 401


def test_the_hot_path_makes_no_database_query(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice", ("staff",))
    ask(client, token)  # warm: the key ring and the ended marks are loaded
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(idp.engine, "before_cursor_execute", count)
    try:
        for _ in range(30):
            assert ask(client, token).status_code == 200
            assert ask(client, None).status_code == 401
            assert ask(client, token, host="wiki.example.test", uri="/admin").status_code == 403
    finally:
        event.remove(idp.engine, "before_cursor_execute", count)
    assert statements == []


# -- access rules ----------------------------------------------------------------------------------------


def test_rules_answer_403_to_users_they_do_not_admit(idp: IdpServices, client: FlaskClient) -> None:
    staff = login(idp, "bob", ("staff",))
    admin = login(idp, "dana", ("wiki-admins",))
    assert ask(client, staff, host="wiki.example.test", uri="/admin/users").status_code == 403
    assert ask(client, admin, host="wiki.example.test", uri="/admin/users").status_code == 200
    assert ask(client, staff, host="wiki.example.test", uri="/administrator").status_code == 200
    assert ask(client, staff, host="other.example.test", uri="/admin").status_code == 200
    assert ask(client, staff, uri="/mine").status_code == 403
    assert ask(client, login(idp, "alice"), uri="/mine").status_code == 200
    assert ask(client, staff, uri="/write", method="POST").status_code == 403
    assert ask(client, staff, uri="/write", method="GET").status_code == 200
    answer = ask(client, staff, host="wiki.example.test", uri="/settings", accept=BROWSER)
    assert answer.status_code == 403 and answer.mimetype == "text/html"
    assert ask(client, staff, host="wiki.example.test", uri="/settings").json == {"error": "forbidden"}


def test_deny_refuses_everyone_and_public_needs_no_login(idp: IdpServices, client: FlaskClient) -> None:
    admin = login(idp, "dana", ("wiki-admins",))
    assert ask(client, admin, uri="/closed").status_code == 403
    assert ask(client, None, uri="/closed", accept=BROWSER).status_code == 403
    assert ask(client, None, uri="/static/x.css", accept=BROWSER).status_code == 200
    assert ask(client, None, host="elsewhere.test", uri="/static/x.css").status_code == 401


@pytest.mark.parametrize(
    "uri",
    [
        "/static/../admin",
        "/static/..%2Fadmin",
        "/static/%2e%2e/admin",
        "/static%2F..%2F..%2Fadmin",
        "//admin",
        "/static/..\\admin",
        "/admin;jsessionid=1",
        "/%61dmin",
        "/./admin/.",
    ],
)
def test_path_spellings_cannot_slip_past_a_rule(idp: IdpServices, client: FlaskClient, uri: str) -> None:
    staff = login(idp, "bob", ("staff",))
    assert ask(client, staff, host="wiki.example.test", uri=uri).status_code == 403
    assert ask(client, None, host="wiki.example.test", uri=uri).status_code == 401


def test_header_names_are_configurable(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(idp, monkeypatch, USER_HEADER="X-Auth-User", GROUPS_HEADER="X-Auth-Groups")
    answer = ask(app.test_client(), login(idp, "alice", ("a", "b")))
    assert answer.headers["X-Auth-User"] == "alice" and answer.headers["X-Auth-Groups"] == "a,b"
    assert "Remote-User" not in answer.headers and answer.headers["Remote-Email"] == ""


def test_without_a_rules_file_every_path_needs_a_login(
    idp: IdpServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(idp, monkeypatch, RULES="")
    assert ask(app.test_client(), None, uri="/static/x").status_code == 401
    assert ask(app.test_client(), login(idp, "alice"), uri="/anything").status_code == 200


def test_rules_come_from_a_yaml_file(
    idp: IdpServices, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("default: deny\nrules:\n  - path: /open\n    policy: public\n")
    client = make_app(idp, monkeypatch, RULES=None, RULES_FILE=str(rules)).test_client()
    assert ask(client, None, uri="/open/x").status_code == 200
    assert ask(client, login(idp, "alice"), uri="/other").status_code == 403


def test_a_broken_configuration_stops_the_idp(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        make_app(idp, monkeypatch, RULES='{"rules": [{"path": "/x", "grups": ["a"]}]}')
    with pytest.raises(ConfigError, match="HOSTS"):
        make_app(idp, monkeypatch, HOSTS="https://app.example.test/")
    with pytest.raises(ConfigError, match="USER_HEADER"):
        make_app(idp, monkeypatch, USER_HEADER="Cookie")


# -- the way back after login ----------------------------------------------------------------------------


def test_the_way_back_leads_to_an_allowed_host(idp: IdpServices, client: FlaskClient) -> None:
    target = "https://app.example.test/page?x=1"
    answer = client.get("/auth/return", query_string={"url": target})
    assert answer.status_code == 302  # not logged in yet: to the login page, which comes back here
    assert answer.headers["Location"].startswith(f"{ISSUER}/login?next=%2Fauth%2Freturn%3Furl%3D")
    client.set_cookie("nextauth_session", login(idp, "alice"))
    answer = client.get("/auth/return", query_string={"url": target})
    assert answer.status_code == 302 and answer.headers["Location"] == target


OPEN_REDIRECTS = [
    "https://evil.example/",
    "//evil.example/",
    "https://app.example.test@evil.example/",
    "https://evil.example\\@app.example.test/",
    "https://evil.example#@app.example.test",
    "https://evil.example?@app.example.test",
    "https://app.example.test.evil.example/",
    "https://example.test/",
    "https://evilexample.test/",
    "javascript:alert(1)//app.example.test",
    "data:text/html,hi",
    "/relative/path",
    "https:/app.example.test/",
    "ftp://app.example.test/",
    "https://app.exa\tmple.test/",
    "https://app.example.test/\r\nSet-Cookie:x=1",
    "https://app.other.test/",  # listed only with port 8443
    "https://app.other.test:8444/",
    "https://[::1]/",
    "",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_open_redirects_are_refused(idp: IdpServices, client: FlaskClient, target: str) -> None:
    client.set_cookie("nextauth_session", login(idp, "alice"))
    answer = client.get("/auth/return", query_string={"url": target})
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_safe_return_allows_what_is_listed() -> None:
    allowed = [HostPattern.parse("*.example.test"), HostPattern.parse("app.other.test:8443")]
    for good in (
        "https://a.example.test/",
        "http://a.b.example.test:8080/x?y#z",
        "https://app.other.test:8443/",
    ):
        assert safe_return(good, allowed, idp_url=ISSUER) == good
    assert safe_return(f"{ISSUER}/whoami", [], idp_url=ISSUER) == f"{ISSUER}/whoami"
    assert safe_return("http://a.example.test/", allowed, idp_url="https://idp.example.test")
    assert safe_return("https://idp.example.test/x", [], idp_url="https://idp.example.test")
    assert safe_return("https://idp.example.test:8443/x", [], idp_url="https://idp.example.test") is None


# -- what the plugin fetches -----------------------------------------------------------------------------


def test_keys_are_the_public_session_keys(idp: IdpServices, client: FlaskClient) -> None:
    token = login(idp, "alice")
    kid = json.loads(_b64(token.split(".")[0]))["kid"]
    keys = client.get("/auth/keys").json["keys"]
    assert kid in {key["kid"] for key in keys}
    for key in keys:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "Ed25519"
        assert "d" not in key


def test_the_ended_list_is_cached_briefly(idp: IdpServices, client: FlaskClient) -> None:
    first, second = login(idp, "alice"), login(idp, "bob")
    sid = idp.sessions.verify(first).sid  # type: ignore[union-attr]
    idp.sessions.end(sid, by="user")
    listed = client.get("/auth/ended").json
    assert sid in {entry["sid"] for entry in listed["ended"]}
    other = idp.sessions.verify(second).sid  # type: ignore[union-attr]
    idp.sessions.end(other, by="user")
    assert other not in {entry["sid"] for entry in client.get("/auth/ended").json["ended"]}
    time.sleep(1.6)
    assert other in {entry["sid"] for entry in client.get("/auth/ended").json["ended"]}


def test_the_policy_names_what_the_plugin_needs(client: FlaskClient) -> None:
    policy = client.get("/auth/policy").json
    assert policy["version"] == 1 and policy["issuer"] == ISSUER and policy["audience"] == AUDIENCE
    assert policy["cookie"] == "nextauth_session" and policy["login_url"] == f"{ISSUER}/login"
    assert policy["headers"]["user"] == "Remote-User"
    assert policy["default"]["policy"] == "authenticated"
    assert policy["rules"][1] == {
        "policy": "authenticated", "hosts": ["wiki.example.test"], "paths": ["/admin", "/settings"],
        "methods": [], "users": [], "groups": ["wiki-admins"],
    }  # fmt: skip


def test_a_plugin_token_guards_the_lists(idp: IdpServices, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s" * 40
    client = make_app(idp, monkeypatch, PLUGIN_TOKEN=secret).test_client()
    for path in ("/auth/ended", "/auth/policy"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert client.get("/auth/keys").status_code == 200


# -- the pieces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b/../c?q=/admin#x", "/a/c"),
        ("/../../etc", "/etc"),
        ("/a//b/", "/a/b"),
        ("/caf%C3%A9", "/café"),
        ("/%zz/a", "/%zz/a"),
        ("/a;b=c/d", "/a/d"),
    ],
)
def test_normalize_path(uri: str, path: str) -> None:
    assert normalize_path(uri) == path


def test_normalize_host() -> None:
    assert normalize_host("App.Example.TEST:8443") == "app.example.test"
    assert normalize_host("[::1]:80") == "[::1]"
    assert normalize_host("example.test.") == "example.test"


def test_rules_first_match_wins_and_wildcards_need_a_subdomain() -> None:
    rules = parse_rules(
        "rules:\n  - {host: '*.example.test', path: /a, policy: deny}\n  - {path: /a, policy: public}\n"
    )
    assert rules.decide("x.example.test", "/a/b", "GET").policy == "deny"
    assert rules.decide("example.test", "/a/b", "GET").policy == "public"
    assert rules.decide("x.example.test", "/ab", "GET").policy == "authenticated"
    assert AccessRules().decide("any", "/", "GET").policy == "authenticated"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"rules": [{"path": "x"}]}', "must start with /"),
        ('{"rules": [{"policy": "maybe"}]}', "policy 'maybe'"),
        ('{"rules": [{"policy": "public", "users": ["a"]}]}', "only go with the policy authenticated"),
        ('{"rules": [{"host": "https://a.test"}]}', "expected a host name"),
        ('{"rules": [{"host": "a.*.test"}]}', "expected a host name"),
        ('{"default": {"path": "/x"}}', "unknown key"),
        ('{"rule": []}', "unknown key"),
        ('{"rules": {"path": "/x"}}', "must be a list"),
        ('{"rules": [', "not valid JSON"),
        ("rules: [\n  - a: b\n", "not valid YAML"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_rule_mistakes_are_reported(document: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        parse_rules(document)


def test_header_settings_are_checked() -> None:
    assert load_settings({}).headers.all() == IDENTITY
    prefix = "NEXTAUTH_IDP_FORWARD_AUTH_"
    for bad in ("X-Forwarded-User ", "Host", "Remote User", "Remote_User", "Cookie", "X-Forwarded-For"):
        with pytest.raises(ConfigError):
            load_settings({f"{prefix}USER_HEADER": bad})
    with pytest.raises(ConfigError, match="distinct"):
        load_settings({f"{prefix}NAME_HEADER": "remote-USER"})
    with pytest.raises(ConfigError, match="PLUGIN_TOKEN"):
        load_settings({f"{prefix}PLUGIN_TOKEN": "short"})


def test_wants_html() -> None:
    assert wants_html(BROWSER)
    assert wants_html("text/html;q=0.5")
    assert wants_html("TEXT/HTML")
    for accept in (None, "", "*/*", "application/json", "text/html;q=0", "text/html; q=0.000", "text/*"):
        assert not wants_html(accept), accept


def test_original_url() -> None:
    assert original_url("https", "app.test", "/x?y") == "https://app.test/x?y"
    assert original_url("gopher", "app.test", "*") == "https://app.test/"
    assert original_url("http", "app.test", "/" + "a" * 5000) == "http://app.test/"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
