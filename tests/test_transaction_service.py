"""ns's transaction signing rules, checked on the transaction service in-process: the application's side
(``submit``, ``get``, ``verify_evidence``) and the app's operations (``sign_start``, ``sign_finish``)."""

import secrets
from collections.abc import Callable

import pytest

from authserver.ns.errors import ServiceError
from authserver.operations import OperationError
from nextauth_core import evidence
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.qr import QRPayload
from tests.fixtures.ns_services import InProcessNs, Phone

FIELDS = {"amount": "EUR 120.00", "beneficiary": "ACME Ltd", "description": "Invoice 42"}


def _everyone(server_id: str) -> bool:
    return True


@pytest.fixture
def ns(make_ns: Callable[..., InProcessNs]) -> InProcessNs:
    return make_ns()


def _logged_in(ns: InProcessNs, phone: Phone, user: str) -> str:
    """Enrol ``user`` on ``phone`` and log in on a new application session: its nonce."""
    phone.enrol(user)
    nonce = secrets.token_urlsafe(24)
    phone.log_in(nonce)
    return nonce


def test_an_approval_is_recorded_as_verifiable_evidence(ns: InProcessNs) -> None:
    phone = Phone(ns)
    nonce = _logged_in(ns, phone, "alice")
    submitted = ns.transactions.submit(ns.server, nonce, FIELDS)
    assert submitted["status"] == "new"
    assert submitted["pushed"] is True  # the account's app has a mailbox at a trusted MC
    channel, started = phone.open_transaction(submitted["qrdata"])
    # What the app shows is exactly what it signs: the canonical bytes ns fixed at submission.
    assert started["content"]["fields"] == FIELDS
    assert evidence.canonical(started["content"]) == unb64url(started["canonical"])
    assert started["second_factor"] == "required"
    assert phone.answer_transaction(channel, started, "approved") == {
        "transaction": submitted["tid"],
        "status": "approved",
    }
    stored = ns.transactions.get(ns.server, submitted["tid"])
    assert stored["status"] == "approved" and stored["content"]["fields"] == FIELDS
    record = stored["evidence"]
    assert record["decision"] == "approved" and record["attestation"]
    checked = ns.transactions.verify_evidence(record, phone.thumbprint, _everyone)
    assert checked["valid"] is True, checked
    assert checked["checks"] == dict.fromkeys(
        ("account_signature", "ns_signature", "content", "attestation"), "valid"
    )
    assert (checked["decision"], checked["accountid"]) == ("approved", stored["accountid"])
    # Anyone can check the account's signature offline, with the record alone.
    assert evidence.verify(record, phone.thumbprint)["fields"] == FIELDS


def test_a_refusal_is_evidence_too_and_needs_no_second_factor(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "bob"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    assert phone.answer_transaction(channel, started, "declined")["status"] == "declined"
    record = ns.transactions.get(ns.server, submitted["tid"])["evidence"]
    assert record["decision"] == "declined" and not record.get("attestation")
    checked = ns.transactions.verify_evidence(record, phone.thumbprint, _everyone)
    assert checked["valid"] is True and checked["checks"]["attestation"] == "not_required"


def test_a_request_is_answered_once(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "carol"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    with pytest.raises(OperationError) as refused:  # opened once: a second opening finds nothing
        phone.open_transaction(submitted["qrdata"])
    assert refused.value.code == "expired"
    phone.answer_transaction(channel, started, "approved")
    with pytest.raises(OperationError) as refused:  # one answer per opening
        phone.answer_transaction(channel, started, "declined")
    assert refused.value.code == "no_transaction"
    with pytest.raises(OperationError) as refused:
        phone.open_transaction(submitted["qrdata"])
    assert refused.value.code == "expired"
    assert ns.transactions.get(ns.server, submitted["tid"])["status"] == "approved"


def test_only_the_logged_in_account_may_open_the_request(ns: InProcessNs) -> None:
    owner, other = Phone(ns, "app-1"), Phone(ns, "app-2")
    other.enrol("eve")
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, owner, "dave"), FIELDS)
    with pytest.raises(OperationError) as refused:
        other.open_transaction(submitted["qrdata"])
    assert refused.value.code == "not_yours"
    # Ownership is checked first: the other account's attempt did not use the request up.
    channel, started = owner.open_transaction(submitted["qrdata"])
    assert owner.answer_transaction(channel, started, "approved")["status"] == "approved"


def test_the_challenge_of_the_qr_is_needed(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "erin"), FIELDS)
    payload = QRPayload.decode(submitted["qrdata"])
    with pytest.raises(OperationError) as refused:
        ns.transactions.sign_start(
            phone.channel(), {"transaction": payload.item_id, "challenge": b64url(bytes(32))}
        )
    assert refused.value.code == "expired"


def test_the_signature_must_cover_what_was_shown_and_the_decision(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "frank"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    # A signature of a refusal, sent as an approval.
    signature = phone.identity.sign(
        evidence.signing_statement(
            unb64url(started["canonical"]), unb64url(started["ns_challenge"]), "declined"
        )
    )
    with pytest.raises(OperationError) as refused:
        ns.transactions.sign_finish(
            channel,
            {
                "decision": "approved",
                "signature": b64url(signature),
                "attestation": phone.attest("sign", started),
            },
        )
    assert refused.value.code == "bad_signature"
    assert ns.transactions.get(ns.server, submitted["tid"])["status"] == "new"


def test_an_approval_needs_the_second_factor(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "grace"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    with pytest.raises(OperationError) as refused:
        phone.answer_transaction(channel, started, "approved", attest=False)
    assert refused.value.code == "second_factor_required"
    assert ns.transactions.get(ns.server, submitted["tid"])["status"] == "new"


def test_policy_never_asks_for_the_second_factor(make_ns: Callable[..., InProcessNs]) -> None:
    ns = make_ns(transaction_pin_timeout=-1)
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "heidi"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    assert started["second_factor"] == "not_required"
    phone.answer_transaction(channel, started, "approved", attest=False)
    record = ns.transactions.get(ns.server, submitted["tid"])["evidence"]
    assert record["decision"] == "approved" and not record.get("attestation")


def test_only_a_logged_in_session_may_submit_typed_fields(ns: InProcessNs) -> None:
    with pytest.raises(ServiceError) as refused:
        ns.transactions.submit(ns.server, secrets.token_urlsafe(24), FIELDS)
    assert (refused.value.status, refused.value.code) == (409, "not_logged_in")
    nonce = _logged_in(ns, Phone(ns), "ivan")
    for body in (
        {**FIELDS, "extra": "x"},
        {k: v for k, v in FIELDS.items() if k != "amount"},
        {**FIELDS, "amount": ""},
        {**FIELDS, "description": "two\nlines"},
    ):
        with pytest.raises(ServiceError) as refused:
            ns.transactions.submit(ns.server, nonce, body)
        assert (refused.value.status, refused.value.code) == (400, "bad_request")


def test_evidence_checks_name_what_fails(ns: InProcessNs) -> None:
    phone = Phone(ns)
    submitted = ns.transactions.submit(ns.server, _logged_in(ns, phone, "judy"), FIELDS)
    channel, started = phone.open_transaction(submitted["qrdata"])
    phone.answer_transaction(channel, started, "approved")
    record = ns.transactions.get(ns.server, submitted["tid"])["evidence"]
    # A record claiming another decision than ns recorded: the account's signature no longer holds.
    flipped = ns.transactions.verify_evidence({**record, "decision": "declined"}, phone.thumbprint, _everyone)
    assert flipped["valid"] is False and flipped["checks"]["account_signature"] == "invalid"
    # The caller may not see the account's server: no evidence either.
    hidden = ns.transactions.verify_evidence(record, phone.thumbprint, lambda server_id: False)
    assert hidden["valid"] is False and hidden["checks"]["account_signature"] == "invalid"
    # Without ns's countersignature the rest still holds, and the check says what is missing.
    unsigned = {k: v for k, v in record.items() if k != "ns_signature"}
    partial = ns.transactions.verify_evidence(unsigned, phone.thumbprint, _everyone)
    assert partial["valid"] is False and partial["checks"]["ns_signature"] == "missing"
    assert partial["checks"]["content"] == "valid"
