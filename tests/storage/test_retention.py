"""ns forgets logins and enrolments long over (authserver/ns/retention.py), on every database: a session
that expired more than the retention time ago is deleted, unless a transaction was signed in it, and so
is an enrolment or invite; the rest stay. Deleted in batches, with a pause between them for the other
greenlets."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from authserver.config import ConfigError, load_config
from authserver.ns.retention import SETTING, purge_enrolments, purge_sessions, retention
from authserver.services import ns as ns_service
from authserver.storage.flow_models import Account, Enrolment, Server, Transaction, User
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.models import utcnow

KEEP = timedelta(days=30)


def _account(engine: Engine) -> None:
    with Session(engine) as db:
        db.add(Server(id="shop", name="Shop"))
        db.flush()
        user = User(server_id="shop", user_id="alice")
        db.add(user)
        db.flush()
        db.add(
            Account(
                id="acct",
                server_id="shop",
                user_pk=user.id,
                key_type="ec-p256",
                public_key=b"k",
                thumbprint="t" * 43,
                sfs_key_hash="h" * 43,
                active=True,
            )
        )
        db.commit()


def _sessions(engine: Engine, expired_ago: dict[str, timedelta]) -> None:
    """A session per name, expired that long ago (a negative time: still running)."""
    now = utcnow()
    with Session(engine) as db:
        for name, ago in expired_ago.items():
            db.add(
                LoginSession(
                    id=name,
                    hsid=f"hsid-{name}",
                    server_id="shop",
                    account_id="acct",
                    method="qr",
                    second_factor="pin",
                    created_at=now - ago - timedelta(hours=8),
                    expires_at=now - ago,
                )
            )
        db.commit()


def _left(engine: Engine) -> set[str]:
    with Session(engine) as db:
        return set(db.scalars(select(LoginSession.id)))


def test_sessions_long_expired_are_forgotten_and_the_rest_kept(engine: Engine) -> None:
    _account(engine)
    _sessions(
        engine,
        {
            "running": -timedelta(hours=1),
            "expired-yesterday": timedelta(days=1),
            "just-inside": KEEP - timedelta(minutes=5),
            "old": KEEP + timedelta(minutes=5),
            "very-old": timedelta(days=400),
            "old-with-transaction": timedelta(days=400),
        },
    )
    with Session(engine) as db:
        db.add(
            Transaction(
                id="tx", server_id="shop", session_id="old-with-transaction", account_id="acct", content=b"{}"
            )
        )
        db.commit()
    assert purge_sessions(engine, KEEP) == 2
    assert _left(engine) == {"running", "expired-yesterday", "just-inside", "old-with-transaction"}
    with Session(engine) as db:  # the signed transaction's record is whole
        assert db.get(Transaction, "tx") is not None
    assert purge_sessions(engine, KEEP) == 0  # nothing left to forget


def test_a_backlog_is_deleted_a_batch_at_a_time_with_pauses_between(engine: Engine) -> None:
    _account(engine)
    _sessions(engine, {f"old-{i}": timedelta(days=60 + i) for i in range(7)} | {"new": timedelta(days=1)})
    pauses: list[int] = []

    def pause() -> None:
        pauses.append(len(_left(engine)))

    assert purge_sessions(engine, KEEP, batch=3, pause=pause) == 7
    assert _left(engine) == {"new"}
    # After each full batch the others ran: 8 - 3 rows were left at the first pause, 8 - 6 at the second.
    assert pauses == [5, 2]


def test_enrolments_long_expired_are_forgotten_whatever_their_state(engine: Engine) -> None:
    _account(engine)
    now = utcnow()
    ages = {
        "pending-now": -timedelta(minutes=5),
        "completed-last-week": timedelta(days=7),
        "completed-long-ago": KEEP + timedelta(days=1),
        "invite-long-expired": timedelta(days=200),
        "failed-long-ago": timedelta(days=45),
    }
    with Session(engine) as db:
        for name, ago in ages.items():
            db.add(
                Enrolment(
                    id=name,
                    server_id="shop",
                    user_id="alice",
                    secret_hash=b"h" * 32,
                    state=name.split("-")[0].replace("invite", "invited"),
                    expires_at=now - ago,
                )
            )
        db.commit()
    assert purge_enrolments(engine, KEEP) == 3
    with Session(engine) as db:
        assert set(db.scalars(select(Enrolment.id))) == {"pending-now", "completed-last-week"}


def test_the_retention_setting_is_checked() -> None:
    assert retention({}) == timedelta(days=30)
    assert retention({SETTING: "7"}) == timedelta(days=7)
    for wrong in ("0", "-3", "seven", "1.5", "36501"):
        with pytest.raises(ConfigError, match=SETTING):
            retention({SETTING: wrong})


def test_ns_runs_both_purges(tmp_path: Path) -> None:
    env = {"NEXTAUTH_DATA_DIR": str(tmp_path), SETTING: "2"}
    built = ns_service.build(load_config("ns", env), environ=env)
    try:
        _account(built.engine)
        _sessions(built.engine, {"old": timedelta(days=3), "recent": timedelta(days=1)})
        assert built.listeners["purge"].run_once() == 1  # type: ignore[attr-defined]
        assert _left(built.engine) == {"recent"}
        with Session(built.engine) as db:
            db.add(
                Enrolment(
                    id="old",
                    server_id="shop",
                    user_id="alice",
                    secret_hash=b"h" * 32,
                    state="failed",
                    expires_at=utcnow() - timedelta(days=3),
                )
            )
            db.commit()
        assert built.listeners["enrolment-purge"].run_once() == 1  # type: ignore[attr-defined]
    finally:
        built.kv.close()
        built.engine.dispose()
