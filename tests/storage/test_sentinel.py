"""Redis through Sentinel (``redis+sentinel://``): a local Sentinel watching two redis-servers, a master and
its replica. The master is killed; the same store object, rate limiter and subscription carry on against the
promoted replica without being made again."""

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from authserver.ratelimit import RateLimited, RateLimiter, parse_rule
from authserver.storage import sentinel
from authserver.storage.kv import RedisStore
from tests.fixtures.system import free_port

REDIS_SERVER = shutil.which("redis-server")
SERVICE = "nextauth-test"


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


class Servers:
    def __init__(self, directory: Path) -> None:
        assert REDIS_SERVER is not None
        self.master, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._start(self.master, [REDIS_SERVER, "--port", str(self.master), *plain])
        self._start(
            self.replica,
            [REDIS_SERVER, "--port", str(self.replica), *plain, "--replicaof", "127.0.0.1", str(self.master)],
        )
        conf = directory / "sentinel.conf"  # Sentinel rewrites its file: one of the test's own
        conf.write_text(
            f"port {self.sentinel}\nbind 127.0.0.1\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        self._start(self.sentinel, [REDIS_SERVER, str(conf), "--sentinel"], cwd=directory)

    def _start(self, port: int, argv: list[str], cwd: Path | None = None) -> None:
        self.processes[port] = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_listening(port)

    @property
    def uri(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{SERVICE}/2"

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    running = Servers(tmp_path_factory.mktemp("sentinel"))
    # The replica has synchronised once the master counts it.
    master = redis.Redis(port=running.master)
    deadline = time.monotonic() + 10
    while master.info("replication")["connected_slaves"] < 1:
        assert time.monotonic() < deadline, "the replica never connected"
        time.sleep(0.05)
    master.close()
    yield running
    running.stop()


def test_sentinel_uris_are_parsed_and_bad_ones_refused() -> None:
    parsed = sentinel.parse("redis+sentinel://:s3cret@a:26379,[::1]:26380,b/main/3?sentinel_password=x")
    assert parsed.sentinels == (("a", 26379), ("::1", 26380), ("b", 26379))
    assert (parsed.service, parsed.db, parsed.password, parsed.sentinel_password) == (
        "main",
        3,
        "s3cret",
        "x",
    )
    assert "s3cret" not in repr(parsed)
    for bad in (
        "redis+sentinel://a:26379",  # no service
        "redis+sentinel://a:26379/main/x",  # db not a number
        "redis+sentinel://a:99999/main",
        "redis+sentinel://:s3cret@a/main?ssl=true",
    ):
        with pytest.raises(ValueError) as refused:
            sentinel.parse(bad)
        assert "s3cret" not in str(refused.value)


def test_failover_is_followed_without_a_new_client(servers: Servers) -> None:
    store = RedisStore(servers.uri, prefix="test-sentinel:")
    limiter = RateLimiter.for_store("ns", servers.uri, prefix="test-sentinel:")
    rule = parse_rule("provoke", "TEST", "3/minute")
    try:
        store.set("before", b"1")
        assert store.get("before") == b"1"
        assert redis.Redis(port=servers.master, db=2).get("test-sentinel:before") == b"1"  # the master has it
        limiter.hit(rule, "hsid-1")
        subscription = store.subscribe("browser")

        servers.kill(servers.master)
        deadline = time.monotonic() + 20
        while True:  # what an ns does meanwhile: its commands fail (503), until Sentinel has promoted
            try:
                store.set("after", b"2")
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "no new master within 20 s"
                time.sleep(0.2)
        assert store.get("after") == b"2"
        assert redis.Redis(port=servers.replica, db=2).get("test-sentinel:after") == b"2"  # promoted
        assert store.ping()

        for _ in range(3):  # the counts go to the new master too: 3 a minute, the 4th refused
            limiter.hit(rule, "hsid-2")
        with pytest.raises(RateLimited):
            limiter.hit(rule, "hsid-2")
        assert redis.Redis(port=servers.replica, db=2).keys("test-sentinel:limits*")  # not in-process

        deadline = time.monotonic() + 10  # the subscription moves over on its own
        while subscription.reconnects == 0 and time.monotonic() < deadline:
            subscription.get(timeout=0.2)
        store.publish("browser", b"after failover")
        assert subscription.get(timeout=5) == b"after failover"
        subscription.close()
    finally:
        store.close()
