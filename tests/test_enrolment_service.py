"""ns's enrolment rules, checked on the enrolment service in-process: the application's side (``create``,
``get``, ``confirm``) and the app's operations (``enrol_start``, ``enrol_finish``), no sockets."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session as DbSession

from authserver.ns.common import now
from authserver.ns.errors import ServiceError
from authserver.operations import OperationError
from authserver.storage.flow_models import Enrolment
from nextauth_core.encoding import b64url
from nextauth_core.qr import QRPayload
from tests.fixtures.ns_services import InProcessNs, Phone


@pytest.fixture
def ns(make_ns: Callable[..., InProcessNs]) -> InProcessNs:
    return make_ns()


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_enrolment_completes_with_the_code_both_ends_compute(ns: InProcessNs) -> None:
    phone = Phone(ns)
    created = ns.enrolment.create(ns.server, "alice")
    assert (created["state"], created["userid"]) == ("pending", "alice")
    assert ns.enrolment.get(ns.server, created["enrolment"])["state"] == "pending"
    scanned = phone.scan_enrolment(created["qrdata"])
    assert scanned["userid"] == "alice" and scanned["state"] == "awaiting_confirmation"
    # ns and the phone derive the code from the channel independently; ns never sends it.
    assert scanned["confirmation_code"] == scanned["own_code"]
    state = ns.enrolment.get(ns.server, created["enrolment"])
    assert (state["state"], state["accountid"]) == ("awaiting_confirmation", None)
    done = ns.enrolment.confirm(ns.server, created["enrolment"], scanned["confirmation_code"])
    assert done == {
        "enrolment": created["enrolment"],
        "state": "completed",
        "userid": "alice",
        "accountid": scanned["account"],
    }
    assert ns.enrolment.get(ns.server, created["enrolment"])["accountid"] == scanned["account"]


def test_an_invalid_user_id_is_refused(ns: InProcessNs) -> None:
    with pytest.raises(ServiceError) as refused:
        ns.enrolment.create(ns.server, "")
    assert (refused.value.status, refused.value.code) == (400, "bad_request")


def test_the_enrolment_qr_is_single_use(ns: InProcessNs) -> None:
    phone, intruder = Phone(ns, "app-1"), Phone(ns, "app-2")
    created = ns.enrolment.create(ns.server, "bob")
    phone.scan_enrolment(created["qrdata"])
    with pytest.raises(OperationError) as refused:
        intruder.scan_enrolment(created["qrdata"])
    assert refused.value.code == "expired"


def test_a_wrong_secret_or_another_servers_qr_is_refused(ns: InProcessNs) -> None:
    phone = Phone(ns)
    created = ns.enrolment.create(ns.server, "carol")
    payload = QRPayload.decode(created["qrdata"])
    start = {"enrolment": payload.item_id, "secret": b64url(bytes(32)), "sfs_key_hash": ns.sfs_hash}
    with pytest.raises(OperationError) as refused:
        ns.enrolment.enrol_start(phone.channel(), start)
    assert refused.value.code == "expired"
    start["secret"] = b64url(payload.secret)
    with pytest.raises(OperationError) as refused:
        ns.enrolment.enrol_start(phone.channel(ns.other), start)
    assert refused.value.code == "expired"
    phone.scan_enrolment(created["qrdata"])  # neither attempt used it up


def test_an_untrusted_sfs_is_refused(ns: InProcessNs) -> None:
    phone = Phone(ns)
    payload = QRPayload.decode(ns.enrolment.create(ns.server, "dave")["qrdata"])
    with pytest.raises(OperationError) as refused:
        ns.enrolment.enrol_start(
            phone.channel(),
            {"enrolment": payload.item_id, "secret": b64url(payload.secret), "sfs_key_hash": "f" * 64},
        )
    assert refused.value.code == "untrusted_app"


def test_an_expired_enrolment_cannot_be_scanned(ns: InProcessNs) -> None:
    created = ns.enrolment.create(ns.server, "erin")
    _expire(ns, created["enrolment"])
    assert ns.enrolment.get(ns.server, created["enrolment"])["state"] == "expired"
    with pytest.raises(OperationError) as refused:
        Phone(ns).scan_enrolment(created["qrdata"])
    assert refused.value.code == "expired"


def test_an_expired_enrolment_cannot_be_confirmed(ns: InProcessNs) -> None:
    created = ns.enrolment.create(ns.server, "frank")
    scanned = Phone(ns).scan_enrolment(created["qrdata"])
    _expire(ns, created["enrolment"])
    assert ns.enrolment.get(ns.server, created["enrolment"])["state"] == "expired"
    with pytest.raises(ServiceError) as refused:
        ns.enrolment.confirm(ns.server, created["enrolment"], scanned["confirmation_code"])
    assert (refused.value.status, refused.value.code) == (409, "not_confirmable")


def test_three_wrong_codes_end_the_enrolment(ns: InProcessNs) -> None:
    created = ns.enrolment.create(ns.server, "grace")
    scanned = Phone(ns).scan_enrolment(created["qrdata"])
    wrong = _wrong(scanned["confirmation_code"])
    for _ in range(2):
        with pytest.raises(ServiceError) as refused:
            ns.enrolment.confirm(ns.server, created["enrolment"], wrong)
        assert (refused.value.status, refused.value.code) == (400, "wrong_code")
    with pytest.raises(ServiceError) as refused:
        ns.enrolment.confirm(ns.server, created["enrolment"], wrong)
    assert (refused.value.status, refused.value.code) == (409, "failed")
    assert ns.enrolment.get(ns.server, created["enrolment"])["state"] == "failed"
    with pytest.raises(ServiceError) as refused:  # the right code, too late
        ns.enrolment.confirm(ns.server, created["enrolment"], scanned["confirmation_code"])
    assert refused.value.code == "not_confirmable"


def test_a_wrong_code_then_the_right_one_completes(ns: InProcessNs) -> None:
    created = ns.enrolment.create(ns.server, "heidi")
    scanned = Phone(ns).scan_enrolment(created["qrdata"])
    with pytest.raises(ServiceError):
        ns.enrolment.confirm(ns.server, created["enrolment"], _wrong(scanned["confirmation_code"]))
    done = ns.enrolment.confirm(ns.server, created["enrolment"], scanned["confirmation_code"])
    assert done["state"] == "completed"


def test_confirm_checks_the_code_format_the_state_and_the_server(ns: InProcessNs) -> None:
    created = ns.enrolment.create(ns.server, "ivan")
    for bad in ("12345", "abcdef", None, "1234567"):
        with pytest.raises(ServiceError) as refused:
            ns.enrolment.confirm(ns.server, created["enrolment"], bad)
        assert refused.value.code == "bad_request"
    with pytest.raises(ServiceError) as refused:  # nothing scanned yet
        ns.enrolment.confirm(ns.server, created["enrolment"], "123456")
    assert refused.value.code == "not_confirmable"
    scanned = Phone(ns).scan_enrolment(created["qrdata"])
    # Another server of the same ns does not see it.
    with pytest.raises(ServiceError) as refused:
        ns.enrolment.confirm(ns.other, created["enrolment"], scanned["confirmation_code"])
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    with pytest.raises(ServiceError) as refused:
        ns.enrolment.get(ns.other, created["enrolment"])
    assert refused.value.code == "not_found"


def test_the_second_factor_is_required_and_bound(ns: InProcessNs) -> None:
    phone = Phone(ns)
    payload = QRPayload.decode(ns.enrolment.create(ns.server, "judy")["qrdata"])
    channel = phone.channel()
    ns.enrolment.enrol_start(
        channel, {"enrolment": payload.item_id, "secret": b64url(payload.secret), "sfs_key_hash": ns.sfs_hash}
    )
    with pytest.raises(OperationError) as refused:
        ns.enrolment.enrol_finish(channel, {})
    assert refused.value.code == "second_factor_required"
    with pytest.raises(OperationError) as refused:  # one finish per start, right or wrong
        ns.enrolment.enrol_finish(channel, {})
    assert refused.value.code == "no_enrolment"


def test_a_key_enrols_once_per_server(ns: InProcessNs) -> None:
    phone = Phone(ns)
    phone.enrol("karl")
    created = ns.enrolment.create(ns.server, "karl")
    with pytest.raises(OperationError) as refused:
        phone.scan_enrolment(created["qrdata"])
    assert refused.value.code == "already_enrolled"
    phone.enrol("karl", ns.other)  # the same key at another server is another account


def _expire(ns: InProcessNs, enrolment_id: str) -> None:
    with DbSession(ns.engine) as session:
        session.execute(
            update(Enrolment)
            .where(Enrolment.id == enrolment_id)
            .values(expires_at=now() - timedelta(seconds=1))
        )
        session.commit()
