"""ns as two worker processes under one supervisor, on PostgreSQL and Redis: a login whose page is connected
to one worker and whose phone talks to the other reaches the page; a killed worker is started again; SIGTERM
lets a login in flight finish in every worker, then the supervisor exits. More than one worker without Redis,
or on SQLite, is refused with one line."""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from authserver.workers import WorkersError, available_cores, workers_setting
from mobilesdk.flows import App
from tests.fixtures.cluster import start_sfs_cluster
from tests.fixtures.flows import PIN, BrowserPage, enrol, new_nonce, start_login
from tests.fixtures.idp_browser import Browser
from tests.fixtures.system import REPO, RunningSystem, run_app, start_system, stop_system, wait_until_ready

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT_KEY = "root-" + secrets.token_hex(16)
DRAIN_SECONDS = 15
READY_LINE = re.compile(r"ns worker (\d+) ready \(pid (\d+)\)")
T = TypeVar("T")


def ready_workers(system: RunningSystem) -> dict[int, int]:
    """Worker number -> pid of its latest start that said it was ready (the supervisor's log)."""
    return {int(index): int(pid) for index, pid in READY_LINE.findall(system.log())}


def wait_for_workers(
    system: RunningSystem, want: dict[int, int] | None = None, timeout: float = 40
) -> dict[int, int]:
    """Until both workers are ready (and neither is still the pid in ``want``)."""
    deadline = time.monotonic() + timeout
    while True:
        workers = ready_workers(system)
        if len(workers) == 2 and not any(workers[i] == pid for i, pid in (want or {}).items()):
            return workers
        assert system.alive(), system.log()
        assert time.monotonic() < deadline, system.log()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("workers")
    cluster = start_sfs_cluster(
        base, request.getfixturevalue("postgres_uri_module"), ROOT_KEY, label="workers"
    )
    sfs = cluster.sfs
    (base / "ns").mkdir()
    (base / "ns" / "ns-root-api-key").write_text(ROOT_KEY)  # where tests.fixtures.flows looks for it
    ns = start_system(
        base / "ns",
        command=("ns",),
        extra_env={
            **cluster.ns_env,
            "NEXTAUTH_NS_WORKERS": "2",
            "NEXTAUTH_NS_DRAIN_SECONDS": str(DRAIN_SECONDS),
        },
        wait_ready=False,
    )
    wait_until_ready(sfs)
    wait_until_ready(ns)
    wait_for_workers(ns)
    phone = base / "phone"
    code, answer = run_app(
        phone, "init", "--sfs", sfs.sigmai_uri("sfs"), "--sfs-key-hash", cluster.sfs_key_hash
    )
    assert code == 0, answer
    code, answer = run_app(phone, "register", "--pin", PIN)
    assert code == 0, answer
    enrol(ns, phone, "wanda")
    yield {"ns": ns, "sfs": sfs, "phone": phone}
    for system in (ns, sfs):
        stop_system(system)


def test_more_than_one_worker_needs_redis_and_a_database_server(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEXTAUTH_")}
    cases = [
        ("ns", {"NEXTAUTH_NS_WORKERS": "2"}, "NEXTAUTH_NS_WORKERS=2 needs Redis"),
        (
            "idp",
            {
                "NEXTAUTH_IDP_WORKERS": "3",
                "NEXTAUTH_KV_URI": "redis://127.0.0.1:6379/0",
                "NEXTAUTH_IDP_SECRET_KEY": "s" * 40,
                "NEXTAUTH_IDP_NS_API_URL": "http://127.0.0.1:1",
                "NEXTAUTH_IDP_NS_API_KEY": "k",
                "NEXTAUTH_IDP_NS_WEBSOCKET_URL": "ws://127.0.0.1:1/ns/websocket",
            },
            "NEXTAUTH_IDP_WORKERS=3 needs PostgreSQL or MariaDB",
        ),
    ]
    started = [  # side by side: each spends its second or two importing
        subprocess.Popen(
            [sys.executable, "-m", "nextauth.cli", command],
            env={**env, "NEXTAUTH_DATA_DIR": str(tmp_path), **settings},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command, settings, _ in cases
    ]
    for process, (_, _, message) in zip(started, cases, strict=True):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2, stderr
        assert stderr.count("\n") == 1 and message in stderr, stderr


def test_the_workers_setting() -> None:
    server = {"kv_uri": "redis://r:6379/0", "db_uri": "postgresql://db/x", "kv_variable": "KV"}
    assert workers_setting("W", None, **server) == workers_setting("W", "auto", **server) == available_cores()
    assert workers_setting("W", "3", **server) == 3
    assert workers_setting("W", "auto", **{**server, "db_uri": "sqlite:///x.db"}) == 1
    assert workers_setting("W", "auto", **{**server, "kv_uri": None}) == 1
    assert workers_setting("W", "1", **{**server, "kv_uri": "memory://"}) == 1
    for wrong in ("0", "-1", "257", "two", "2.5"):
        with pytest.raises(WorkersError, match="W: expected auto or a whole number from 1 to 256"):
            workers_setting("W", wrong, **server)
    with pytest.raises(WorkersError, match=r"W=2 needs Redis \(KV\)"):
        workers_setting("W", "2", **{**server, "kv_uri": "memory://"})


def test_login_on_one_worker_reaches_a_page_on_the_other(two_workers: dict[str, Any]) -> None:
    ns: RunningSystem = two_workers["ns"]
    workers = wait_for_workers(ns)
    page_worker, phone_worker = workers[0], workers[1]
    view = start_login(ns, new_nonce())
    # Only the stopped worker's twin can accept: the page connects to worker 0, the phone to worker 1.
    os.kill(phone_worker, signal.SIGSTOP)
    try:
        page = BrowserPage(ns, view["hsid"], "default")
        time.sleep(0.3)  # worker 0 reads REGISTER before it is stopped in turn
    finally:
        os.kill(phone_worker, signal.SIGCONT)
    try:
        os.kill(page_worker, signal.SIGSTOP)
        try:
            code, answer = run_app(two_workers["phone"], "scan", view["loginqrdata"], "--pin", PIN)
        finally:
            os.kill(page_worker, signal.SIGCONT)
        assert code == 0 and answer["result"] == "logged_in", answer
        page.wait_for("LOGIN")
    finally:
        page.close()
    # The login was counted by worker 1; with it stopped, worker 0 answers the scrape and counts it too.
    os.kill(phone_worker, signal.SIGSTOP)
    try:
        status, metrics = ns.get("ns", "admin", "/metrics")
    finally:
        os.kill(phone_worker, signal.SIGCONT)
    assert status == 200
    assert 'nextauth_logins_total{method="qr",outcome="succeeded"} 1.0' in metrics, metrics


IDP_READY_LINE = re.compile(r"idp worker (\d+) ready \(pid (\d+)\)")


def _on_worker(keep: int, other: int, work: Callable[[], T]) -> T:
    """``work`` while ``other`` is stopped: a new connection can only be accepted by ``keep``."""
    os.kill(other, signal.SIGSTOP)
    try:
        return work()
    finally:
        os.kill(other, signal.SIGCONT)


def test_the_idp_as_two_workers_logs_in_and_out_across_them(
    two_workers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The login page served by one IdP worker, its completion by the other; then forward-auth on the
    first worker lets the session in, a logout on the second ends it, and the first refuses it on the
    next request (it heard through Redis, not from its database read every few seconds)."""
    ns: RunningSystem = two_workers["ns"]
    idp = start_system(
        tmp_path_factory.mktemp("idp-workers"),
        command=("idp",),
        extra_env={
            "NEXTAUTH_DB_URI": ns.env["NEXTAUTH_DB_URI"],
            "NEXTAUTH_KV_URI": ns.env["NEXTAUTH_KV_URI"],
            "NEXTAUTH_IDP_WORKERS": "2",
            "NEXTAUTH_IDP_SECRET_KEY": secrets.token_urlsafe(40),
            "NEXTAUTH_IDP_NS_API_URL": f"http://127.0.0.1:{ns.port('ns', 'http')}",
            "NEXTAUTH_IDP_NS_API_KEY": ROOT_KEY,
            "NEXTAUTH_IDP_NS_WEBSOCKET_URL": f"ws://127.0.0.1:{ns.port('ns', 'websocket')}/ns/websocket",
            "NEXTAUTH_IDP_FORWARD_AUTH_HOSTS": "app.example.com",
        },
    )
    try:
        deadline = time.monotonic() + 60
        while len(dict(IDP_READY_LINE.findall(idp.log()))) < 2:
            assert idp.alive() and time.monotonic() < deadline, idp.log()
            time.sleep(0.1)
        first, second = (int(pid) for _, pid in sorted(dict(IDP_READY_LINE.findall(idp.log())).items()))
        browser = Browser(idp)
        # No kept-alive connection: each request is accepted anew, by the worker that is not stopped.
        browser.http = httpx.Client(
            follow_redirects=False,
            timeout=15,
            headers={"Accept": "text/html"},
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        page = _on_worker(first, second, lambda: browser.get("/login?next=/whoami"))
        done = _on_worker(second, first, lambda: browser.approve_on_phone(page, two_workers["phone"]))
        assert done.status_code == 200 and done.json()["sub"] == "wanda", done.text[:300]

        asked = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": "/reports",
            "X-Forwarded-Method": "GET",
        }
        allowed = _on_worker(first, second, lambda: browser.get("/auth/forward", headers=asked))
        assert allowed.status_code == 200 and allowed.headers["Remote-User"] == "wanda"
        out = _on_worker(second, first, lambda: browser.post("/logout"))
        assert out.status_code == 302, out.text[:300]
        refused = _on_worker(first, second, lambda: browser.get("/auth/forward", headers=asked))
        assert refused.status_code == 302 and "/login" in refused.headers["Location"]
        browser.close()
    finally:
        stop_system(idp)
    assert idp.process.returncode == 0, idp.log()


def test_a_killed_worker_is_started_again(two_workers: dict[str, Any]) -> None:
    ns: RunningSystem = two_workers["ns"]
    before = wait_for_workers(ns)
    os.kill(before[1], signal.SIGKILL)
    after = wait_for_workers(ns, want={1: before[1]})
    assert after[0] == before[0]
    assert f"ns worker 1 (pid {before[1]}) exited with SIGKILL; starting it again in 0.5 s" in ns.log()
    assert ns.get("ns", "admin", "/readyz")[0] == 200


def test_sigterm_lets_a_login_in_flight_finish_in_every_worker(
    two_workers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last: it stops the system."""
    ns: RunningSystem = two_workers["ns"]
    wait_for_workers(ns)
    view = start_login(ns, new_nonce())
    page = BrowserPage(ns, view["hsid"], "default")
    app = App(two_workers["phone"])
    attest = app.attest
    refused: list[bool] = []
    terminated: list[float] = []

    def attest_then_terminate(**kwargs: Any) -> Any:
        # The phone's channel to ns is open and its PIN checked: now the supervisor is told to stop.
        attestation = attest(**kwargs)
        ns.process.send_signal(signal.SIGTERM)
        terminated.append(time.monotonic())
        deadline = time.monotonic() + 5
        while not refused and time.monotonic() < deadline:  # every worker closes its listeners
            try:
                socket.create_connection(("127.0.0.1", ns.port("ns", "http")), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused.append(True)
        status, ready = ns.get("ns", "admin", "/readyz")
        assert status == 503 and ready["checks"]["accepting"] is False, ready
        return attestation

    monkeypatch.setattr(app, "attest", attest_then_terminate)
    try:
        answer = app.scan(view["loginqrdata"], pin=PIN)
        assert answer["result"] == "logged_in"
        page.wait_for("LOGIN")
    finally:
        page.close()
    assert refused == [True], "a new connection was still accepted while draining"
    assert ns.process.wait(timeout=DRAIN_SECONDS + 5) == 0, ns.log()
    assert time.monotonic() - terminated[0] < DRAIN_SECONDS
    assert "ns: all workers stopped" in ns.log()
