"""ns's invite rules on the enrolment service in-process (no sockets): single use under a race, expiry,
revocation, tokens of another server, an invite row never passing for an enrolment, the ttl bounds."""

import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session as DbSession

from authserver.ns.common import now
from authserver.ns.errors import ServiceError
from authserver.operations import OperationError
from authserver.storage.flow_models import Enrolment
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.qr import QRPayload
from tests.fixtures.ns_services import SIGMAI_URI, InProcessNs, Phone


@pytest.fixture
def ns(make_ns: Callable[..., InProcessNs]) -> InProcessNs:
    return make_ns()


def refusal(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value.status, caught.value.code


def test_redeemed_invite_is_an_ordinary_enrolment_for_its_user(ns: InProcessNs) -> None:
    created = ns.enrolment.create_invite(ns.server, "alice")
    assert ns.enrolment.invite_status(ns.server, created["token"])["state"] == "valid"
    started = ns.enrolment.redeem_invite(ns.server, created["token"])
    assert (
        started["userid"] == "alice"
        and started["server"]["public_key"] == ns.server.identity.public_raw.hex()
    )
    scanned = Phone(ns).scan_enrolment(started["qrdata"])
    done = ns.enrolment.confirm(ns.server, started["enrolment"], scanned["confirmation_code"])
    assert done["userid"] == "alice" and done["state"] == "completed"
    assert ns.enrolment.invite_status(ns.server, created["token"]) == {"state": "used"}


def test_only_the_hash_of_the_secret_is_stored(ns: InProcessNs) -> None:
    created = ns.enrolment.create_invite(ns.server, "alice")
    secret = unb64url(created["token"].split(".")[1])
    assert len(secret) == 32
    with DbSession(ns.engine) as db:
        row = db.get(Enrolment, created["invite"])
        assert row is not None and row.state == "invited"
        assert row.secret_hash == hashlib.sha256(secret).digest()


def test_parallel_redeems_start_one_enrolment(ns: InProcessNs) -> None:
    token = ns.enrolment.create_invite(ns.server, "alice")["token"]
    results: list[Any] = []

    def redeem() -> None:
        try:
            results.append(ns.enrolment.redeem_invite(ns.server, token)["enrolment"])
        except ServiceError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("invite_used") == 7 and len(results) == 8


def test_expired_invite_is_refused_and_says_so(ns: InProcessNs) -> None:
    created = ns.enrolment.create_invite(ns.server, "alice", 3600)
    with DbSession(ns.engine) as db:
        db.execute(
            update(Enrolment)
            .where(Enrolment.id == created["invite"])
            .values(expires_at=now() - timedelta(seconds=1))
        )
        db.commit()
    assert ns.enrolment.invite_status(ns.server, created["token"]) == {"state": "expired"}
    assert refusal(lambda: ns.enrolment.redeem_invite(ns.server, created["token"])) == (410, "invite_expired")
    assert refusal(lambda: ns.enrolment.revoke_invite(ns.server, "nope")) == (404, "not_found")


def test_revoked_and_foreign_tokens_open_nothing(ns: InProcessNs) -> None:
    revoked = ns.enrolment.create_invite(ns.server, "alice")
    assert ns.enrolment.revoke_invite(ns.server, revoked["invite"])["state"] == "revoked"
    foreign = ns.enrolment.create_invite(ns.other, "alice")
    for server, token in ((ns.server, revoked["token"]), (ns.server, foreign["token"])):
        assert ns.enrolment.invite_status(server, token) == {"state": "unknown"}
        assert refusal(lambda: ns.enrolment.redeem_invite(server, token)) == (404, "not_found")  # noqa: B023
    # Another server cannot revoke it either, and it still works where it belongs.
    assert refusal(lambda: ns.enrolment.revoke_invite(ns.server, foreign["invite"])) == (404, "not_found")
    assert ns.enrolment.invite_status(ns.other, foreign["token"])["state"] == "valid"


@pytest.mark.parametrize("token", ["", None, 7, ["a.b"]])
def test_a_missing_token_is_a_bad_request(ns: InProcessNs, token: Any) -> None:
    assert refusal(lambda: ns.enrolment.invite_status(ns.server, token)) == (400, "bad_request")
    assert refusal(lambda: ns.enrolment.redeem_invite(ns.server, token)) == (400, "bad_request")


@pytest.mark.parametrize(
    "token", ["x", "a.b.c", "." * 5, "0" * 32 + ".", "0" * 33 + "." + "A" * 43, "z" * 200]
)
def test_malformed_tokens_are_unknown(ns: InProcessNs, token: str) -> None:
    assert ns.enrolment.invite_status(ns.server, token) == {"state": "unknown"}


def test_an_invite_is_no_enrolment(ns: InProcessNs) -> None:
    """Its id and secret do not open an enrolment QR, and the enrolment calls do not see it."""
    created = ns.enrolment.create_invite(ns.server, "alice")
    invite_id, _, secret = created["token"].partition(".")
    forged = QRPayload(
        kind="enrol",
        server_id=ns.server.id,
        sigmai_uri=SIGMAI_URI,
        server_key_hash=ns.server.identity.key_hash,
        item_id=invite_id,
        secret=unb64url(secret),
        server_name=ns.server.name,
    ).encode()
    with pytest.raises(OperationError) as caught:
        Phone(ns).scan_enrolment(forged)
    assert caught.value.code == "expired"
    assert refusal(lambda: ns.enrolment.get(ns.server, invite_id)) == (404, "not_found")
    assert refusal(lambda: ns.enrolment.confirm(ns.server, invite_id, "123456")) == (404, "not_found")
    assert ns.enrolment.invite_status(ns.server, created["token"])["state"] == "valid"
    assert b64url(unb64url(secret)) == secret


@pytest.mark.parametrize("ttl", [0, -5, 0.5, 30 * 86400 + 1, True, "600", float("nan")])
def test_ttl_out_of_bounds_is_refused(ns: InProcessNs, ttl: Any) -> None:
    assert refusal(lambda: ns.enrolment.create_invite(ns.server, "alice", ttl)) == (400, "bad_request")


def test_link_is_the_configured_start_and_the_token(ns: InProcessNs) -> None:
    assert ns.enrolment.create_invite(ns.server, "alice")["link"] is None
    ns.enrolment.invite_url = "https://idp.example.test/enrol/"
    created = ns.enrolment.create_invite(ns.server, "alice", 60)
    assert created["link"] == "https://idp.example.test/enrol/" + created["token"]
