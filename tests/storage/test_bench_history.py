"""The login benchmark's databases look used (bench/history.py): the rows it writes are what the services
would have written, on every database, foreign keys and all, tied to the virtual server that exists."""

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from authserver.storage.flow_models import Account, AppInstance, AuditEvent, Server, User
from authserver.storage.flow_models import Session as LoginSession
from bench import history


def test_grow_writes_a_months_worth_of_rows_of_the_existing_server(
    engine: Engine, db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "USERS", 40)
    monkeypatch.setattr(history, "SESSIONS", 120)
    monkeypatch.setattr(history, "EVENTS", 90)
    monkeypatch.setattr(history, "CHUNK", 25)  # several INSERT rounds per table
    with pytest.raises(RuntimeError, match="no virtual server"):
        history.grow({"NEXTAUTH_DB_URI": db_uri, "NEXTAUTH_DATA_DIR": str(tmp_path)}, "t")
    with Session(engine) as db:
        db.add(Server(id="default", name="Default"))
        db.commit()
    history.grow({"NEXTAUTH_DB_URI": db_uri, "NEXTAUTH_DATA_DIR": str(tmp_path)}, "t")

    def count(model: type) -> int:
        with Session(engine) as db:
            return db.scalar(select(func.count()).select_from(model)) or 0

    assert [count(m) for m in (User, Account, LoginSession, AuditEvent, AppInstance)] == [40, 40, 120, 90, 40]
    with Session(engine) as db:
        assert set(db.scalars(select(LoginSession.server_id))) == {"default"}
        # Every session belongs to an account of its user.
        mismatched = db.scalar(
            select(func.count())
            .select_from(LoginSession)
            .join(Account, Account.id == LoginSession.account_id)
            .join(User, User.id == Account.user_pk)
            .where(User.user_id != LoginSession.user_id)
        )
        assert mismatched == 0
