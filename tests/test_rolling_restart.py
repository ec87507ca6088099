"""A rolling restart under load loses no login: a standalone sfs and two ns instances A and B on shared
PostgreSQL and Redis, behind a balancer (tests/fixtures/balancer.py) for their three public ports. Four
clients run full QR logins back to back (REST session with its nonce, a login page on the browser
WebSocket, the phone scanning, the page hearing LOGIN, REST saying logged in) while A is sent SIGTERM as a
phone channel to it opens, drains and exits, is started again on its ports, and then B the same. A login
whose page was connected to the stopped instance and whose phone scans once it has exited reaches its
page too: the page reconnects through the balancer, as login.js does."""

import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import simple_websocket

from mobilesdk.flows import App
from tests.fixtures.balancer import Backend, Balancer, HealthChecks, wait_until
from tests.fixtures.cluster import SfsCluster, start_sfs_cluster
from tests.fixtures.system import (
    RestClient,
    RunningSystem,
    free_port,
    restart_system,
    start_system,
    stop_system,
    wait_until_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

PIN = "1357"
ROOT_KEY = "root-" + secrets.token_hex(16)
DRAIN_SECONDS = 10
CLIENTS = 4
MIN_LOGINS = 20
PUBLIC = ("http", "websocket", "sigmai")  # what the balancer carries; the admin port is asked directly
DRAINED = re.compile(r"ns: draining (\d+) channels and requests")


@dataclass
class Rolling:
    cluster: SfsCluster
    instances: dict[str, RunningSystem]  # "A", "B": the process serving now
    balancers: dict[str, Balancer]  # by endpoint
    checks: HealthChecks
    logs: list[Path] = field(default_factory=list)  # every log written, old runs' included

    def api(self) -> RestClient:
        return RestClient(f"http://127.0.0.1:{self.balancers['http'].port}", ROOT_KEY)


@pytest.fixture
def rolling(tmp_path: Path, postgres_uri_module: str) -> Iterator[Rolling]:
    cluster = start_sfs_cluster(tmp_path, postgres_uri_module, ROOT_KEY, label="rolling")
    ports = {endpoint: free_port() for endpoint in PUBLIC}
    env = {
        **cluster.ns_env,
        # QR codes send phones to the balancer, which picks the instance, as the public URI does in
        # production (one URI for every instance).
        "NEXTAUTH_NS_DEFAULT_SIGMAI_URI": f"ws://127.0.0.1:{ports['sigmai']}/ns/sigmai",
        "NEXTAUTH_NS_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }
    instances = {
        name: start_system(tmp_path / f"ns-{name}", command=("ns",), extra_env=env, wait_ready=False)
        for name in ("A", "B")
    }
    for system in instances.values():
        wait_until_ready(system)
    checks = HealthChecks(
        {name: f"http://127.0.0.1:{system.port('ns', 'admin')}/readyz" for name, system in instances.items()}
    )
    checks.start()
    balancers = {
        endpoint: Balancer(
            ports[endpoint],
            [Backend(name, system.port("ns", endpoint)) for name, system in instances.items()],
            checks.up,
        )
        for endpoint in PUBLIC
    }
    setup = Rolling(cluster, instances, balancers, checks, [cluster.sfs.log_file])
    yield setup
    for balancer in balancers.values():
        balancer.close()
    checks.stop()
    for system in (*setup.instances.values(), cluster.sfs):
        stop_system(system)


class MovingPage:
    """A login page as templates/static/login.js behaves: it registers its hsid on the browser WebSocket,
    and when the socket closes before LOGIN (an ns that stops closes it as "service restart") it connects
    again, through the balancer and so to an instance that is up, and registers again. Only a LOGIN heard
    on the socket counts: ns sends it at once to a page registering for a session already logged in."""

    def __init__(self, port: int, hsid: str, *, first_port: int | None = None) -> None:
        self._url = f"ws://127.0.0.1:{port}/ns/websocket"
        # Where the first connection goes, when a test wants it on one instance in particular.
        self._first_url = f"ws://127.0.0.1:{first_port}/ns/websocket" if first_port else self._url
        self._hsid = hsid
        self.heard: list[str] = []
        self.attempts = 0
        self.connections = 0
        self.logged_in = threading.Event()
        self._closing = False
        self._ws: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing:
            url = self._first_url if self.attempts == 0 else self._url
            self.attempts += 1
            try:
                self._ws = simple_websocket.Client.connect(url)
            except Exception:  # refused or cut during the upgrade: try again, as login.js does
                time.sleep(0.2)
                continue
            self.connections += 1
            try:
                self._ws.send(f"REGISTER {self._hsid} default")
                while True:
                    message = self._ws.receive()
                    if message is None:
                        break
                    self.heard.append(message)
                    if message == "LOGIN":
                        self.logged_in.set()
                        return
            except simple_websocket.ConnectionClosed:
                pass
            time.sleep(0.2)  # login.js waits about a second; the test has no time to lose

    def close(self) -> None:
        self._closing = True
        try:
            self._ws.close()
        except Exception:  # noqa: S110 - already closed by the server, or never opened
            pass
        self._thread.join(timeout=5)


@dataclass
class Tally:
    """What the clients did, for the assertions: logins started, finished, and how each failure went."""

    started: int = 0
    finished: int = 0
    pages_moved: int = 0  # logins whose page heard LOGIN on another connection than its first
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _enrol(rolling: Rolling, app: App, user: str) -> None:
    api = rolling.api()
    status, created = api.call("POST", f"/v1/servers/default/users/{user}/enrolments")
    assert status == 201, created
    scanned = app.scan(created["qrdata"], pin=PIN)
    status, done = api.call(
        "POST",
        f"/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        {"code": scanned["confirmation_code"]},
    )
    assert status == 200, done


def _login(rolling: Rolling, app: App, user: str, tally: Tally) -> None:
    api = rolling.api()
    nonce = secrets.token_urlsafe(24)
    status, view = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200 and view["loggedin"] is False, (status, view)
    page = MovingPage(rolling.balancers["websocket"].port, view["hsid"])
    try:
        answer = app.scan(view["loginqrdata"], pin=PIN)
        assert answer["result"] == "logged_in", answer
        assert page.logged_in.wait(DRAIN_SECONDS + 10), f"the page never heard LOGIN; heard {page.heard}"
    finally:
        page.close()
    status, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200 and session["loggedin"] is True and session["userid"] == user, (status, session)
    if page.connections > 1:
        with tally.lock:
            tally.pages_moved += 1


def _client(
    rolling: Rolling, home: Path, user: str, ready: threading.Barrier, stop: threading.Event, tally: Tally
) -> None:
    app = rolling.cluster.new_phone(home, PIN)
    _enrol(rolling, app, user)
    ready.wait()
    while not stop.is_set():
        with tally.lock:
            tally.started += 1
        try:
            _login(rolling, app, user, tally)
        except Exception as exc:
            with tally.lock:
                tally.failures.append(f"{user}: {type(exc).__name__}: {exc}")
            continue
        with tally.lock:
            tally.finished += 1


@dataclass
class Restart:
    channels_open: int  # phone channels the balancer had open to the instance when it got SIGTERM
    drained: int  # channels and requests in flight that its log says it drained
    held_page_connections: int  # the page of the login held across the exit connected this many times


def _held_login(rolling: Rolling, name: str) -> tuple[str, dict[str, Any], MovingPage]:
    """A login whose page is connected to instance ``name`` itself (the balancer sent it there)."""
    nonce = secrets.token_urlsafe(24)
    status, view = rolling.api().call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200, view
    page = MovingPage(
        rolling.balancers["websocket"].port,
        view["hsid"],
        first_port=rolling.instances[name].port("ns", "websocket"),
    )
    wait_until(lambda: page.connections == 1, 5, f"the held page connected to {name}")
    return nonce, view, page


def _restart_during_a_login(rolling: Rolling, name: str, held_phone: App, tally: Tally) -> Restart:
    """SIGTERM instance ``name`` just as a phone channel to it opens; once it has exited, the phone of a
    login whose page was connected to it scans; then start the instance again on its ports and wait until
    the balancer sends to it again."""
    system = rolling.instances[name]
    nonce, view, held = _held_login(rolling, name)
    sigmai = rolling.balancers["sigmai"]
    # A phone channel lives some milliseconds: look often, and signal as soon as one is open (waiting for
    # one to have been served and then looking, 50 ms apart, sometimes found it closed already).
    deadline = time.monotonic() + 10
    while (channels_open := sigmai.open_to(name)) < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"no phone channel open to {name} after 10 s")
        time.sleep(0.001)
    system.process.send_signal(signal.SIGTERM)
    assert system.process.wait(timeout=DRAIN_SECONDS + 10) == 0, system.log()
    rolling.logs.append(system.log_file)
    drained = [int(n) for n in DRAINED.findall(system.log())]
    # The stopped instance closed the held page; it reconnects to the other one, where the login ends.
    try:
        assert held_phone.scan(view["loginqrdata"], pin=PIN)["result"] == "logged_in"
        assert held.logged_in.wait(10), f"the held page never heard LOGIN; heard {held.heard}"
    finally:
        held.close()
    status, session = rolling.api().call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200 and session["loggedin"] is True and session["userid"] == "rolling-held", session
    with tally.lock:
        tally.started += 1
        tally.finished += 1
        tally.pages_moved += 1
    again = restart_system(system, "server-again.log")
    rolling.instances[name] = again
    rolling.logs.append(again.log_file)
    wait_until(lambda: rolling.checks.up(name), 5, f"{name} back in the balancer")
    return Restart(channels_open, max(drained, default=0), held.connections)


def test_rolling_restart_under_load_loses_no_login(rolling: Rolling, tmp_path: Path) -> None:
    tally = Tally()
    held_phone = rolling.cluster.new_phone(tmp_path / "held-phone", PIN)
    _enrol(rolling, held_phone, "rolling-held")
    ready = threading.Barrier(CLIENTS + 1, timeout=60)
    stop = threading.Event()
    clients = [
        threading.Thread(
            target=_client,
            args=(rolling, tmp_path / f"phone-{i}", f"rolling-{i}", ready, stop, tally),
            daemon=True,
        )
        for i in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    ready.wait()
    restarts = {name: _restart_during_a_login(rolling, name, held_phone, tally) for name in ("A", "B")}
    # Both instances are back: the load goes on over both for a moment before it stops.
    served_after = {name: rolling.balancers["sigmai"].served[name] for name in ("A", "B")}
    wait_until(
        lambda: all(rolling.balancers["sigmai"].served[n] > served_after[n] for n in ("A", "B")),
        10,
        "phone channels to both restarted instances",
    )
    stop.set()
    for client in clients:
        client.join(timeout=DRAIN_SECONDS + 20)
        assert not client.is_alive()

    assert tally.failures == [], tally.failures
    assert tally.finished == tally.started, tally
    assert tally.finished >= MIN_LOGINS, tally
    for name, restart in restarts.items():
        # A login's phone channel was open to the instance when it got SIGTERM ...
        assert restart.channels_open >= 1, (name, restart)
        assert restart.held_page_connections >= 2, (name, restart)
    # ... and an instance drained it. A channel lives milliseconds: one the balancer saw open can end
    # before the instance handles the signal (CI saw it once, for one of the two, with no login lost), so
    # the drain is asked of the two restarts together; the lost logins are counted above either way.
    assert any(restart.drained >= 1 for restart in restarts.values()), restarts
    for log in rolling.logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"{log}:\n{text}"
