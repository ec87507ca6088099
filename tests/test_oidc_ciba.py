"""OpenID Connect CIBA (Client-Initiated Backchannel Authentication Core 1.0) against the real system: a
client names the user, the phone simulator receives the push (binding message and client name on screen,
number matching) and approves or declines; the client polls the token endpoint, or is pinged first.

No independent CIBA client exists in our dependencies, so the requests are written from the spec with
httpx, as a client would send them. Each rule has its negative case."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import idp_cli as cli
from tests.fixtures.system import RunningSystem, free_port, run_app

pytestmark = pytest.mark.e2e

GRANT = "urn:openid:params:grant-type:ciba"
INTERVAL = 1  # what the IdP asks for between polls: NEXTAUTH_IDP_OIDC_POLL_SECONDS below (default 5)
# Each user may be asked 5 times in 5 minutes: the tests spread over three users.
ALICE, BRUNO, CARLA = "alice-ciba", "bruno-ciba", "carla-ciba"


class Sink:
    """A client's notification endpoint: records each ping's Authorization header and JSON body."""

    def __init__(self) -> None:
        self.pings: list[tuple[str, bytes]] = []
        received = self.pings

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append((self.headers.get("Authorization", ""), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/ciba-ping"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.pings) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.pings)


@pytest.fixture(scope="module")
def system_env() -> dict[str, str]:
    return {"NEXTAUTH_IDP_OIDC_POLL_SECONDS": str(INTERVAL)}


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    running = Sink()
    yield running
    running.server.shutdown()


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ciba-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    code, registered = run_app(home, "register", "--pin", PIN)
    assert code == 0 and registered["mailbox"], registered
    for user in (ALICE, BRUNO, CARLA):
        enrol(system, home, user)
    return home


def _client(system: RunningSystem, name: str, *extra: str) -> dict[str, Any]:
    return cli(system, "oidc-client", "add", "--name", name, "--grant", GRANT, *extra)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def poller(system: RunningSystem) -> dict[str, Any]:
    return _client(system, "Example Bank", "--ciba-mode", "poll")


@pytest.fixture(scope="module")
def other(system: RunningSystem) -> dict[str, Any]:
    return _client(system, "Other Shop", "--ciba-mode", "poll")


@pytest.fixture(scope="module")
def pinged(system: RunningSystem, sink: Sink) -> dict[str, Any]:
    return _client(system, "Example Kiosk", "--ciba-mode", "ping", "--ciba-notification-endpoint", sink.url)


@pytest.fixture(scope="module")
def unanswered(system: RunningSystem, poller: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """A request nobody answers, asked early (by the first tests) so the module's other tests pass the time
    until its expiry is checked, last."""
    started = ask(system, poller, login_hint=ALICE, binding_message="Nobody answers", requested_expiry="10")
    assert started.status_code == 200, started.text
    return started.json(), time.monotonic()


def idp(system: RunningSystem) -> str:
    return f"http://127.0.0.1:{system.port('idp', 'http')}"


def ask(system: RunningSystem, client: dict[str, Any], **params: str) -> httpx.Response:
    """The backchannel authentication request (CIBA 7.1), client_secret_basic."""
    return httpx.post(
        f"{idp(system)}/oidc/backchannel-authentication",
        data={"scope": "openid profile", **params},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )


def poll(system: RunningSystem, client: dict[str, Any], auth_req_id: str) -> httpx.Response:
    return httpx.post(
        f"{idp(system)}/oidc/token",
        data={"grant_type": GRANT, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )


def poll_until_done(system: RunningSystem, client: dict[str, Any], auth_req_id: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(INTERVAL + 0.2)
        answer = poll(system, client, auth_req_id)
        if answer.status_code != 400 or answer.json()["error"] != "authorization_pending":
            return answer
    raise AssertionError("still pending after a minute")


def pushed_request(phone: Path, user: str, message: str) -> dict[str, Any]:
    """The login request on the phone for ``user`` whose binding message is ``message``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        code, inbox = run_app(phone, "inbox")
        assert code == 0, inbox
        for item in inbox["messages"]:
            if item.get("type") == "login" and item["userid"] == user:
                if item.get("context", {}).get("message") == message:
                    return item  # type: ignore[no-any-return]
        time.sleep(0.3)
    raise AssertionError(f"no push for {user} with {message!r}")


def answer_on_phone(phone: Path, item: dict[str, Any], *args: str) -> dict[str, Any]:
    code, answer = run_app(phone, "approve", *args, "--", item["id"])
    assert code == 0, answer
    return answer  # type: ignore[no-any-return]


def id_token_claims(system: RunningSystem, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{idp(system)}/oidc/jwks", timeout=10).json())
    return jwt.decode(token, keys, algorithms=["ES256", "RS256"]).claims


# -- discovery and registration -------------------------------------------------------------------------


def test_discovery_names_the_endpoint_the_modes_and_the_grant(system: RunningSystem) -> None:
    config = httpx.get(f"{idp(system)}/.well-known/openid-configuration", timeout=10).json()
    assert config["backchannel_authentication_endpoint"] == f"{idp(system)}/oidc/backchannel-authentication"
    assert config["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert config["backchannel_user_code_parameter_supported"] is False
    assert GRANT in config["grant_types_supported"]
    assert "backchannel_authentication_request_signing_alg_values_supported" not in config


def test_client_metadata(
    poller: dict[str, Any], pinged: dict[str, Any], sink: Sink, unanswered: tuple[dict[str, Any], float]
) -> None:
    assert poller["backchannel_token_delivery_mode"] == "poll"
    assert poller["backchannel_user_code_parameter"] is False
    assert "backchannel_client_notification_endpoint" not in poller
    assert pinged["backchannel_token_delivery_mode"] == "ping"
    assert pinged["backchannel_client_notification_endpoint"] == sink.url


# -- poll mode ------------------------------------------------------------------------------------------


def test_poll_mode_approved_on_the_phone_with_number_matching(
    system: RunningSystem, phone: Path, poller: dict[str, Any], other: dict[str, Any]
) -> None:
    started = ask(system, poller, login_hint=ALICE, binding_message="Pay EUR 12 to Bob")
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval", "nextauth_number"}
    assert body["interval"] == INTERVAL and 0 < body["expires_in"] <= 120
    assert len(body["auth_req_id"]) >= 40 and started.headers["Cache-Control"] == "no-store"
    auth_req_id, number = body["auth_req_id"], body["nextauth_number"]
    # Before the person answers: pending; asking again at once: slow down.
    pending = poll(system, poller, auth_req_id)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    too_soon = poll(system, poller, auth_req_id)
    assert too_soon.status_code == 400 and too_soon.json()["error"] == "slow_down"

    item = pushed_request(phone, ALICE, "Pay EUR 12 to Bob")
    # The phone shows who asks and why, and three numbers of which the client shows one.
    assert item["context"] == {"client_name": "Example Bank", "message": "Pay EUR 12 to Bob"}
    assert item["shows"] == ["Example Bank asks: Pay EUR 12 to Bob"]
    assert number in item["numbers"] and len(item["numbers"]) == 3
    approved = answer_on_phone(phone, item, f"--number={number}", "--pin", PIN)
    assert approved["result"] == "logged_in" and approved["context"]["message"] == "Pay EUR 12 to Bob"

    done = poll_until_done(system, poller, auth_req_id)
    assert done.status_code == 200, done.text
    tokens = done.json()
    assert tokens["token_type"].lower() == "bearer" and tokens["access_token"]
    claims = id_token_claims(system, tokens["id_token"])
    assert claims["sub"] == ALICE and claims["aud"] == [poller["client_id"]]
    assert claims["iss"] == idp(system) and "pin" in claims["amr"]
    info = httpx.get(
        f"{idp(system)}/oidc/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert info.status_code == 200 and info.json()["sub"] == ALICE
    # Our ID token names the user for the next request, for the client it was issued to only.
    hinted = ask(system, poller, id_token_hint=tokens["id_token"], binding_message="Again")
    assert hinted.status_code == 200, hinted.text
    foreign = ask(system, other, id_token_hint=tokens["id_token"])
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_request"
    # The auth_req_id was used: once only.
    time.sleep(INTERVAL + 0.2)
    replay = poll(system, poller, auth_req_id)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_declined_on_the_phone_is_access_denied(
    system: RunningSystem, phone: Path, poller: dict[str, Any]
) -> None:
    started = ask(system, poller, login_hint=ALICE, binding_message="Transfer 9000")
    auth_req_id = started.json()["auth_req_id"]
    item = pushed_request(phone, ALICE, "Transfer 9000")
    declined = answer_on_phone(phone, item, "--decline")
    assert declined["result"] == "declined"
    denied = poll_until_done(system, poller, auth_req_id)
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"
    time.sleep(INTERVAL + 0.2)
    again = poll(system, poller, auth_req_id)
    assert again.json()["error"] == "invalid_grant"


def test_the_wrong_number_on_the_phone_is_access_denied(
    system: RunningSystem, phone: Path, poller: dict[str, Any]
) -> None:
    started = ask(system, poller, login_hint=BRUNO, binding_message="Sign in at the counter")
    body = started.json()
    item = pushed_request(phone, BRUNO, "Sign in at the counter")
    wrong = next(n for n in item["numbers"] if n != body["nextauth_number"])
    code, answer = run_app(phone, "approve", f"--number={wrong}", "--pin", PIN, "--", item["id"])
    assert code == 1 and answer["code"] == "wrong_number"
    denied = poll_until_done(system, poller, body["auth_req_id"])
    assert denied.json()["error"] == "access_denied"


def test_another_clients_auth_req_id_is_refused_and_stays_usable(
    system: RunningSystem, poller: dict[str, Any], other: dict[str, Any]
) -> None:
    body = ask(system, poller, login_hint=CARLA, binding_message="Whose is it").json()
    stolen = poll(system, other, body["auth_req_id"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    own = poll(system, poller, body["auth_req_id"])
    assert own.json()["error"] == "authorization_pending"
    made_up = poll(system, poller, "x" * 43)
    assert made_up.json()["error"] == "invalid_grant"


# -- ping mode ------------------------------------------------------------------------------------------


def test_ping_mode_notifies_the_client_then_it_collects_the_tokens(
    system: RunningSystem, phone: Path, pinged: dict[str, Any], sink: Sink
) -> None:
    notification_token = "ping-token-" + "k" * 20
    started = ask(
        system,
        pinged,
        login_hint=BRUNO,
        binding_message="Open locker 7",
        client_notification_token=notification_token,
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert "interval" not in body  # ping clients wait to be told
    item = pushed_request(phone, BRUNO, "Open locker 7")
    assert item["shows"] == ["Example Kiosk asks: Open locker 7"]
    before = len(sink.pings)
    answer_on_phone(phone, item, f"--number={body['nextauth_number']}", "--pin", PIN)
    pings = sink.wait_for(before + 1)
    assert len(pings) == before + 1, "no ping"
    authorization, sent = pings[-1]
    assert authorization == f"Bearer {notification_token}"
    assert httpx.Response(200, content=sent).json() == {"auth_req_id": body["auth_req_id"]}
    tokens = poll(system, pinged, body["auth_req_id"])
    assert tokens.status_code == 200, tokens.text
    assert id_token_claims(system, tokens.json()["id_token"])["sub"] == BRUNO


def test_ping_mode_needs_a_notification_token(system: RunningSystem, pinged: dict[str, Any]) -> None:
    refused = ask(system, pinged, login_hint=CARLA)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    short = ask(system, pinged, login_hint=CARLA, client_notification_token="short")
    assert short.status_code == 400 and short.json()["error"] == "invalid_request"


# -- no user enumeration, bounded, refusals ---------------------------------------------------------------


def test_an_unknown_user_gets_the_same_answer(system: RunningSystem, poller: dict[str, Any]) -> None:
    timings, bodies = {}, {}
    for user in (CARLA, "nobody-by-that-name"):
        began = time.monotonic()
        answer = ask(system, poller, login_hint=user, binding_message="Same for all")
        timings[user] = time.monotonic() - began
        assert answer.status_code == 200, answer.text
        bodies[user] = answer.json()
    known, unknown = bodies[CARLA], bodies["nobody-by-that-name"]
    assert set(known) == set(unknown)
    assert known["expires_in"] == unknown["expires_in"] and known["interval"] == unknown["interval"]
    assert 10 <= unknown["nextauth_number"] <= 99 and len(unknown["auth_req_id"]) == len(known["auth_req_id"])
    # The push goes out after the answer: neither waits for ns or the message center.
    assert max(timings.values()) < 1.0, timings
    # Both are simply pending.
    for body in (known, unknown):
        assert poll(system, poller, body["auth_req_id"]).json()["error"] == "authorization_pending"


def test_requests_for_one_user_are_limited(system: RunningSystem, other: dict[str, Any]) -> None:
    answers = [ask(system, other, login_hint="someone-popular").status_code for _ in range(6)]
    assert answers[:5] == [200] * 5
    assert answers[5] == 429
    limited = ask(system, other, login_hint="someone-popular")
    assert limited.json()["error"] == "slow_down" and int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"login_hint_token": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request"),
        ({"login_hint": ALICE, "id_token_hint": "x.y.z"}, "invalid_request"),
        ({}, "invalid_request"),
        ({"id_token_hint": "not-a-token"}, "invalid_request"),
        ({"login_hint": ALICE, "scope": "profile"}, "invalid_scope"),
        ({"login_hint": ALICE, "binding_message": "x" * 101}, "invalid_binding_message"),
        ({"login_hint": ALICE, "binding_message": "line one\nline two"}, "invalid_binding_message"),
        ({"login_hint": ALICE, "binding_message": "EUR 1\u202e00"}, "invalid_binding_message"),
        ({"login_hint": ALICE, "requested_expiry": "-5"}, "invalid_request"),
        ({"login_hint": ALICE, "request": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request"),
    ],
)
def test_invalid_requests_are_refused(
    system: RunningSystem, poller: dict[str, Any], params: dict[str, str], error: str
) -> None:
    refused = ask(system, poller, **params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == error


def test_the_client_must_authenticate_and_be_registered_for_ciba(
    system: RunningSystem, poller: dict[str, Any]
) -> None:
    url = f"{idp(system)}/oidc/backchannel-authentication"
    anonymous = httpx.post(url, data={"scope": "openid", "login_hint": ALICE}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    wrong = httpx.post(
        url, data={"scope": "openid", "login_hint": ALICE}, auth=(poller["client_id"], "wrong"), timeout=10
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    code_client = cli(system, "oidc-client", "add", "--name", "Web", "--redirect-uri", "http://127.0.0.1/cb")
    unregistered = ask(system, code_client, login_hint=ALICE)
    assert unregistered.status_code == 400 and unregistered.json()["error"] == "unauthorized_client"
    # Nor may it redeem someone's auth_req_id at the token endpoint.
    token = poll(system, code_client, "x" * 43)
    assert token.json()["error"] == "unauthorized_client"


def test_an_unanswered_request_expires(
    system: RunningSystem, poller: dict[str, Any], unanswered: tuple[dict[str, Any], float]
) -> None:
    body, asked_at = unanswered
    assert body["expires_in"] == 10
    if time.monotonic() - asked_at < 9.5:  # the module ran faster than the request's life
        assert poll(system, poller, body["auth_req_id"]).json()["error"] == "authorization_pending"
    time.sleep(max(0.0, asked_at + 10.5 - time.monotonic()))
    expired = poll(system, poller, body["auth_req_id"])
    assert expired.status_code == 400 and expired.json()["error"] == "expired_token"
