"""ns's QR and push login rules, checked on the login service in-process: the application's side
(``status``) and the app's operations (``login_start``, ``login_finish``, ``login_cancel``), no sockets."""

import json
import secrets
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session as DbSession

from authserver.operations import OperationError
from authserver.storage.flow_models import Account, AuditEvent
from authserver.storage.flow_models import Session as LoginRow
from nextauth_core.encoding import unb64url
from nextauth_core.hsid import hsid_for
from nextauth_core.qr import QRPayload
from tests.fixtures.ns_services import BROWSER, InProcessNs, Phone


def _nonce() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def ns(make_ns: Callable[..., InProcessNs]) -> InProcessNs:
    return make_ns()


def test_qr_login_establishes_the_session_and_tells_the_page(ns: InProcessNs) -> None:
    phone = Phone(ns)
    account = phone.enrol("alice")
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    assert view.loggedin is False and view.hsid == hsid_for(nonce) and view.loginqrdata
    heard = ns.page(view.hsid)
    scanned = phone.scan_login(view.loginqrdata)
    assert scanned.started["requester"] == BROWSER  # the phone sees who is asking
    assert scanned.started["audience"] == ns.server.id
    assert phone.confirm_login(scanned) == {"logged_in": True, "session": view.hsid}
    assert heard() == ["CONFIRMSCAN", "LOGIN"]
    session = ns.login.status(ns.server, nonce, BROWSER)
    assert (session.loggedin, session.userid, session.accountid) == (True, "alice", account)
    assert (session.method, session.second_factor) == ("qr", "pin")
    # Whoever holds only the QR or the hsid has no session: another nonce sees nothing.
    assert ns.login.status(ns.server, _nonce(), BROWSER).loggedin is False


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_account_blocked_between_scan_and_confirmation_gets_no_session(
    make_ns: Callable[..., InProcessNs], database: str, request: pytest.FixtureRequest
) -> None:
    """The finish does not read the account again: recording the session is what checks it, in the same
    statement or transaction (PostgreSQL takes another path there: one statement)."""
    ns = make_ns(db_uri=request.getfixturevalue("postgres_uri") if database == "postgres" else None)
    phone = Phone(ns)
    account = phone.enrol("ivan")
    nonce = _nonce()
    scanned = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    with DbSession(ns.engine) as session:
        session.execute(update(Account).where(Account.id == account).values(blocked=True))
        session.commit()
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(scanned)
    assert refused.value.code == "blocked"
    assert ns.login.status(ns.server, nonce, BROWSER).loggedin is False
    with DbSession(ns.engine) as session:
        assert session.scalar(select(Account.last_login_at).where(Account.id == account)) is None
        session.execute(update(Account).where(Account.id == account).values(blocked=False))
        session.commit()
    # Unblocked: two scans of two codes of this session, both confirmed: the second login replaces the
    # first (ended, kept), and the session belongs to the second.
    one = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    two = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    assert phone.confirm_login(one)["logged_in"] and phone.confirm_login(two)["logged_in"]
    assert ns.login.status(ns.server, nonce, BROWSER).userid == "ivan"
    with DbSession(ns.engine) as session:
        ended = session.scalars(
            select(LoginRow.ended_by).where(LoginRow.hsid == hsid_for(nonce)).order_by(LoginRow.created_at)
        ).all()
        stamped = session.scalar(select(Account.last_login_at).where(Account.id == account))
    assert ended == ["replaced", None] and stamped is not None


# A trigger that refuses a successful login's audit event, in each database's dialect.
REFUSE_LOGIN_EVENT = {
    "sqlite": [
        "CREATE TRIGGER refuse_login_event BEFORE INSERT ON audit_events "
        "WHEN NEW.type = 'io.nextauth.login.succeeded' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_login_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.type = 'io.nextauth.login.succeeded' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_login_event BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_login_event()",
    ],
    "mysql": [
        "CREATE TRIGGER refuse_login_event BEFORE INSERT ON audit_events FOR EACH ROW BEGIN "
        "IF NEW.type = 'io.nextauth.login.succeeded' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END"
    ],
}


def _login_events(ns: InProcessNs, hsid: str) -> list[str]:
    with DbSession(ns.engine) as session:
        rows = session.scalars(
            select(AuditEvent.data).where(AuditEvent.type == "io.nextauth.login.succeeded")
        )
        return [data for data in rows if hsid in data]


def test_a_login_and_its_audit_event_are_stored_together(
    make_ns: Callable[..., InProcessNs], db_uri: str
) -> None:
    """The session and its login.succeeded event are one write: a database that refuses the event
    leaves no session either (the phone is told it failed), and a login that counts has its event."""
    ns = make_ns(db_uri=None if db_uri.startswith("sqlite") else db_uri)
    phone = Phone(ns)
    account = phone.enrol("olga")
    nonce = _nonce()
    hsid = hsid_for(nonce)
    with ns.engine.begin() as connection:
        for statement in REFUSE_LOGIN_EVENT[ns.engine.dialect.name]:
            connection.execute(text(statement))
    scanned = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    with pytest.raises(Exception, match="refused by the test"):
        phone.confirm_login(scanned)
    assert ns.login.status(ns.server, nonce, BROWSER).loggedin is False
    assert _login_events(ns, hsid) == []
    with DbSession(ns.engine) as session:
        assert session.scalar(select(func.count()).select_from(LoginRow).where(LoginRow.hsid == hsid)) == 0
        assert session.scalar(select(Account.last_login_at).where(Account.id == account)) is None
    with ns.engine.begin() as connection:
        connection.execute(
            text(
                "DROP TRIGGER refuse_login_event"
                + (" ON audit_events" if ns.engine.dialect.name == "postgresql" else "")
            )
        )
    scanned = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    assert phone.confirm_login(scanned)["logged_in"] is True
    (event,) = _login_events(ns, hsid)
    assert json.loads(event) == {"account": account, "method": "qr", "second_factor": "pin", "session": hsid}
    assert ns.login.status(ns.server, nonce, BROWSER).userid == "olga"


def test_a_qr_is_taken_once(ns: InProcessNs) -> None:
    first, second = Phone(ns, "app-1"), Phone(ns, "app-2")
    first.enrol("bob")
    second.enrol("eve")
    qr = ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or ""
    scanned = first.scan_login(qr)
    for phone in (first, second):
        with pytest.raises(OperationError) as refused:
            phone.scan_login(qr)
        assert refused.value.code == "expired"
    assert first.confirm_login(scanned)["logged_in"] is True


def test_a_qr_with_the_wrong_secret_is_refused(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("carol")
    qr = ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or ""
    payload = QRPayload.decode(qr)
    with pytest.raises(OperationError) as refused:
        phone.open_login(payload.item_id, bytes(len(payload.secret)))
    assert refused.value.code == "expired"


def test_a_qr_of_another_server_is_refused(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("dave", ns.other)  # an account at the other server only
    qr = ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or ""
    with pytest.raises(OperationError) as refused:
        phone.scan_login(qr, ns.other)
    assert refused.value.code == "wrong_server"


def test_an_expired_qr_is_refused_and_the_page_gets_a_new_one(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("erin")
    nonce = _nonce()
    old = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert ns.login.status(ns.server, nonce, BROWSER).loginqrdata == old  # one live QR per session
    ns.clock.advance(61)
    with pytest.raises(OperationError) as refused:
        phone.scan_login(old)
    assert refused.value.code == "expired"
    new = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert new != old
    assert phone.confirm_login(phone.scan_login(new))["logged_in"] is True


def test_an_account_not_yet_confirmed_cannot_log_in(ns: InProcessNs) -> None:
    phone = Phone(ns)
    created = ns.enrolment.create(ns.server, "frank")
    phone.scan_enrolment(created["qrdata"])  # the application never confirms the code
    qr = ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or ""
    with pytest.raises(OperationError) as refused:
        phone.scan_login(qr)
    assert refused.value.code == "unknown_account"


def test_a_confirmation_needs_a_scan_and_counts_once(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("grace")
    with pytest.raises(OperationError) as refused:
        ns.login.login_finish(phone.channel(), {"signature": "AA"})
    assert refused.value.code == "no_login"
    scanned = phone.scan_login(ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or "")
    with pytest.raises(OperationError) as refused:
        ns.login.login_finish(scanned.channel, {"signature": "A" * 86})  # 64 bytes, not this statement
    assert refused.value.code == "bad_signature"
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(scanned)  # the right one now: too late, one confirmation per scan
    assert refused.value.code == "no_login"


def test_a_statement_signed_by_another_key_is_refused(ns: InProcessNs) -> None:
    phone, other = Phone(ns, "app-1"), Phone(ns, "app-2")
    phone.enrol("heidi")
    scanned = phone.scan_login(ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or "")
    phone.identity = other.identity  # the statement is signed with a key that is not the channel's
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(scanned)
    assert refused.value.code == "bad_signature"


def test_declining_tells_the_page_why(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("ivan")
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    heard = ns.page(view.hsid)
    for reason, told in (("locked", "locked"), ("made-up", "declined")):
        qr = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
        scanned = phone.scan_login(qr)
        assert ns.login.login_cancel(scanned.channel, {"reason": reason}) == {"cancelled": True}
        assert heard()[-1] == f"CANCEL {told}"
    assert ns.login.status(ns.server, nonce, BROWSER).loggedin is False


# -- the second factor policy ---------------------------------------------------------------------------


def test_policy_always_asks_for_the_second_factor(make_ns: Callable[..., InProcessNs]) -> None:
    ns = make_ns(login_pin_timeout=0)
    phone = Phone(ns)
    phone.enrol("judy")
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    heard = ns.page(view.hsid)
    scanned = phone.scan_login(view.loginqrdata or "")
    assert scanned.started["second_factor"] == "required"
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(scanned, attest=False)
    assert refused.value.code == "second_factor_required"
    assert heard()[-1] == "CANCEL second_factor"
    assert ns.login.status(ns.server, nonce, BROWSER).loggedin is False
    phone.log_in(nonce)
    assert ns.login.status(ns.server, nonce, BROWSER).second_factor == "pin"
    # Right after a login, policy 0 still asks.
    assert (
        phone.scan_login(ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or "").started[
            "second_factor"
        ]
        == "required"
    )


def test_policy_never_asks_for_the_second_factor(make_ns: Callable[..., InProcessNs]) -> None:
    ns = make_ns(login_pin_timeout=-1)
    phone = Phone(ns)
    phone.enrol("karl")
    nonce = _nonce()
    scanned = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    assert scanned.started["second_factor"] == "not_required"
    phone.confirm_login(scanned, attest=False)
    assert ns.login.status(ns.server, nonce, BROWSER).second_factor == "none"


def test_policy_asks_again_only_after_its_timeout(make_ns: Callable[..., InProcessNs]) -> None:
    ns = make_ns(login_pin_timeout=3600)
    phone = Phone(ns)
    phone.enrol("lena")
    first = phone.scan_login(ns.login.status(ns.server, _nonce(), BROWSER).loginqrdata or "")
    assert first.started["second_factor"] == "required"  # never logged in yet
    phone.confirm_login(first)
    nonce = _nonce()
    again = phone.scan_login(ns.login.status(ns.server, nonce, BROWSER).loginqrdata or "")
    assert again.started["second_factor"] == "not_required"  # logged in a moment ago
    phone.confirm_login(again, attest=False)
    assert ns.login.status(ns.server, nonce, BROWSER).second_factor == "none"


def test_an_attestation_for_another_app_instance_is_refused(ns: InProcessNs) -> None:
    """The account is bound to the app instance that enrolled it: another one's word does not count."""
    phone = Phone(ns, "app-1")
    phone.enrol("mona")
    view = ns.login.status(ns.server, _nonce(), BROWSER)
    heard = ns.page(view.hsid)
    scanned = phone.scan_login(view.loginqrdata or "")
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(scanned, attested_by="app-2")
    assert refused.value.code == "second_factor_device_mismatch"
    assert heard()[-1] == "CANCEL second_factor_device_mismatch"


# -- push login with number matching --------------------------------------------------------------------


def _pushed(ns: InProcessNs, phone: Phone, user: str) -> tuple[str, dict, dict]:
    """Log in once by QR and out again, then provoke a push on that session: (nonce, answer, message)."""
    phone.enrol(user)
    nonce = _nonce()
    phone.log_in(nonce)
    hsid = hsid_for(nonce)
    assert ns.login.logout(ns.server.id, hsid, "application") is True
    assert ns.push.can_provoke(ns.server.id, hsid) is True
    provoked = ns.push.provoke_session(ns.server, hsid, {"ip": "198.51.100.4"})
    (message,) = phone.inbox()
    return nonce, provoked, message


def test_push_login_needs_the_number_the_page_shows(ns: InProcessNs) -> None:
    phone = Phone(ns)
    nonce, provoked, message = _pushed(ns, phone, "nina")
    assert message["type"] == "login" and message["requester"] == {"ip": "198.51.100.4"}
    assert provoked["number"] in message["numbers"] and len(message["numbers"]) == 3
    heard = ns.page(hsid_for(nonce))
    scanned = phone.open_login(message["push"], unb64url(message["challenge"]))
    phone.confirm_login(scanned, number=provoked["number"])
    assert heard() == ["CONFIRMSCAN", "LOGIN"]
    session = ns.login.status(ns.server, nonce, BROWSER)
    assert (session.loggedin, session.method, session.second_factor) == (True, "push", "pin")


def test_one_wrong_number_ends_the_push(ns: InProcessNs) -> None:
    phone = Phone(ns)
    nonce, provoked, message = _pushed(ns, phone, "omar")
    heard = ns.page(hsid_for(nonce))
    secret = unb64url(message["challenge"])
    wrong = next(n for n in message["numbers"] if n != provoked["number"])
    with pytest.raises(OperationError) as refused:
        phone.confirm_login(phone.open_login(message["push"], secret), number=wrong)
    assert refused.value.code == "wrong_number"
    assert heard()[-1] == "CANCEL wrong_number"
    with pytest.raises(OperationError) as again:
        phone.open_login(message["push"], secret)
    assert again.value.code == "expired"
    assert ns.login.status(ns.server, nonce, BROWSER).loggedin is False


def test_a_push_is_only_for_the_account_it_was_sent_to(ns: InProcessNs) -> None:
    phone, other = Phone(ns, "app-1"), Phone(ns, "app-2")
    other.enrol("pia")
    _, _, message = _pushed(ns, phone, "paul")
    with pytest.raises(OperationError) as refused:
        other.open_login(message["push"], unb64url(message["challenge"]))
    assert refused.value.code == "expired"


class _Later:
    """``time`` for the login service, ``offset`` seconds ahead (the store's own clock is ``ns.clock``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def test_the_page_learns_how_long_its_code_lives_and_when_a_new_one_comes(
    ns: InProcessNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = _Later()
    monkeypatch.setattr("authserver.ns.login.time", later)
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    assert 59 <= (view.loginqrexpires_in or 0) <= 60 and 44 <= (view.loginqrrenew_in or 0) <= 45
    later.offset = 44.0
    again = ns.login.status(ns.server, nonce, BROWSER)
    assert again.loginqrdata == view.loginqrdata and (again.loginqrrenew_in or 0) <= 1
    # When the page asks at the moment it was told, it gets a new code with its whole lifetime, while the
    # old one still has the margin to live: the page never shows a dead code.
    later.offset = 45.5
    fresh = ns.login.status(ns.server, nonce, BROWSER)
    assert fresh.loginqrdata != view.loginqrdata
    assert 59 <= (fresh.loginqrexpires_in or 0) <= 60


def test_short_lived_codes_are_renewed_a_quarter_before_their_end(
    make_ns: Callable[..., InProcessNs],
) -> None:
    ns = make_ns()
    ns.login._qr_ttl = 8.0  # as NEXTAUTH_NS_LOGIN_QR_TTL=8 sets it
    view = ns.login.status(ns.server, _nonce(), BROWSER)
    assert ns.login.renew_before == 2.0
    assert 5.5 <= (view.loginqrrenew_in or 0) <= 6.0


def test_a_scan_of_an_expired_code_is_told_to_its_page(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("judy")
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    heard = ns.page(view.hsid)
    ns.clock.advance(61)
    with pytest.raises(OperationError) as refused:
        phone.scan_login(view.loginqrdata or "")
    assert refused.value.code == "expired"
    assert heard() == ["CANCEL expired"]
    # Told once: a second late scan of the same code says nothing more.
    with pytest.raises(OperationError):
        phone.scan_login(view.loginqrdata or "")
    assert heard() == ["CANCEL expired"]


def test_only_the_codes_own_secret_puts_up_the_expired_notice(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("ken")
    view = ns.login.status(ns.server, _nonce(), BROWSER)
    heard = ns.page(view.hsid)
    ns.clock.advance(61)
    payload = QRPayload.decode(view.loginqrdata or "")
    with pytest.raises(OperationError):
        phone.open_login(payload.item_id, bytes(len(payload.secret)))
    assert heard() == []


def test_a_replayed_scan_of_a_used_code_is_no_expiry(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("liz")
    view = ns.login.status(ns.server, _nonce(), BROWSER)
    heard = ns.page(view.hsid)
    scanned = phone.scan_login(view.loginqrdata or "")
    with pytest.raises(OperationError) as refused:
        phone.scan_login(view.loginqrdata or "")
    assert refused.value.code == "expired"
    assert phone.confirm_login(scanned)["logged_in"] is True
    assert "CANCEL expired" not in heard()


def test_a_used_qr_is_never_handed_out_again_and_a_live_one_costs_no_lookup_of_its_item(
    ns: InProcessNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's status shows its QR again while the QR is live, from one read of the store; once a
    phone takes the QR (a scan, right or wrong), the status hands out a new one."""
    phone = Phone(ns)
    phone.enrol("quinn")
    nonce = _nonce()
    shown = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    reads: list[str] = []
    get, get_many = ns.kv.get, ns.kv.get_many
    monkeypatch.setattr(ns.kv, "get", lambda key: (reads.append(key), get(key))[1])
    monkeypatch.setattr(ns.kv, "get_many", lambda keys: (reads.extend(keys), get_many(keys))[1])
    assert ns.login.status(ns.server, nonce, BROWSER).loginqrdata == shown
    assert not [key for key in reads if QRPayload.decode(shown).item_id in key], reads
    # Taken by a scan whose login then fails: a new QR.
    scanned = phone.scan_login(shown)
    assert ns.login.login_cancel(scanned.channel, {"reason": "declined"}) == {"cancelled": True}
    after_scan = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert after_scan != shown
    # Taken by a scan without the code's secret: a new QR as well (the taken one is dead).
    payload = QRPayload.decode(after_scan)
    with pytest.raises(OperationError):
        phone.open_login(payload.item_id, bytes(len(payload.secret)))
    after_wrong = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert after_wrong not in (shown, after_scan)
    assert phone.scan_login(after_wrong)  # and the new one works


def test_a_push_on_the_session_leaves_its_qr_as_it_is(ns: InProcessNs) -> None:
    phone = Phone(ns)
    nonce, _provoked, message = _pushed(ns, phone, "rita")
    shown = ns.login.status(ns.server, nonce, BROWSER).loginqrdata
    phone.open_login(message["push"], unb64url(message["challenge"]))
    assert ns.login.status(ns.server, nonce, BROWSER).loginqrdata == shown


def test_the_phone_is_told_who_asks_as_the_application_set_it(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("sam")
    nonce = _nonce()
    view = ns.login.status(ns.server, nonce, BROWSER)
    assert "context" not in phone.scan_login(view.loginqrdata or "").started
    asked = {"app": "Payroll", "action": "Sign in to approve June's payments"}
    ns.login.set_context(ns.server.id, view.hsid, asked)
    qr = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert phone.scan_login(qr).started["context"] == asked
    ns.login.set_context(ns.server.id, view.hsid, None)
    qr = ns.login.status(ns.server, nonce, BROWSER).loginqrdata or ""
    assert "context" not in phone.scan_login(qr).started
