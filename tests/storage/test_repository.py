"""Service keys and seen devices, including instances racing on a shared database."""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from authserver.storage import db
from authserver.storage.models import SeenDevice, ServiceKey
from authserver.storage.repository import ensure_service_key, key_hash, record_device_seen

T = TypeVar("T")


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _race(engine_uri: str, count: int, work: Callable[[Engine], T]) -> list[T]:
    """Run ``work`` in ``count`` threads released together, each with its own engine (its own instance)."""
    engines = [db.create_engine_for(engine_uri) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            barrier.wait()
            results.append(work(engine))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == []
    return results


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _count(engine: Engine, model: type[ServiceKey] | type[SeenDevice]) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_key_hash_is_hex_sha256() -> None:
    assert key_hash(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_service_key_is_created_once_and_kept(engine: Engine) -> None:
    first = ensure_service_key(engine, "sfs")
    again = ensure_service_key(engine, "sfs")
    assert _raw(again) == _raw(first)
    with Session(engine) as session:
        row = session.scalars(select(ServiceKey)).one()
    assert (row.component, row.server_id, row.active) == ("sfs", None, True)
    assert row.key_hash == key_hash(_raw(first)) and row.public_key == _raw(first)
    assert row.created_at.tzinfo is not None and abs(time.time() - row.created_at.timestamp()) < 60


def test_components_and_virtual_servers_have_their_own_keys(engine: Engine) -> None:
    keys = [
        ensure_service_key(engine, "ns"),
        ensure_service_key(engine, "sfs"),
        ensure_service_key(engine, "ns", server_id="tenant-a"),
        ensure_service_key(engine, "ns", server_id="tenant-b"),
    ]
    assert len({_raw(key) for key in keys}) == 4
    assert _raw(ensure_service_key(engine, "ns", server_id="tenant-a")) == _raw(keys[2])


def test_configured_key_wins_and_stays(engine: Engine) -> None:
    generated = ensure_service_key(engine, "mc")
    configured = Ed25519PrivateKey.generate()
    assert ensure_service_key(engine, "mc", configured=configured) is configured
    assert ensure_service_key(engine, "mc", configured=configured) is configured  # already stored: no-op
    assert _raw(ensure_service_key(engine, "mc")) == _raw(configured)
    with Session(engine) as session:
        rows = {row.key_hash: row.active for row in session.scalars(select(ServiceKey))}
    assert rows == {key_hash(_raw(generated)): False, key_hash(_raw(configured)): True}


def test_configured_key_can_come_back(engine: Engine) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ensure_service_key(engine, "ns", configured=first)
    ensure_service_key(engine, "ns", configured=second)
    ensure_service_key(engine, "ns", configured=first)
    assert _raw(ensure_service_key(engine, "ns")) == _raw(first)
    assert _count(engine, ServiceKey) == 2


def test_one_key_cannot_serve_two_components(engine: Engine) -> None:
    shared = Ed25519PrivateKey.generate()
    ensure_service_key(engine, "ns", configured=shared)
    with pytest.raises(ValueError, match="already the key of ns"):
        ensure_service_key(engine, "sfs", configured=shared)


def test_first_start_race_ends_with_one_key(engine: Engine) -> None:
    keys = _race(_url(engine), 4, lambda racer: _raw(ensure_service_key(racer, "ns")))
    assert len(keys) == 4 and len(set(keys)) == 1
    assert _count(engine, ServiceKey) == 1


def test_race_with_the_same_configured_key(engine: Engine) -> None:
    configured = Ed25519PrivateKey.generate()
    _race(_url(engine), 4, lambda racer: ensure_service_key(racer, "sfs", configured=configured))
    assert _count(engine, ServiceKey) == 1
    assert _raw(ensure_service_key(engine, "sfs")) == _raw(configured)


def test_record_device_seen_inserts_then_updates(engine: Engine) -> None:
    device = Ed25519PrivateKey.generate().public_key()
    raw = device.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    record_device_seen(engine, "sfs", "ed25519", raw)
    with Session(engine) as session:
        first = session.scalars(select(SeenDevice)).one()
    time.sleep(0.01)
    record_device_seen(engine, "sfs", "ed25519", raw, interval=0)  # no throttle: written again
    record_device_seen(engine, "mc", "ed25519", raw)  # another component sees it separately
    with Session(engine) as session:
        rows = {row.component: row for row in session.scalars(select(SeenDevice))}
    again = rows["sfs"]
    assert set(rows) == {"sfs", "mc"}
    assert again.key_thumbprint == key_hash(raw) and again.public_key == raw and again.key_type == "ed25519"
    assert again.first_seen == first.first_seen
    assert again.last_seen > first.last_seen  # microseconds survive on every database
    assert again.last_seen.tzinfo is not None


def _last_seen(engine: Engine, component: str) -> object:
    with Session(engine) as session:
        return session.scalar(select(SeenDevice.last_seen).where(SeenDevice.component == component))


def test_record_device_seen_writes_last_seen_at_most_once_per_interval(engine: Engine) -> None:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    clock = [1000.0]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    record_device_seen(engine, "ns", "ed25519", raw, interval=600, clock=lambda: clock[0])
    first = _last_seen(engine, "ns")
    assert first is not None
    clock[0] += 599  # within the interval: nothing sent to the database at all
    before = len(statements)
    record_device_seen(engine, "ns", "ed25519", raw, interval=600, clock=lambda: clock[0])
    assert len(statements) == before
    assert _last_seen(engine, "ns") == first
    # A device new to this process is written at once, whatever the interval.
    record_device_seen(engine, "sfs", "ed25519", raw, interval=600, clock=lambda: clock[0])
    assert _last_seen(engine, "sfs") is not None
    clock[0] += 1  # the interval is over: moved
    time.sleep(0.01)
    record_device_seen(engine, "ns", "ed25519", raw, interval=600, clock=lambda: clock[0])
    moved = _last_seen(engine, "ns")
    assert isinstance(moved, type(first)) and moved > first  # type: ignore[operator]


def test_record_device_seen_race(engine: Engine) -> None:
    raw = b"\x04" + bytes(range(64))  # shape of an uncompressed P-256 point; not checked here
    _race(_url(engine), 6, lambda racer: record_device_seen(racer, "ns", "p256", raw))
    assert _count(engine, SeenDevice) == 1


def test_record_device_seen_refuses_unknown_key_types(engine: Engine) -> None:
    with pytest.raises(ValueError, match="rsa"):
        record_device_seen(engine, "ns", "rsa", b"x")
