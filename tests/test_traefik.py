"""nextAuth in front of an application, with the real Traefik: once through the forwardAuth middleware
(the IdP decides every request) and once through the nextAuth plugin (it decides locally, asks the IdP
when unsure). Both are configured from traefik-plugin/dynamic.yml's middlewares, and must give the same
answers: login redirect, 401, 403, the identity headers, no forged header reaching the application, no
access after logout.

One system (ns, sfs, mc, IdP), one Traefik and one sample application serve the whole module. The
plugin reaches the IdP through a small counting proxy, so the tests can see when it asks the IdP and can
make the IdP's lists unreadable or its rules unfamiliar.
"""

import base64
import html
import http.client
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc import jwt
from joserfc.jwk import OKPKey

from authserver.storage import db
from authserver.storage.kv import open_kv
from idp.directory import Profile
from idp.keys import KeyRing
from idp.sessions import AUDIENCE, TOKEN_TYPE, SessionManager
from tests.fixtures import forked_commands
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.system import REPO, RunningSystem, free_port, run_app, start_system, stop_system
from tests.fixtures.traefik import (
    EchoApp,
    RunningTraefik,
    start_echo_app,
    start_traefik,
    stop_traefik,
    traefik_binary,
)

MODES = ("forward-auth", "plugin")
SUFFIX = {
    "forward-auth": "fa.test",
    "plugin": "plugin.test",
    "dead-fa": "deadfa.test",
    "dead-plugin": "deadplugin.test",
}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
API = "application/json"
IDENTITY = ("Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups", "Remote-Auth-Method")
PLUGIN_TOKEN = secrets.token_urlsafe(32)
REFRESH, MAX_STALE = 1, 3
RULES = """
default: authenticated
rules:
  - path: /public
    policy: public
  - host: [vault.fa.test, vault.plugin.test]
    groups: [vault-keepers]
  - path: /admin
    groups: [admins]
  - path: /staff
    groups: [staff]
  - path: /closed
    policy: deny
"""


# -- the IdP as the plugin sees it: a counting, tamperable proxy -----------------------------------------


@dataclass
class IdpProxy:
    target: int
    port: int = 0
    calls: Counter = field(default_factory=Counter)
    ended_fails: bool = False
    policy_patch: Callable[[dict[str, Any]], None] | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "IdpProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                proxy.calls[path] += 1
                if proxy.ended_fails and path == "/auth/ended":
                    return self._send(503, [("Content-Type", "text/plain")], b"down for the test")
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target, timeout=10)
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                upstream.request("GET", self.path, headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                upstream.close()
                if path == "/auth/policy" and proxy.policy_patch is not None and answer.status == 200:
                    document = json.loads(body)
                    proxy.policy_patch(document)
                    body = json.dumps(document).encode()
                skip = {"content-length", "transfer-encoding", "connection"}
                self._send(
                    answer.status, [(n, v) for n, v in answer.getheaders() if n.lower() not in skip], body
                )

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fa_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    traefik_binary()  # skip early when Traefik is missing
    data = tmp_path_factory.mktemp("traefik-system")
    rules = data / "forward-auth-rules.yml"
    rules.write_text(RULES)
    env = {
        "NEXTAUTH_IDP_FORWARD_AUTH_RULES_FILE": str(rules),
        "NEXTAUTH_IDP_FORWARD_AUTH_HOSTS": "*.fa.test,*.plugin.test",
        "NEXTAUTH_IDP_FORWARD_AUTH_PLUGIN_TOKEN": PLUGIN_TOKEN,
        # The IdP asks ns about its sessions' logins every second, not every 15: a session a test made
        # that ns does not know ends within a second, not under some later test by chance.
        "NEXTAUTH_IDP_NS_CHECK_SECONDS": "1",
        # Why a session was refused is told at debug level: a failure's report shows this log's end.
        "NEXTAUTH_LOG_LEVEL": "DEBUG",
    }
    running = start_system(data / "system", extra_env=env)
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


@pytest.fixture(scope="module")
def idp_url(fa_system: RunningSystem) -> str:
    return f"http://127.0.0.1:{fa_system.port('idp', 'http')}"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoApp]:
    app = start_echo_app()
    yield app
    app.server.shutdown()
    app.server.server_close()


@pytest.fixture(scope="module")
def proxy(fa_system: RunningSystem) -> Iterator[IdpProxy]:
    running = IdpProxy(fa_system.port("idp", "http")).start()
    yield running
    running.stop()


def shipped_middlewares() -> dict[str, Any]:
    dynamic = yaml.safe_load((REPO / "traefik-plugin" / "dynamic.yml").read_text(encoding="utf-8"))
    return dynamic["http"]["middlewares"]


@pytest.fixture(scope="module")
def traefik(
    fa_system: RunningSystem,
    echo: EchoApp,
    proxy: IdpProxy,
    idp_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningTraefik]:
    middlewares = shipped_middlewares()
    middlewares["nextauth-forward-auth"]["forwardAuth"]["address"] = f"{idp_url}/auth/forward"
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    middlewares["dead-forward-auth"] = {"forwardAuth": {"address": f"{unreachable}/auth/forward"}}
    middlewares["dead-plugin"] = {"plugin": {"nextauth": {"idpUrl": unreachable, "timeoutSeconds": 1}}}
    plugin = middlewares["nextauth-plugin"]["plugin"]["nextauth"]
    plugin.update(
        idpUrl=proxy.url,
        token=PLUGIN_TOKEN,
        refreshSeconds=REFRESH,
        maxStaleSeconds=MAX_STALE,
        policyRefreshSeconds=1,
    )
    dynamic = {
        "http": {
            "routers": {
                "forward-auth": {
                    "rule": r"HostRegexp(`^[a-z]+\.fa\.test$`)",
                    "entryPoints": ["web", "bare"],
                    "middlewares": ["nextauth-strip-identity", "nextauth-forward-auth"],
                    "service": "echo",
                },
                "plugin": {
                    "rule": r"HostRegexp(`^[a-z]+\.plugin\.test$`)",
                    "entryPoints": ["web", "bare"],
                    "middlewares": ["nextauth-plugin"],
                    "service": "echo",
                },
                "dead-fa": {
                    "rule": "Host(`app.deadfa.test`)",
                    "entryPoints": ["web"],
                    "middlewares": ["nextauth-strip-identity", "dead-forward-auth"],
                    "service": "echo",
                },
                "dead-plugin": {
                    "rule": "Host(`app.deadplugin.test`)",
                    "entryPoints": ["web"],
                    "middlewares": ["dead-plugin"],
                    "service": "echo",
                },
            },
            "middlewares": middlewares,
            "services": {"echo": {"loadBalancer": {"servers": [{"url": echo.url}]}}},
        }
    }
    running = start_traefik(tmp_path_factory.mktemp("traefik"), dynamic, plugin=True)
    yield running
    stop_traefik(running)


@pytest.fixture(scope="module")
def phone(fa_system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("traefik-phone")
    run_app(home, "init", "--config", str(fa_system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    enrol(fa_system, home, "tina")
    forked_commands.run(
        "nextauth.cli",
        ["user", "set", "tina", "--name", "Tina Tëster", "--email", "tina@example.test", "--groups",
         "staff,readers"],
        env=fa_system.env, check=True,
    )  # fmt: skip
    return home


@pytest.fixture(scope="module")
def minter(fa_system: RunningSystem, idp_url: str, tina: str) -> Iterator["Minter"]:
    engine = db.create_engine_for(f"sqlite:///{fa_system.data_dir / 'idp.db'}")
    minted = Minter(engine, idp_url)
    # The IdP ends its sessions whose login ns no longer knows (idp.ns_watch, every few seconds): minted
    # sessions belong to Tina's real login at ns, or they would end under a test at a moment of chance.
    ns_nonce = minted.sessions.ns_nonce(minted.sessions.verify_signature(tina)["sid"])  # type: ignore[index]
    assert ns_nonce is not None
    minted.ns_nonce = ns_nonce
    yield minted
    engine.dispose()


class Minter:
    """Sessions the way the IdP starts them, on its database and with its key: users and claims a test
    needs without a phone each (the IdP checks them as it checks its own)."""

    def __init__(self, engine: Any, issuer: str) -> None:
        self.keys = KeyRing(engine, issuer=issuer, refresh_seconds=0)
        self.issuer = issuer
        self.sessions = SessionManager(engine, open_kv(None), self.keys, issuer=issuer)
        self.engine = engine
        self.ns_nonce = ""

    def session(self, user: str, groups: tuple[str, ...] = (), *, ago: float = 0) -> str:
        sessions = self.sessions
        if ago:
            sessions = SessionManager(
                self.engine, open_kv(None), self.keys, issuer=self.issuer, clock=lambda: time.time() - ago
            )
        return sessions.start(
            ns_nonce=self.ns_nonce,
            profile=Profile(user, groups=groups),
            second_factor="pin",
            method="qr",
        )

    def token(self, *, kid: str | None = None, typ: str = TOKEN_TYPE, key: Any = None, **claims: Any) -> str:
        """A token with claims of the test's choosing, signed with the IdP's key (or ``key``)."""
        active = self.keys.active("session", "Ed25519")
        now = int(time.time())
        body = {
            "iss": self.issuer, "aud": AUDIENCE, "sid": secrets.token_urlsafe(16), "sub": "mallory",
            "groups": ["admins"], "auth_time": now, "iat": now, "exp": now + 600, "amr": ["swk"],
        }  # fmt: skip
        body.update(claims)
        header = {"alg": "Ed25519", "kid": kid or active.kid, "typ": typ}
        return jwt.encode(header, body, key or active.jose, algorithms=["Ed25519"])


# -- talking to Traefik and the IdP ----------------------------------------------------------------------


def through(
    traefik: RunningTraefik,
    mode: str,
    path: str,
    *,
    token: str | None = None,
    host: str = "app",
    accept: str = API,
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
    entry_point: str = "web",
) -> httpx.Response:
    sent = [("Host", f"{host}.{SUFFIX[mode]}"), ("Accept", accept), *(headers or [])]
    if token is not None:
        sent.append(("Cookie", f"nextauth_session={token}"))
    with httpx.Client(timeout=15) as client:
        return client.request(method, traefik.url(path, entry_point), headers=sent)


def identity(answer: httpx.Response) -> list[tuple[str, str]]:
    """The identity headers the application received: every header whose name a server could read as
    one of them, with its value as UTF-8."""
    assert answer.status_code == 200, (answer.status_code, answer.text)
    order = {name.lower(): n for n, name in enumerate(IDENTITY)}
    received = [
        (name, value.encode("latin-1").decode("utf-8"))
        for name, value in answer.json()["headers"]
        if alias(name) in order
    ]
    return sorted(received, key=lambda item: order[alias(item[0])])


def alias(name: str) -> str:
    """The header a CGI/WSGI/PHP server reads ``name`` as (REMOTE_USER for Remote.User), in dash form."""
    return re.sub(r"[^a-z0-9]", "-", name.lower())


def expected(user: str = "", name: str = "", email: str = "", groups: str = "", method: str = "") -> list:
    return list(zip(IDENTITY, (user, name, email, groups, method), strict=True))


def summary(answer: httpx.Response, mode: str) -> tuple[Any, ...]:
    """What a client or the application can tell apart, with the mode's host names made alike."""
    location = answer.headers.get("location", "").replace(SUFFIX["plugin"], SUFFIX["forward-auth"])
    if answer.status_code == 200:
        body: Any = identity(answer)
    elif answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
        if "login" in body:
            body["login"] = body["login"].replace(SUFFIX["plugin"], SUFFIX["forward-auth"])
    elif answer.status_code == 403:
        body = answer.text
    else:
        body = None
    return answer.status_code, location, body


def login_target(location: str) -> str:
    """The application URL a login redirect returns to."""
    next_path = parse_qs(urlsplit(location).query)["next"][0]
    assert next_path.startswith("/auth/return?"), next_path
    return parse_qs(urlsplit(next_path).query)["url"][0]


def log_in(client: httpx.Client, idp_url: str, phone: Path, login_url: str) -> str:
    """The login page in ``client`` (a browser keeping cookies), approved on the phone; returns where the
    IdP sends the browser afterwards."""
    page = client.get(login_url)
    assert page.status_code == 200, page.text
    qrdata = html.unescape(re.search(r'id="qr" data-qrdata="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    next_path = html.unescape(re.search(r'name="next" value="([^"]*)"', page.text).group(1))  # type: ignore[union-attr]
    login_key = html.unescape(re.search(r'name="login_key" value="([^"]*)"', page.text).group(1))  # type: ignore[union-attr]
    code, answer = run_app(phone, "scan", qrdata, "--pin", PIN)
    assert code == 0, answer
    deadline = time.monotonic() + 10
    while True:
        done = client.post(f"{idp_url}/login/complete", data={"next": next_path, "login_key": login_key})
        assert done.status_code == 302, done.text
        if not done.headers["location"].startswith("/login"):
            break
        assert time.monotonic() < deadline, "ns never saw the login"
        time.sleep(0.2)
    return done.headers["location"]


@pytest.fixture(scope="module")
def tina(idp_url: str, phone: Path) -> str:
    """Tina's session token from a real QR login."""
    with httpx.Client(timeout=15) as client:
        log_in(client, idp_url, phone, f"{idp_url}/login?next=/whoami")
        return client.cookies["nextauth_session"]


# -- the cases, in both modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_browser_without_session_is_sent_to_login(traefik: RunningTraefik, idp_url: str, mode: str) -> None:
    answer = through(traefik, mode, "/hello?x=1", accept=BROWSER)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(f"{idp_url}/login?next=")
    assert login_target(location) == f"http://app.{SUFFIX[mode]}/hello?x=1"


@pytest.mark.parametrize("mode", MODES)
def test_an_api_request_without_session_gets_401(traefik: RunningTraefik, idp_url: str, mode: str) -> None:
    answer = through(traefik, mode, "/api/things")
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthenticated"
    assert login_target(answer.json()["login"]) == f"http://app.{SUFFIX[mode]}/api/things"


@pytest.mark.parametrize("mode", MODES)
def test_login_reaches_the_app_with_the_identity(
    traefik: RunningTraefik, idp_url: str, phone: Path, mode: str
) -> None:
    with httpx.Client(timeout=15) as browser:
        host = f"app.{SUFFIX[mode]}"
        first = browser.get(traefik.url("/reports?year=2026"), headers={"Host": host, "Accept": BROWSER})
        assert first.status_code == 302
        back = log_in(browser, idp_url, phone, first.headers["location"])
        assert back.startswith("/auth/return?")
        onward = browser.get(f"{idp_url}{back}")
        assert onward.status_code == 302
        assert onward.headers["location"] == f"http://{host}/reports?year=2026"
        # The browser follows on to the application (the IdP cookie reaches it: same host name here).
        arrived = browser.get(traefik.url("/reports?year=2026"), headers={"Host": host, "Accept": BROWSER})
    assert arrived.json()["path"] == "/reports?year=2026"
    assert identity(arrived) == expected(
        "tina", "Tina Tëster", "tina@example.test", "staff,readers", "qr+pin"
    )


FORGED = [
    ("Remote-User", "admin"),
    ("Remote_User", "admin"),
    ("remote-groups", "admins,vault-keepers"),
    ("REMOTE_GROUPS", "admins"),
    ("Remote-Email", "boss@example.test"),
    ("Remote-Name", "The Boss"),
    ("Remote_Auth_Method", "push+bio"),
    ("remote-auth-method", "qr+pin"),
]
# Aliases beyond the underscore: only the entry point's aliasHeadersStrategy (or the plugin) knows them.
FORGED_ALIASES = [
    ("Remote.User", "admin"),
    ("Remote~Groups", "admins"),
    ("Remote!Email", "boss@example.test"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry_point", ["web", "bare"])
def test_forged_identity_headers_never_reach_the_app(
    traefik: RunningTraefik, tina: str, mode: str, entry_point: str
) -> None:
    forged = FORGED + (FORGED_ALIASES if entry_point == "web" or mode == "plugin" else [])
    answer = through(traefik, mode, "/staff/page", token=tina, headers=forged, entry_point=entry_point)
    assert identity(answer) == expected("tina", "Tina Tëster", "tina@example.test", "staff,readers", "qr+pin")
    anonymous = through(traefik, mode, "/public/page", headers=forged, entry_point=entry_point)
    assert identity(anonymous) == expected()
    assert (
        through(traefik, mode, "/admin", token=tina, headers=forged, entry_point=entry_point).status_code
        == 403
    )
    assert through(traefik, mode, "/admin", headers=forged, entry_point=entry_point).status_code == 401


@pytest.mark.parametrize("mode", MODES)
def test_access_rules(traefik: RunningTraefik, tina: str, minter: Minter, mode: str) -> None:
    ada = minter.session("ada", ("admins",))
    assert through(traefik, mode, "/admin/users", token=tina).json() == {"error": "forbidden"}
    page = through(traefik, mode, "/admin/users", token=tina, accept=BROWSER)
    assert page.status_code == 403 and "Not allowed" in page.text
    assert identity(through(traefik, mode, "/admin/users", token=ada))[0] == ("Remote-User", "ada")
    assert through(traefik, mode, "/staff", token=ada).status_code == 403
    assert through(traefik, mode, "/", token=tina, host="vault").status_code == 403
    assert through(traefik, mode, "/closed", token=ada).status_code == 403
    assert through(traefik, mode, "/closed", accept=BROWSER).status_code == 403
    assert identity(through(traefik, mode, "/public/x", token=tina))[0] == ("Remote-User", "tina")
    # Spellings of /admin that a rule on /admin must still catch.
    for path in ("/public/../admin", "/public/%2e%2e/admin", "/admin;x=1", "/%61dmin", "//admin/"):
        assert through(traefik, mode, path, token=tina).status_code == 403, path


def bad_tokens(minter: Minter, tina: str) -> dict[str, str]:
    head, payload, signature = tina.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["admins"]
    raised = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    stranger = OKPKey.import_key(ed25519.Ed25519PrivateKey.generate())
    none = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": TOKEN_TYPE}).encode()).rstrip(b"=")
    return {
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered claims": f"{head}.{raised}.{signature}",
        "alg none": f"{none.decode()}.{payload}.",
        "expired": minter.session("tina", ("admins",), ago=10 * 3600),
        "wrong audience": minter.token(aud="some-other-app"),
        "wrong issuer": minter.token(iss="https://idp.evil.example"),
        "not yet issued": minter.token(iat=int(time.time()) + 3600),
        "wrong type": minter.token(typ="JWT"),
        "unknown key": minter.token(kid="0123456789abcdef", key=stranger),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("mode", MODES)
def test_tokens_that_are_not_sessions_get_nowhere(
    traefik: RunningTraefik, minter: Minter, tina: str, mode: str
) -> None:
    for name, token in bad_tokens(minter, tina).items():
        assert through(traefik, mode, "/staff", token=token).status_code == 401, name
        assert through(traefik, mode, "/admin", token=token, accept=BROWSER).status_code == 302, name
        assert identity(through(traefik, mode, "/public", token=token)) == expected(), name


def test_both_modes_give_the_same_answers(traefik: RunningTraefik, minter: Minter, tina: str) -> None:
    ada = minter.session("ada", ("admins",))
    cases: list[dict[str, Any]] = [
        {"path": "/x?y=1", "accept": BROWSER},
        {"path": "/x?y=%2F&z", "accept": API},
        {"path": "/staff/a", "token": tina},
        {"path": "/staff/a", "token": tina, "headers": FORGED},
        {"path": "/public", "headers": FORGED},
        {"path": "/public", "token": ada},
        {"path": "/admin", "token": tina},
        {"path": "/admin", "token": tina, "accept": BROWSER},
        {"path": "/admin", "token": ada, "method": "POST"},
        {"path": "/", "token": ada, "host": "vault"},
        {"path": "/closed"},
        {"path": "/closed", "accept": BROWSER},
        {"path": "/staff", "token": tina, "accept": "text/html;q=0"},
        *(
            {"path": "/staff", "token": token, "accept": BROWSER}
            for token in bad_tokens(minter, tina).values()
        ),
    ]
    for case in cases:
        answers = {mode: summary(through(traefik, mode, **case), mode) for mode in MODES}
        assert answers["forward-auth"] == answers["plugin"], case


def test_logout_at_the_idp_ends_access(traefik: RunningTraefik, idp_url: str, phone: Path) -> None:
    with httpx.Client(timeout=15) as browser:
        log_in(browser, idp_url, phone, f"{idp_url}/login?next=/whoami")
        token = browser.cookies["nextauth_session"]
        for mode in MODES:
            assert identity(through(traefik, mode, "/staff", token=token))[0] == ("Remote-User", "tina")
        assert browser.post(f"{idp_url}/logout").status_code == 302
    # A copy of the token is worth nothing now: at once through forward-auth, and through the plugin as
    # soon as its ended list is refreshed (every REFRESH seconds; after MAX_STALE it asks the IdP).
    assert through(traefik, "forward-auth", "/staff", token=token).status_code == 401
    deadline = time.monotonic() + MAX_STALE + 2
    while through(traefik, "plugin", "/staff", token=token).status_code != 401:
        assert time.monotonic() < deadline, "the plugin still lets an ended session through"
        time.sleep(0.2)
    assert through(traefik, "plugin", "/staff", token=token, accept=BROWSER).status_code == 302


@pytest.mark.parametrize("mode", ["dead-fa", "dead-plugin"])
def test_nothing_gets_through_while_the_idp_is_unreachable(
    traefik: RunningTraefik, tina: str, mode: str
) -> None:
    for path in ("/staff", "/public"):
        for token in (tina, None):
            answer = through(traefik, mode, path, token=token, headers=FORGED)
            assert answer.status_code >= 500, (path, answer.status_code, answer.text)


# -- the plugin's own behaviour --------------------------------------------------------------------------


def settle(traefik: RunningTraefik, proxy: IdpProxy, token: str) -> None:
    """Until the plugin decides about ``token`` from fresh lists of its own again."""
    deadline = time.monotonic() + MAX_STALE + 5
    while True:
        before = proxy.calls["/auth/forward"]
        assert through(traefik, "plugin", "/public", token=token).status_code == 200
        if proxy.calls["/auth/forward"] == before:
            return
        assert time.monotonic() < deadline, "the plugin keeps asking the IdP"
        time.sleep(0.3)


def test_the_plugin_decides_without_asking_the_idp(
    traefik: RunningTraefik, proxy: IdpProxy, tina: str
) -> None:
    settle(traefik, proxy, tina)
    before = proxy.calls["/auth/forward"]
    for _ in range(10):
        assert through(traefik, "plugin", "/staff", token=tina).status_code == 200
        assert through(traefik, "plugin", "/admin", token=tina).status_code == 403
        assert through(traefik, "plugin", "/staff").status_code == 401
        assert through(traefik, "plugin", "/public").status_code == 200
    assert proxy.calls["/auth/forward"] == before


def test_the_plugin_asks_the_idp_when_its_ended_list_is_stale(
    traefik: RunningTraefik, proxy: IdpProxy, tina: str
) -> None:
    settle(traefik, proxy, tina)
    proxy.ended_fails = True
    try:
        time.sleep(MAX_STALE + 1.5)
        before = proxy.calls["/auth/forward"]
        answer = through(traefik, "plugin", "/staff", token=tina)
        assert identity(answer)[0] == ("Remote-User", "tina")
        assert proxy.calls["/auth/forward"] == before + 1
        # Anonymous requests need no list: still decided locally.
        assert through(traefik, "plugin", "/staff").status_code == 401
        assert proxy.calls["/auth/forward"] == before + 1
    finally:
        proxy.ended_fails = False
    settle(traefik, proxy, tina)


def test_the_plugin_asks_the_idp_about_a_rule_it_cannot_read(
    traefik: RunningTraefik, proxy: IdpProxy, tina: str
) -> None:
    settle(traefik, proxy, tina)

    def newer_idp(document: dict[str, Any]) -> None:
        # As if a later IdP had added a condition this plugin does not know to the /staff rule.
        staff = next(rule for rule in document["rules"] if rule["paths"] == ["/staff"])
        staff["networks"] = ["192.0.2.0/24"]

    proxy.policy_patch = newer_idp
    try:
        # The plugin refreshes its policy while requests arrive (every second here).
        deadline = time.monotonic() + 5
        while True:
            before = proxy.calls["/auth/forward"]
            assert identity(through(traefik, "plugin", "/staff", token=tina))[0] == ("Remote-User", "tina")
            if proxy.calls["/auth/forward"] == before + 1:
                break
            assert time.monotonic() < deadline, "the plugin never took up the new policy"
            time.sleep(0.3)
        # Rules before the unreadable one still decide locally.
        assert through(traefik, "plugin", "/public", token=tina).status_code == 200
        assert through(traefik, "plugin", "/", token=tina, host="vault").status_code == 403
        assert proxy.calls["/auth/forward"] == before + 1
    finally:
        proxy.policy_patch = None
    deadline = time.monotonic() + 5
    while True:
        before = proxy.calls["/auth/forward"]
        through(traefik, "plugin", "/staff", token=tina)
        if proxy.calls["/auth/forward"] == before:
            break
        assert time.monotonic() < deadline, "the plugin never took up the old policy again"
        time.sleep(0.3)


def test_the_plugin_asks_the_idp_about_a_key_it_has_not_seen(
    traefik: RunningTraefik, proxy: IdpProxy, minter: Minter, tina: str
) -> None:
    settle(traefik, proxy, tina)
    minter.keys.rotate("session", "Ed25519")
    token = minter.session("ada", ("admins",))
    before = proxy.calls["/auth/forward"]
    deadline = time.monotonic() + 15
    # The IdP reloads its key ring for an unknown key at most every few seconds: an earlier test's
    # made-up key may have used that turn.
    while (answer := through(traefik, "plugin", "/admin", token=token)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    assert identity(answer)[0] == ("Remote-User", "ada")
    assert proxy.calls["/auth/forward"] > before
    # The plugin learnt the key from the IdP (asking it, or in the key set it serves): the IdP has it.
    assert identity(through(traefik, "forward-auth", "/admin", token=token))[0] == ("Remote-User", "ada")
    # Soon the plugin has the new key too, and decides alone again.
    settle(traefik, proxy, token)


def test_traefik_runs_the_plugin_from_the_repository(traefik: RunningTraefik) -> None:
    """The plugin was loaded by Traefik's interpreter from the repository's sources (not a stub)."""
    routers = {item["name"]: item for item in traefik.api("/api/http/routers")}
    assert routers["plugin@file"]["status"] == "enabled"
    middlewares = {item["name"]: item for item in traefik.api("/api/http/middlewares")}
    assert middlewares["nextauth-plugin@file"]["type"] == "nextauth"


@pytest.mark.parametrize("mode", MODES)
def test_the_client_cannot_choose_what_is_checked(traefik: RunningTraefik, tina: str, mode: str) -> None:
    """Traefik sets X-Forwarded-*; a client's own X-Original-* headers (the nginx convention, also read
    by /auth/forward) never make /admin look like /public: refused or decided on the real request."""
    for name, value in (
        ("X-Original-URL", f"http://app.{SUFFIX[mode]}/public"),
        ("X-Original-URL", "/public"),
        ("X-Original-Method", "OPTIONS"),
        ("X-Forwarded-Uri", "/public"),
    ):
        answer = through(traefik, mode, "/admin", token=tina, headers=[(name, value)])
        assert answer.status_code in (400, 403), (name, value, answer.status_code)
        assert through(traefik, mode, "/admin", headers=[(name, value)]).status_code in (400, 401)
