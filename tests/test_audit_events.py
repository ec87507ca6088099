"""What ns's flows record in the audit trail, in-process: every reason a login fails, who ended a session,
enrolments and account changes, with the user they are about. The webhook and REST sides are in
``tests/test_audit_flows.py``."""

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from authserver.ns.accounts import AccountService
from authserver.ns.errors import ServiceError
from authserver.operations import OperationError
from nextauth_core.encoding import unb64url
from nextauth_core.hsid import hsid_for
from tests.fixtures.ns_services import BROWSER, InProcessNs, Phone


@pytest.fixture
def ns(make_ns: Callable[..., InProcessNs]) -> InProcessNs:
    return make_ns()


def _nonce() -> str:
    return secrets.token_urlsafe(24)


def recorded(ns: InProcessNs, kind: str) -> list[dict[str, Any]]:
    return ns.login.audit.query(types=[kind], limit=1000)[0]


def reasons(ns: InProcessNs) -> list[tuple[str | None, str]]:
    return [(e["subject"], e["data"]["reason"]) for e in recorded(ns, "login.failed")]


def test_enrolment_and_login_are_recorded_with_the_user(ns: InProcessNs) -> None:
    phone = Phone(ns)
    account = phone.enrol("alice")
    (started,) = recorded(ns, "enrolment.started")
    (completed,) = recorded(ns, "enrolment.completed")
    assert started["subject"] == completed["subject"] == "alice"
    assert completed["data"] == {"account": account, "enrolment": started["data"]["enrolment"]}
    nonce = _nonce()
    phone.log_in(nonce)
    (succeeded,) = recorded(ns, "login.succeeded")
    assert succeeded["subject"] == "alice" and succeeded["server"] == "default"
    assert succeeded["actor"] == "phone" and succeeded["outcome"] == "success"
    assert succeeded["data"] == {
        "account": account,
        "session": hsid_for(nonce),
        "method": "qr",
        "second_factor": "pin",
    }
    assert reasons(ns) == []


def test_every_refused_login_says_why(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("bob")
    nonce = _nonce()

    def qr() -> str:
        return ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""

    for reason in ("wrong_pin", "locked", "declined", "made-up"):
        ns.login.login_cancel(phone.scan_login(qr()).channel, {"reason": reason})
    with pytest.raises(OperationError):
        ns.login.login_finish(phone.scan_login(qr()).channel, {"signature": "A" * 86})
    with pytest.raises(OperationError):
        phone.confirm_login(phone.scan_login(qr()), attested_by="app-2")
    slow = phone.scan_login(qr())
    ns.login._qr_ttl = 0.0  # the phone took longer than twice the QR's lifetime (the time is monotonic)
    with pytest.raises(OperationError):
        phone.confirm_login(slow)
    assert reasons(ns) == [
        ("bob", "wrong_pin"),
        ("bob", "locked"),
        ("bob", "declined"),
        ("bob", "declined"),
        ("bob", "bad_signature"),
        ("bob", "second_factor_device_mismatch"),
        ("bob", "timeout"),
    ]
    assert all(e["data"]["session"] == hsid_for(nonce) for e in recorded(ns, "login.failed"))


def test_an_expired_or_used_code_and_a_blocked_account_are_recorded(ns: InProcessNs) -> None:
    phone = Phone(ns)
    account = phone.enrol("carol")
    qr = ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or ""
    phone.scan_login(qr)
    with pytest.raises(OperationError) as used:
        phone.scan_login(qr)
    assert used.value.code == "expired"
    accounts = AccountService(ns.engine, ns.login.audit)
    accounts.set_blocked("default", account, True, actor="support-desk")
    with pytest.raises(OperationError) as blocked:
        phone.scan_login(ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or "")
    assert blocked.value.code == "blocked"
    assert reasons(ns) == [("carol", "expired"), ("carol", "blocked")]
    (change,) = recorded(ns, "account.blocked")
    assert (change["subject"], change["actor"], change["data"]) == (
        "carol",
        "support-desk",
        {"account": account},
    )
    accounts.set_blocked("default", account, False, actor="support-desk")
    accounts.delete("default", account, actor="support-desk")
    assert [e["subject"] for e in recorded(ns, "account.unblocked") + recorded(ns, "account.deleted")] == [
        "carol",
        "carol",
    ]
    with pytest.raises(ServiceError):
        accounts.delete("default", account, actor="support-desk")
    assert len(recorded(ns, "account.deleted")) == 1  # nothing happened, nothing recorded


def test_a_wrong_number_is_recorded(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("dora")
    nonce = _nonce()
    phone.log_in(nonce)
    ns.login.logout(ns.server.id, hsid_for(nonce), "application")
    provoked = ns.push.provoke_session(ns.server, hsid_for(nonce), {})
    (message,) = phone.inbox()
    wrong = next(n for n in message["numbers"] if n != provoked["number"])
    with pytest.raises(OperationError):
        phone.confirm_login(phone.open_login(message["push"], unb64url(message["challenge"])), number=wrong)
    assert reasons(ns) == [("dora", "wrong_number")]


def test_who_ended_a_session_is_recorded_once(ns: InProcessNs) -> None:
    phone = Phone(ns)
    account = phone.enrol("erin")
    first, second = _nonce(), _nonce()
    phone.log_in(first)
    phone.log_in(second)
    assert ns.login.logout(ns.server.id, hsid_for(first), "application") is True
    assert ns.login.logout(ns.server.id, hsid_for(first), "application") is False  # already ended
    assert ns.login.logout_from_phone(phone.channel(), {}) == {"ended": 1}
    ended = recorded(ns, "session.ended")
    assert [(e["actor"], e["data"]["session"]) for e in ended] == [
        ("application", hsid_for(first)),
        ("phone", hsid_for(second)),
    ]
    assert all(e["subject"] == "erin" and e["data"]["account"] == account for e in ended)
