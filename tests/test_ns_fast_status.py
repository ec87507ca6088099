"""The session status call answered before Flask (authserver.ns.rest.fast_status): the same answer as the
view, byte for byte, for the usual request; everything else (wrong or missing key, a key without the
role, a client over its budget, an unknown server, a bad nonce, an outage) handed to the view, which
refuses it once, logs it once and counts it once."""

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from limits.storage import MemoryStorage

from authserver.audit import AuditTrail
from authserver.ns.access import AccessControl
from authserver.ns.api import make_api
from authserver.ns.rest.context import EXTENSION
from authserver.ns.rest.fast_status import ROUTE, FastSessionStatus
from authserver.ratelimit import RateLimiter, parse_rule
from tests.fixtures.ns_services import InProcessNs, Phone
from tests.fixtures.wsgi_calls import counter, get

ROOT_KEY = "na_" + "r" * 43
PATH = "/v1/servers/default/sessions/"


class Apps:
    def __init__(self, ns: InProcessNs) -> None:
        self.ns = ns
        self.access = AccessControl(ns.engine, "ns", ROOT_KEY)
        self.access.limit_failures(
            RateLimiter("ns", MemoryStorage()), parse_rule("api_key_failures", "X", "3/minute")
        )
        self.flask = make_api(
            ns.engine,
            ns.servers,
            self.access,
            ns.login,
            ns.enrolment,
            ns.push,
            ns.transactions,
            audit=AuditTrail(ns.engine, "ns"),
        )
        self.fast = FastSessionStatus(self.flask, self.flask.extensions[EXTENSION])
        self.handed_on: list[str] = []
        flask = self.flask

        def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            self.handed_on.append(environ["PATH_INFO"])
            return flask(environ, start_response)

        self.fast._app = view  # what the fast path hands on reaches the view through here


@pytest.fixture
def apps(make_ns: Callable[..., InProcessNs]) -> Apps:
    return Apps(make_ns())


def _nonce() -> str:
    return secrets.token_urlsafe(24)


def _headers(nonce: str, key: str = ROOT_KEY, **more: str) -> dict[str, str]:
    return {"X-apikey": key, "X-nonce": nonce, **more}


def test_the_usual_request_gets_the_views_answer_without_flask(apps: Apps) -> None:
    nonce = _nonce()
    visitor = {"X-client-ip": "198.51.100.4", "X-user-agent": "Firefox on Linux"}
    before = counter("nextauth_rest_requests_total", component="ns", route=ROUTE, method="GET", status="200")
    fast = get(apps.fast, PATH, _headers(nonce, **visitor))
    assert apps.handed_on == []
    assert counter(
        "nextauth_rest_requests_total", component="ns", route=ROUTE, method="GET", status="200"
    ) == (before + 1)
    # The same session asked of the view: the same QR (the live one), the same bytes and headers.
    slow = get(apps.flask, PATH, _headers(nonce, **visitor))
    assert fast[0] == slow[0] == "200 OK"
    assert fast[2] == slow[2]
    assert sorted(fast[1]) == sorted(slow[1])
    # The phone was told who asks, as the view would have told it.
    phone = Phone(apps.ns)
    phone.enrol("alice")
    qr = get(apps.fast, PATH, _headers(_nonce(), **visitor))
    scanned = phone.scan_login(json.loads(qr[2])["loginqrdata"])
    assert scanned.started["requester"] == {"ip": "198.51.100.4", "user_agent": "Firefox on Linux"}


def test_a_logged_in_session_reads_the_same_through_both(apps: Apps) -> None:
    phone = Phone(apps.ns)
    account = phone.enrol("alice")
    nonce = _nonce()
    view = json.loads(get(apps.fast, PATH, _headers(nonce))[2])
    phone.confirm_login(phone.scan_login(view["loginqrdata"]))
    fast, slow = get(apps.fast, PATH, _headers(nonce)), get(apps.flask, PATH, _headers(nonce))
    assert fast[2] == slow[2]
    done = json.loads(fast[2])
    assert (done["loggedin"], done["userid"], done["accountid"], done["canprovoke"]) == (
        True,
        "alice",
        account,
        False,
    )
    assert apps.handed_on == []


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (PATH, {"X-nonce": "n" * 10}, "400 BAD REQUEST"),  # a bad nonce
        (PATH, {"X-apikey": None}, "401 UNAUTHORIZED"),  # no key
        (PATH, {"X-apikey": "na_" + "w" * 43}, "401 UNAUTHORIZED"),  # a wrong key
        ("/v1/servers/nowhere/sessions/", {}, "404 NOT FOUND"),  # an unknown server
        ("/v1/servers/de fault/sessions/", {}, "404 NOT FOUND"),  # not an id the view allows
        ("/v1/servers/default/sessions", {}, "308 PERMANENT REDIRECT"),  # not the route
    ],
)
def test_anything_else_is_handed_to_the_view(
    apps: Apps, path: str, headers: dict[str, str | None], status: str
) -> None:
    given = {key: value for key, value in {**_headers(_nonce()), **headers}.items() if value is not None}
    answer = get(apps.fast, path, given)
    assert answer[0] == status
    assert apps.handed_on == [path]


def test_a_key_without_the_sessions_role_is_refused_by_the_view(apps: Apps) -> None:
    users_only = apps.access.create_key("directory", ["users"])
    assert get(apps.fast, PATH, _headers(_nonce(), users_only))[0] == "403 FORBIDDEN"
    assert apps.handed_on == [PATH]


def test_wrong_keys_are_counted_once_and_a_used_up_budget_refuses_the_right_key(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="nextauth.security")
    for _ in range(3):
        assert get(apps.fast, PATH, _headers(_nonce(), "na_" + "w" * 43))[0] == "401 UNAUTHORIZED"
    assert len([r for r in caplog.records if "API key refused" in r.getMessage()]) == 3  # once each
    # The budget (3 a minute) is used up: the right key is refused too, by the view, with its 429.
    refused = get(apps.fast, PATH, _headers(_nonce()))
    assert refused[0] == "429 TOO MANY REQUESTS"
    assert "Retry-After" in dict(refused[1])
    # Another client is not affected, and is answered here.
    apps.handed_on.clear()
    assert get(apps.fast, PATH, _headers(_nonce()), remote_addr="203.0.113.9")[0] == "200 OK"
    assert apps.handed_on == []


def test_an_outage_is_answered_by_the_view(apps: Apps, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def away(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(apps.ns.login, "status_and_row", away)
    answer = get(apps.fast, PATH, _headers(_nonce()))
    assert answer[0] == "503 SERVICE UNAVAILABLE"
    assert apps.handed_on == [PATH]
