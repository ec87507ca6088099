"""The servers run under gevent: storage must cooperate with it, not block the hub.

Each check runs in a fresh interpreter, because monkey-patching the test process would change every other
test's threads into greenlets.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRELUDE = """
from gevent import monkey

monkey.patch_all()

import sys
import time

import gevent
"""


def _run(code: str, *args: str) -> str:
    script = PRELUDE + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sqlite_from_many_greenlets(tmp_path: Path) -> None:
    code = """
    from authserver.storage import db
    from authserver.storage.repository import ensure_service_key, record_device_seen

    engine = db.create_engine_for(sys.argv[1])
    db.upgrade(engine)

    def work(index):
        key = ensure_service_key(engine, "ns")
        record_device_seen(engine, "ns", "ed25519", bytes([index % 3]) * 32)
        return key.public_key().public_bytes_raw()

    jobs = [gevent.spawn(work, index) for index in range(20)]
    gevent.joinall(jobs, raise_error=True)
    print(len({job.value for job in jobs}))
    """
    assert _run(code, f"sqlite:///{tmp_path / 'g.db'}").split() == ["1"]


def _subscription_code(open_store: str) -> str:
    # A greenlet blocked reading a subscription must leave the hub free: the ticker keeps its pace, and the
    # publisher (another greenlet) gets its message through long before the reader's timeout.
    return f"""
    from authserver.storage.kv import open_kv

    store = {open_store}
    subscription = store.subscribe("events")
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            gevent.sleep(0.05)

    def publisher():
        gevent.sleep(0.3)
        store.publish("events", b"LOGIN")

    started = time.monotonic()
    reader = gevent.spawn(subscription.get, 3.0)
    gevent.joinall([reader, gevent.spawn(ticker), gevent.spawn(publisher)], raise_error=True)
    subscription.close()
    store.close()
    print(reader.value.decode(), len(ticks), ticks[-1] - started < 0.5, time.monotonic() - started < 1.5)
    """


def test_memory_subscription_under_gevent() -> None:
    assert _run(_subscription_code("open_kv(None)")).split() == ["LOGIN", "5", "True", "True"]


@pytest.mark.redis
def test_redis_subscription_under_gevent(redis_uri: str, redis_prefix: str) -> None:
    code = _subscription_code("open_kv(sys.argv[1], prefix=sys.argv[2])")
    assert _run(code, redis_uri, redis_prefix).split() == ["LOGIN", "5", "True", "True"]
