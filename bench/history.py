"""A database that looks used: what months of logins leave behind, written before anything is measured.

A fresh database hides every lookup that walks a table: with a few hundred rows a scan costs as much as
an index. A login once walked every session of its virtual server on SQLite, three times, and no
benchmark saw it (tests/test_login_budget.py now counts SQLite's work per login). So the services the
login benchmark measures hold, from the start, ``USERS`` users with an account each at ns and an app
instance each at the SFS, ``SESSIONS`` past sessions of those accounts and ``EVENTS`` audit events, all
of the default virtual server, as a deployment in use for months would.

Written through the project's own models, so the rows are what the services would have written, on
whichever database the services use (each component's, from its configuration)."""

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, text

from authserver.config import load_config
from authserver.storage.db import create_engine_for
from authserver.storage.flow_models import Account, AppInstance, AuditEvent, Server, User
from authserver.storage.flow_models import Session as LoginSession
from authserver.storage.models import utcnow

USERS = 10_000
SESSIONS = 50_000
EVENTS = 50_000
CHUNK = 5_000  # rows per INSERT round: a bounded statement on every database


def describe() -> str:
    return (
        f"{USERS:,} users with an account each (and an app instance each at the SFS), {SESSIONS:,} past "
        f"sessions and {EVENTS:,} audit events"
    )


def grow(env: dict[str, str], tag: str) -> None:
    """Write the rows into the databases the services configured by ``env`` use; ``tag`` keeps the
    names apart from anything else in the same database (the counted services may share it)."""
    ns = create_engine_for(load_config("ns", env).db_uri)
    sfs = create_engine_for(load_config("sfs", env).db_uri)
    try:
        _grow_ns(ns, tag)
        _grow_sfs(sfs, tag)
        for engine in (ns, sfs):
            _analyze(engine)
    finally:
        ns.dispose()
        sfs.dispose()


def _analyze(engine: Engine) -> None:
    """Statistics for the new rows, as PostgreSQL's autovacuum gathers them soon after such a load (the
    planner of a database in use has them); SQLite keeps none unless told to, and is left as it runs."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def _insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        with engine.begin() as connection:
            connection.execute(insert(model), chunk)


def _grow_ns(engine: Engine, tag: str) -> None:
    with engine.connect() as connection:
        server = connection.scalar(select(Server.id).order_by(Server.created_at).limit(1))
    if server is None:
        raise RuntimeError("ns has no virtual server yet: grow the database after the services started")
    now = utcnow()
    users = [{"server_id": server, "user_id": f"{tag}-past-{i}", "created_at": now} for i in range(USERS)]
    _insert(engine, User, users)
    with engine.connect() as connection:
        keys = connection.scalars(select(User.id).where(User.user_id.like(f"{tag}-past-%")).order_by(User.id))
        user_keys = keys.all()
    accounts = [
        {
            "id": secrets.token_hex(16),
            "server_id": server,
            "user_pk": user,
            "key_type": "ec-p256",
            "public_key": secrets.token_bytes(65),
            "thumbprint": secrets.token_urlsafe(32),
            "sfs_key_hash": secrets.token_hex(32),
            "sfs_device": secrets.token_urlsafe(32),
            "active": True,
            "blocked": False,
            "created_at": now - timedelta(days=90),
            "last_login_at": now - timedelta(days=1),
        }
        for user in user_keys
    ]
    _insert(engine, Account, accounts)
    sessions = []
    for i in range(SESSIONS):
        account = accounts[i % len(accounts)]
        started = now - timedelta(days=60) + timedelta(seconds=100 * i)
        sessions.append(
            {
                "id": secrets.token_hex(16),
                "hsid": secrets.token_urlsafe(32),
                "server_id": server,
                "account_id": account["id"],
                "user_id": f"{tag}-past-{i % len(accounts)}",
                "method": "qr",
                "second_factor": "pin",
                "created_at": started,
                "expires_at": started + timedelta(hours=8),
            }
        )
    _insert(engine, LoginSession, sessions)
    events = [
        {
            "event_id": secrets.token_hex(16),
            "time": now - timedelta(days=60) + timedelta(seconds=100 * i),
            "type": "io.nextauth.login.succeeded",
            "component": "ns",
            "source": f"/ns/{tag}",
            "server_id": server,
            "subject": f"{tag}-past-{i % USERS}",
            "outcome": "success",
            "data": "{}",
        }
        for i in range(EVENTS)
    ]
    _insert(engine, AuditEvent, events)


def _grow_sfs(engine: Engine, tag: str) -> None:
    now = utcnow()
    instances = [
        {
            "device_thumbprint": f"{tag}-{secrets.token_urlsafe(24)}",
            "oprf_key": secrets.token_bytes(32),
            "pin_verifier": secrets.token_bytes(32),
            "failures": 0,
            "locked": False,
            "created_at": now - timedelta(days=90),
            "updated_at": now - timedelta(days=1),
        }
        for _ in range(USERS)
    ]
    _insert(engine, AppInstance, instances)
