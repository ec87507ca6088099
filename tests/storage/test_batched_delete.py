"""Purges delete a batch per transaction with the other greenlets running between batches
(authserver/storage/batched_delete.py), on every database: only rows that meet the conditions go, the
count is right, and rows that referred to deleted ones are cleared with them."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, exists, insert, select
from sqlalchemy.orm import Session

from authserver.storage.batched_delete import delete_in_batches
from authserver.storage.flow_models import AuditEvent
from authserver.storage.models import utcnow
from idp.models import BrowserSession, RelyingPartyLogin


def _events(engine: Engine, ages_in_days: list[int], component: str = "ns") -> None:
    now = utcnow()
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "time": now - timedelta(days=age),
            "type": "io.nextauth.login.succeeded",
            "component": component,
            "source": f"/{component}/test",
            "outcome": "success",
            "data": "{}",
        }
        for age in ages_in_days
    ]
    with engine.begin() as connection:
        connection.execute(insert(AuditEvent), rows)


def _components(engine: Engine) -> list[str]:
    with Session(engine) as db:
        return sorted(db.scalars(select(AuditEvent.component)))


def test_rows_that_meet_the_conditions_go_a_batch_at_a_time(engine: Engine) -> None:
    _events(engine, [100 + i for i in range(11)] + [1, 2])
    _events(engine, [100, 200], component="sfs")
    left_at_pauses: list[int] = []

    def pause() -> None:
        with Session(engine) as db:
            left_at_pauses.append(len(db.scalars(select(AuditEvent.id)).all()))

    old_ns = (AuditEvent.component == "ns", AuditEvent.time < utcnow() - timedelta(days=90))
    assert delete_in_batches(engine, AuditEvent.id, old_ns, batch=4, pause=pause) == 11
    # 15 rows: after batches of 4, 11 then 7 were left; the third batch (3 rows) was the last.
    assert left_at_pauses == [11, 7]
    assert _components(engine) == ["ns", "ns", "sfs", "sfs"]  # the recent ns ones, and sfs's
    assert delete_in_batches(engine, AuditEvent.id, old_ns, pause=pause) == 0


def test_a_batch_as_large_as_what_is_left_ends_without_pausing_twice(engine: Engine) -> None:
    _events(engine, [100, 101, 102])
    pauses: list[None] = []
    old = (AuditEvent.time < utcnow() - timedelta(days=90),)
    assert delete_in_batches(engine, AuditEvent.id, old, batch=3, pause=lambda: pauses.append(None)) == 3
    assert len(pauses) == 1  # a full batch: there may be more, so it paused and looked once again
    with pytest.raises(ValueError):
        delete_in_batches(engine, AuditEvent.id, old, batch=0)


def test_rows_that_referred_to_deleted_ones_are_cleared_with_them(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(BrowserSession),
            [
                {
                    "sid": sid,
                    "ns_nonce": f"nonce-{sid}",
                    "user_id": "alice",
                    "amr": '["qr"]',
                    "acr": "pin",
                    "auth_time": now,
                    "expires_at": now - timedelta(days=days),
                }
                for sid, days in (("old", 3), ("also-old", 4), ("kept", -1))
            ],
        )
        connection.execute(
            insert(RelyingPartyLogin),
            [
                {"sid": sid, "protocol": "oidc", "client_id": "app", "created_at": now}
                for sid in ("old", "also-old", "kept")
            ],
        )
    seen: list[list[str]] = []

    def their_logins(db: Session, sids: list[str]) -> None:
        seen.append(sorted(sids))
        gone = ~exists().where(BrowserSession.sid == RelyingPartyLogin.sid)
        db.execute(delete(RelyingPartyLogin).where(RelyingPartyLogin.sid.in_(sids), gone))

    expired = (BrowserSession.expires_at < now - timedelta(days=1),)
    assert delete_in_batches(engine, BrowserSession.sid, expired, dependents=their_logins) == 2
    assert seen == [["also-old", "old"]]
    with Session(engine) as db:
        assert db.scalars(select(RelyingPartyLogin.sid)).all() == ["kept"]
        assert db.scalars(select(BrowserSession.sid)).all() == ["kept"]
