"""Full QR logins per second with N simulated phones, against the real services.

Each login is what happens in production: the application asks ns for a session's QR (REST), the phone
opens a sigmai channel to ns with its account key, starts the login, opens a channel to its SFS, checks
the PIN (OPRF evaluation, proof, attestation), signs the confirmation and finishes at ns, which verifies
everything and records the session. Phones run as threads of this process (the Mobile SDK in-process);
the services run as their own process (`nextauth all`), so the numbers include both sides on this
machine's two cores.
"""

import contextlib
import functools
import html
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import crypto_floor, history
from bench.common import (
    SQLITE,
    Backend,
    LoadWatch,
    free_port,
    machine_table,
    named_processes_cpu,
    process_tree_cpu,
    server_versions,
    speed_probe_ms,
)
from bench.counting import FIELDS, db_round_trips
from bench.phones import NsRest, Outcome, PhoneProcesses, run_logins
from bench.profiles import ProfileSummary, safely, summarize
from bench.profiles import markdown as markdown_profile
from mobilesdk.flows import App
from mobilesdk.store import ServiceEndpoint
from nextauth_core.qr import QRPayload

REPO = Path(__file__).resolve().parents[1]
# Figures of an earlier run (``python -m bench --only logins --save-logins FILE`` on an earlier commit),
# shown beside this run's: the page's before/after table.
BASELINE = REPO / "docs" / "benchmarks" / "logins-before.json"
# Phones run in as many processes as the machine has cores (they share them with the services).
PHONE_PROCESSES = max(2, os.cpu_count() or 2)
# Phones and logins per phone of the back-to-back rows: each lasts about 3 s on 2 cores. A shared machine's
# speed changes over seconds: rows of 100 logins (about 1 s) moved by a quarter from one run to the next,
# the phones' CPU per login with the servers', where a longer row averages such changes out.
BACK_TO_BACK_ROWS = ((1, 200), (10, 30), (100, 4))
HALF_LOAD_PHONES = 10
HALF_LOAD_SECONDS = 10.0
# The goal's figure (CpuSliceTaker): slices of 10 phones x 20 logins (about 1.5 s each), one per backend
# before the rows and after each kind of row.
CPU_SLICE_LOGINS = 20
# Logins counted per row (bench.counting), on services of their own: the hooks cost the services about half
# a millisecond of CPU per login (side by side, 12 x 200 logins: 6.5 against 6.0 ms), so the row's CPU,
# rates and latencies are taken on services without them.
COUNTED_LOGINS = 20
# The goal of issue 17: server CPU per full QR login.
CPU_GOAL_MS = 5.0
# The database and Redis servers' processes, by command name: their CPU per login is what says how many
# logins (and so how many instances of the services) one of each carries.
BACKEND_PROCESSES = {"postgres": ("postgres",), "redis": ("redis-server",)}
PIN = "8642"
ENDPOINTS = {
    "ns": ("http", "websocket", "sigmai", "admin"),
    "sfs": ("sigmai", "admin"),
    "mc": ("http", "grpc", "sigmai", "admin"),
}


class Services:
    """``nextauth all`` (ns, sfs, mc and the IdP) in a child process on free loopback ports.

    With ``profile_to`` it runs under ``bench.wrapper``: ``profile_start()`` and ``profile_stop()`` bracket
    the workload, and the pyinstrument session lands in that file. ``nodelay`` runs it with TCP_NODELAY on
    the WSGI servers' sockets (see ``bench.wrapper``). ``counting`` has it count its SQL statements,
    transactions and Redis commands (``bench.counting``): ``reset_counts()`` and ``counts()``. ``pick_port``
    picks its ports (tests pass their own picker, whose range is per test process)."""

    def __init__(
        self,
        data_dir: Path,
        extra_env: dict[str, str],
        *,
        profile_to: Path | None = None,
        nodelay: bool = False,
        counting: bool = False,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.ports = {c: {e: pick_port() for e in eps} for c, eps in ENDPOINTS.items()}
        self.idp_port = pick_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTAUTH_")}
        env.update(extra_env, NEXTAUTH_DATA_DIR=str(data_dir), NEXTAUTH_LOG_LEVEL="WARNING")
        for component, endpoints in self.ports.items():
            for endpoint, port in endpoints.items():
                env[f"NEXTAUTH_{component.upper()}_{endpoint.upper()}_LISTEN"] = f"127.0.0.1:{port}"
        env["NEXTAUTH_IDP_LISTEN"] = f"127.0.0.1:{self.idp_port}"
        env["NEXTAUTH_IDP_ADMIN_PORT"] = str(pick_port())  # not the fixed 9616: runs side by side
        env["NEXTAUTH_IDP_LOG_LEVEL"] = "WARNING"
        # The load comes from one address on purpose: the rate limits that would stop it are off here.
        env.setdefault("NEXTAUTH_IDP_RATE_LIMIT_LOGIN", "off")
        env.setdefault("NEXTAUTH_SFS_RATE_LIMIT_REGISTER", "off")
        env.setdefault("NEXTAUTH_MC_RATE_LIMIT_MAILBOX", "off")
        self.env = env
        self.data_dir = data_dir
        self.profile_to = profile_to
        self.count_to = data_dir / "counts.json" if counting else None
        prefix = ["-m", "bench.wrapper"] if profile_to or nodelay or counting else ["-m"]
        prefix += ["--nodelay"] if nodelay else []
        prefix += ["--profile", str(profile_to)] if profile_to else []
        prefix += ["--count", str(self.count_to)] if self.count_to else []
        self.process = subprocess.Popen(
            [sys.executable, *prefix, "nextauth.cli", "all"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=(data_dir / "server.log").open("wb"),
        )
        deadline = time.monotonic() + 60
        while not (data_dir / "ns-root-api-key").exists() or not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"services did not start: {(data_dir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        self.api_key = (data_dir / "ns-root-api-key").read_text().strip()

    @property
    def idp_url(self) -> str:
        return f"http://127.0.0.1:{self.idp_port}"

    def profile_start(self) -> None:
        if self.profile_to is not None:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(0.2)

    def profile_stop(self) -> Path | None:
        if self.profile_to is None:
            return None
        self.process.send_signal(signal.SIGUSR2)
        done = Path(str(self.profile_to) + ".done")
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.2)
        return self.profile_to if done.exists() else None

    def reset_counts(self) -> None:
        """Counting starts from zero now (``counting`` only; under ``--profile`` this starts it too)."""
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)  # the signal is handled in the server's own time

    def counts(self) -> dict[str, int]:
        """What the services asked of the database and Redis since ``reset_counts()``."""
        if self.count_to is None:
            raise RuntimeError("the services do not count: start them with counting=True")
        before = json.loads(self.count_to.read_text())["dump"] if self.count_to.exists() else 0
        self.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.count_to.exists():
                found: dict[str, int] = json.loads(self.count_to.read_text())
                if found["dump"] > before:
                    return found
            time.sleep(0.05)
        raise RuntimeError("the services wrote no counts")

    def cpu_seconds(self) -> float:
        """User + system CPU time the services (the process and any workers under it) have used."""
        return process_tree_cpu(self.process.pid)

    def _ready(self) -> bool:
        try:
            for component in ENDPOINTS:
                url = f"http://127.0.0.1:{self.ports[component]['admin']}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status != 200:
                        return False
        except OSError:
            return False
        try:
            urllib.request.urlopen(f"{self.idp_url}/whoami", timeout=2).close()  # noqa: S310
        except urllib.error.HTTPError:
            return True  # 401: the IdP answers
        except OSError:
            return False
        return True

    @functools.cached_property
    def rest(self) -> NsRest:
        return NsRest(f"http://127.0.0.1:{self.ports['ns']['http']}", self.api_key)

    def call(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.rest.call(method, path, headers)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def idp_login(
    services: Services, app: App, account: str, *, idp_url: str | None = None
) -> tuple[str, dict[str, str]]:
    """A real QR login at the IdP's login page, as a browser does it: the page's QR, the phone approves,
    the page completes. Returns the ``nextauth_session`` cookie's token and all the browser's cookies.
    ``idp_url``: another IdP than the one of ``services``, beside the same ns."""
    import httpx

    with httpx.Client(base_url=idp_url or services.idp_url, timeout=30) as browser:
        page = browser.get("/login", params={"next": "/whoami"})
        page.raise_for_status()
        found = re.search(r'data-qrdata="([^"]+)"', page.text)
        if found is None:
            raise RuntimeError("the IdP's login page carries no data-qrdata")
        app.login(QRPayload.decode(html.unescape(found.group(1))), pin=PIN, approve=True, account_id=account)
        key = re.search(r'name="login_key" value="([^"]*)"', page.text)
        login_key = html.unescape(key.group(1)) if key else ""
        browser.post("/login/complete", data={"next": "/whoami", "login_key": login_key})
        token = browser.cookies.get("nextauth_session")
        if not token:
            raise RuntimeError("the IdP set no nextauth_session cookie after the login")
        return token, {c.name: c.value for c in browser.cookies.jar if c.value is not None}


def phone(services: Services, home: Path, user: str) -> tuple[App, str]:
    """A phone with a device key, registered with the SFS and enrolled at ns as ``user``."""
    return _phone(services, home, user)


def _phone(services: Services, home: Path, user: str) -> tuple[App, str]:
    App(home).store.create_device()
    config = json.loads((services.data_dir / "app-config.json").read_text())
    App(home).store.save_services(
        {name: ServiceEndpoint.from_json(name, value) for name, value in config.items()}
    )
    app = App(home, timeout=60)
    app.register(PIN)
    created = services.call("POST", f"/v1/servers/default/users/{user}/enrolments")
    scanned = app.scan(created["qrdata"], pin=PIN)
    request = urllib.request.Request(
        f"http://127.0.0.1:{services.ports['ns']['http']}/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        data=json.dumps({"code": scanned["confirmation_code"]}).encode(),
        method="POST",
        headers={"X-apikey": services.api_key, "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
    return app, scanned["account"]


def measure(
    services: Services,
    counted: Services,
    phones: int,
    logins_per_phone: int,
    workdir: Path,
    *,
    processes: int = 1,
    pace_seconds: float = 0.0,
) -> dict[str, Any]:
    """``phones`` phones enrolled here, then logging in from ``processes`` processes of their own: CPU,
    rates and latencies on ``services``; what a login asks of the database and Redis from up to
    ``COUNTED_LOGINS`` logins of as many phones of their own on ``counted`` (services with the counting
    hooks, started with ``counting=True``)."""
    runner = _phones(services, phones, logins_per_phone, workdir, processes, pace_seconds)
    try:
        row = measure_cpu(services, runner.run)
    finally:
        runner.kill()
    counted_logins = max(1, min(logins_per_phone, COUNTED_LOGINS // phones))
    counting = _phones(counted, phones, counted_logins, workdir / "counted", processes, pace_seconds)
    try:
        counts = count_per_login(counted, counting.run)
    finally:
        counting.kill()
    row["per_login"] = {**counts, **row["per_login"]}
    return {**row, "phones": phones, "phone_processes": len(runner.children), "pace_seconds": pace_seconds}


def _phones(
    services: Services, phones: int, logins_per_phone: int, workdir: Path, processes: int, pace_seconds: float
) -> PhoneProcesses:
    """``phones`` phones enrolled at ``services``, each having logged in once, ready to log in again."""
    return PhoneProcesses(
        services.rest,
        _enrolled(services, phones, workdir, processes),
        processes,
        logins_per_phone=logins_per_phone,
        pin=PIN,
        pace_seconds=pace_seconds,
    )


def _enrolled(
    services: Services, phones: int, workdir: Path, processes: int = PHONE_PROCESSES, warm_up: int = 1
) -> list[tuple[Path, str]]:
    """``phones`` phones enrolled at ``services`` (their home folders and accounts), each having logged in
    ``warm_up`` times."""
    # Users of their own per services (a backend configured with one database gives both the same one).
    tag = "c" if services.count_to is not None else ""
    homes = [(workdir / f"phone-{phones}-{i}", f"user-{tag}{phones}-{i}") for i in range(phones)]
    enrolled = [(home, _phone(services, home, user)[1]) for home, user in homes]
    # One untimed login per phone first, back to back: the services' pools grow to this row's concurrency
    # (a PostgreSQL connection opened costs the services about a millisecond of CPU, and the server more),
    # so the row measures them as they run for days, not as they start.
    first = PhoneProcesses(services.rest, enrolled, processes, logins_per_phone=warm_up, pin=PIN)
    try:
        first.run()
    finally:
        first.kill()
    return enrolled


def count_per_login(counted: Services, run: Callable[[], Outcome]) -> dict[str, float]:
    """What one login asked of the database and Redis, counted inside the services over one run."""
    counted.reset_counts()
    outcome = run()
    counts = counted.counts()
    logins = max(len(outcome.latencies) + len(outcome.errors), 1)
    per_login: dict[str, float] = {name: counts[name] / logins for name in FIELDS}
    per_login["db_round_trips"] = db_round_trips(per_login)
    return per_login


def measure_cpu(services: Services, run: Callable[[], Outcome]) -> dict[str, Any]:
    """One run of logins with, per login, the CPU time the services used, and the CPU time of the phones
    (the Mobile SDK and the application's REST calls, in whichever processes they ran); and how busy each
    side kept the machine's cores."""
    server_cpu = services.cpu_seconds()
    backends_cpu = {name: named_processes_cpu(names) for name, names in BACKEND_PROCESSES.items()}
    outcome = run()
    server_cpu = services.cpu_seconds() - server_cpu
    backends_cpu = {
        name: named_processes_cpu(names) - backends_cpu[name] for name, names in BACKEND_PROCESSES.items()
    }
    row = _row(outcome)
    logins = max(row["logins"] + row["errors"], 1)
    per_login: dict[str, float] = {}
    per_login["server_cpu_ms"] = 1000 * server_cpu / logins
    per_login["phone_cpu_ms"] = 1000 * outcome.cpu_seconds / logins
    for name, seconds in backends_cpu.items():
        per_login[f"{name}_cpu_ms"] = 1000 * seconds / logins
    busy = {
        "server_cores": server_cpu / outcome.wall_seconds,
        "phone_cores": outcome.cpu_seconds / outcome.wall_seconds,
    }
    return {**row, "per_login": per_login, "busy": busy}


def measure_logins(services: Services, apps: list[tuple[App, str]], logins_per_phone: int) -> dict[str, Any]:
    """Logins by phones running as threads of this process (the tests' way: no child processes)."""
    return {"phones": len(apps), **_row(run_logins(services.rest, apps, logins_per_phone, PIN))}


def _row(outcome: Outcome) -> dict[str, Any]:
    latencies = sorted(outcome.latencies)
    return {
        "logins": len(latencies),
        "errors": len(outcome.errors),
        "error_kinds": sorted(set(outcome.errors)),
        "per_second": len(latencies) / outcome.wall_seconds,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if latencies
        else float("nan"),
    }


def machine_source() -> str:
    from bench.common import tool_versions

    return tool_versions().get("source", "?")


def before_and_after(before: dict[str, Any], rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The per-login figures of a saved earlier run beside this run's, backend by backend and phones by
    phones (rows both runs have)."""
    earlier = {(name, row["phones"]): row for name, row in before["rows"] if not row.get("pace_seconds")}
    lines = [
        "## Before and after",
        "",
        f"Before: {before['source']} ({before['load']}); after: this run. Same benchmark, a machine of "
        "the same kind; per login."
        + (
            ""
            if any("phone_processes" in row for _name, row in before["rows"])
            else " The earlier run's phones were threads of the benchmark process, competing with its "
            "timing; its per-login counts and CPU compare directly, its logins/s less so."
        ),
        "",
        "| backend | phones | | statements | transactions | pre-pings | DB round trips | Redis commands "
        "(round trips) | server CPU ms | phone CPU ms | logins/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows:
        old = earlier.get((name, row["phones"]))
        if old is None or row.get("pace_seconds"):
            continue
        for label, found in (("before", old), ("after", row)):
            c = found["per_login"]
            lines.append(
                f"| {name} | {row['phones']} | {label} | {c['statements']:.1f} | {c['transactions']:.1f} "
                f"| {c['pings']:.1f} | {c['db_round_trips']:.1f} "
                f"| {c['redis_commands']:.1f} ({c['redis_round_trips']:.1f}) | {c['server_cpu_ms']:.1f} "
                f"| {c['phone_cpu_ms']:.1f} | {found['per_second']:.1f} |"
            )
    return "\n".join(lines) + "\n"


@dataclass
class LoginResults:
    markdown: str
    rows: list[tuple[str, dict[str, Any]]]
    profile: ProfileSummary | None
    cpu: list["CpuSlices"]


@dataclass
class _Running:
    """One backend's services: those measured, and those with the counting hooks (``measure``)."""

    name: str
    services: Services
    counted: Services
    folder: Path


def _start(backend: Backend, stack: contextlib.ExitStack) -> _Running:
    """The backend's two ``nextauth all``, each on its own database (where the backend makes them) and key
    space, so the counted logins leave the measured services alone; stopped when ``stack`` closes."""
    env = stack.enter_context(backend.database())
    counted_env = stack.enter_context(backend.database())
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nextauth-bench-")))
    for side in ("measured", "counted"):
        (folder / side).mkdir()
    services = Services(folder / "measured", env)
    stack.callback(services.stop)
    counted = Services(
        folder / "counted", {**counted_env, "NEXTAUTH_KV_PREFIX": "nextauth-bench-counted:"}, counting=True
    )
    stack.callback(counted.stop)
    history.grow(services.env, "m")
    history.grow(counted.env, "c")
    return _Running(backend.name, services, counted, folder)


@dataclass
class CpuSlices:
    """Server and phone CPU per login in each slice of the goal's measurement, for one backend."""

    name: str
    server_ms: list[float]
    phone_ms: list[float]
    errors: int
    loop_ms: list[float] = field(default_factory=list)  # the machine's speed around each slice

    @property
    def server_median(self) -> float:
        return statistics.median(self.server_ms)


class CpuSliceTaker:
    """The goal's figure: CPU per login of 10 phones logging in back to back, in slices of
    ``CPU_SLICE_LOGINS`` logins per phone, each ``take()`` one slice per backend in turn. ``run`` takes
    them before the rows and after each kind of row, so they are spread over the whole benchmark: a shared
    machine's speed moves by a quarter over seconds and sometimes halves for a quarter of a minute (the
    phones' CPU per login moving with the servers'), and the median of slices spread over the run says
    what a login costs where one row, or slices taken together, say what the machine did meanwhile."""

    def __init__(self, running: list[_Running], per_phone: int) -> None:
        self._running = running
        self._per_phone = per_phone
        self._found = {r.name: CpuSlices(r.name, [], [], 0) for r in running}
        # The first slice comes before any row: its phones log in 6 times each first, so each pooled
        # PostgreSQL connection has run the login's statements the 5 times after which psycopg prepares
        # them, as a running server's connections have.
        self._enrolled = {
            r.name: _enrolled(r.services, HALF_LOAD_PHONES, r.folder / "slices", warm_up=6) for r in running
        }

    def take(self) -> None:
        for r in self._running:
            runner = PhoneProcesses(
                r.services.rest,
                self._enrolled[r.name],
                PHONE_PROCESSES,
                logins_per_phone=self._per_phone,
                pin=PIN,
            )
            before = speed_probe_ms()
            try:
                row = measure_cpu(r.services, runner.run)
            finally:
                runner.kill()
            found = self._found[r.name]
            found.loop_ms.append((before + speed_probe_ms()) / 2)
            found.server_ms.append(row["per_login"]["server_cpu_ms"])
            found.phone_ms.append(row["per_login"]["phone_cpu_ms"])
            found.errors += row["errors"]

    def result(self) -> list[CpuSlices]:
        return list(self._found.values())


def limit_of(row: dict[str, Any]) -> str:
    """Which side held the rate back, from how busy each kept the cores while it ran."""
    busy = row["busy"]
    cores = os.cpu_count() or 1
    if row.get("pace_seconds"):
        return "paced: neither"
    # One gevent process never keeps its core quite full (it waits on its own sockets between turns).
    if busy["server_cores"] >= 0.8:
        return "the services (their one core)"
    if busy["server_cores"] + busy["phone_cores"] >= 0.85 * cores:
        return "the machine (both sides' CPU)"
    return "latency (cores idle between round trips)"


def capacity_section(
    rows: list[tuple[str, dict[str, Any]]], slices: list[CpuSlices], floor: crypto_floor.Floor
) -> str:
    """Server CPU per login against the goal and against the crypto a login cannot do without; what one
    core of the services carries at that cost."""
    count = max((len(found.server_ms) for found in slices), default=0)
    lines = [
        "### Server CPU against the crypto floor",
        "",
        "Server CPU per login here is the median of "
        f"{count} slices of {HALF_LOAD_PHONES} phones logging in back to back, one per backend in turn "
        "before the rows above and after each kind of row (bench/qr_login.py, `CpuSliceTaker`): this "
        "machine's speed moves over seconds, and the median of slices spread over the run holds what a "
        "login costs, where one row holds what the machine did while it ran. Every slice is listed, in "
        "the order taken, with the machine's speed around it (the fixed Python loop's ms before and after, "
        "averaged: lower is faster). The floor: the primitives the "
        "servers must compute for one login, each timed alone in this run (bench/crypto_floor.py). Per "
        "core: logins per second one core of the services carries at that CPU per login (the goal, "
        f"{CPU_GOAL_MS:.0f} ms per login, is {1000 / CPU_GOAL_MS:.0f} per core).",
        "",
        "| backend | server CPU ms per login (median) | each slice, in turn (loop ms) "
        "| phones' CPU ms (median) | errors | crypto floor ms | CPU : floor | logins/s per core "
        f"| goal ≤ {CPU_GOAL_MS:.0f} ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for found in slices:
        cpu = found.server_median
        each = ", ".join(
            f"{ms:.1f} ({loop:.0f})" for ms, loop in zip(found.server_ms, found.loop_ms, strict=True)
        )
        lines.append(
            f"| {found.name} | {cpu:.1f} | {each} | {statistics.median(found.phone_ms):.1f} | {found.errors} "
            f"| {floor.total_ms:.2f} | {cpu / floor.total_ms:.0f}x | {1000 / cpu:.0f} "
            f"| {'met' if cpu <= CPU_GOAL_MS and not found.errors else 'not met'} |"
        )
    lines += ["", floor.markdown(), *_backend_capacity(rows)]
    return "\n".join(lines)


def _backend_capacity(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """For the rows on PostgreSQL + Redis: the CPU those servers spent per login (all their processes,
    from /proc) and so how many cores of the services one core of each keeps up with."""
    found = [
        (name, row)
        for name, row in rows
        if "PostgreSQL" in name and row["phones"] == HALF_LOAD_PHONES and not row.get("pace_seconds")
    ]
    if not found:
        return []
    lines = [
        "",
        "### What one PostgreSQL and one Redis carry",
        "",
        "CPU time of every PostgreSQL and Redis server process on this machine during the saturated "
        "10-phone run, per login (anything else they served meanwhile counts too: run on a quiet machine). "
        "One core of the services carries 1000 / (services' CPU per login) logins per second; one core "
        "of PostgreSQL or Redis keeps up with (services' CPU) / (its CPU) such cores, that is with as many "
        "one-worker instances. Round trips, not CPU, set the latency each adds.",
        "",
        "| backend | services CPU ms | PostgreSQL CPU ms | Redis CPU ms | logins/s per core: services "
        "/ PostgreSQL / Redis | service cores per PostgreSQL core | service cores per Redis core |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in found:
        c = row["per_login"]
        server, database, redis_cpu = c["server_cpu_ms"], c["postgres_cpu_ms"], c["redis_cpu_ms"]

        rates = " / ".join(f"{1000 / ms:.0f}" if ms > 0 else "-" for ms in (server, database, redis_cpu))
        cores = [f"{server / ms:.1f}" if ms > 0 else "-" for ms in (database, redis_cpu)]
        lines.append(
            f"| {name} | {server:.1f} | {database:.2f} | {redis_cpu:.2f} | {rates} "
            f"| {cores[0]} | {cores[1]} |"
        )
    return lines


def run(
    *,
    quick: bool = False,
    backends: list[Backend] | None = None,
    notes: list[str] | None = None,
    command: str = "python -m bench --only logins",
    profile_dir: Path | None = None,
    save_to: Path | None = None,
) -> LoginResults:
    backends = backends or [Backend(SQLITE)]
    watch = LoadWatch()
    server_notes: list[str] = []
    started = time.perf_counter()
    notes = list(notes or [])
    with contextlib.ExitStack() as stack:
        running: list[_Running] = []
        for backend in backends:
            versions = ", ".join(f"{k} {v}" for k, v in server_versions(backend).items())
            server_notes.append(f"{backend.name}: {versions}" + (f"; {backend.note}" if backend.note else ""))
            try:
                running.append(_start(backend, stack))
            except RuntimeError as exc:
                notes.append(f"{backend.name} not measured: {str(exc)[-400:]}")
        # Every backend's services run side by side, and each row is measured on one backend after the
        # other: a change in the machine's speed falls on the backends alike.
        slices = CpuSliceTaker(running, 3 if quick else CPU_SLICE_LOGINS)
        slices.take()
        mine: dict[str, list[dict[str, Any]]] = {r.name: [] for r in running}
        for phones, per_phone in ((1, 10), (10, 5)) if quick else BACK_TO_BACK_ROWS:
            processes = 1 if phones == 1 else PHONE_PROCESSES
            for r in running:
                mine[r.name].append(
                    measure(r.services, r.counted, phones, per_phone, r.folder, processes=processes)
                )
            if not quick:
                slices.take()
        # The same services at half of the peak they just showed: latency a user sees when the servers
        # are not saturated, at a rate fixed in advance (paced phones, not back to back).
        for r in running:
            peak = max(row["per_second"] for row in mine[r.name])
            pace = HALF_LOAD_PHONES / (peak / 2)
            per_phone = 3 if quick else max(3, round(HALF_LOAD_SECONDS / pace))
            mine[r.name].append(
                measure(
                    r.services,
                    r.counted,
                    HALF_LOAD_PHONES,
                    per_phone,
                    r.folder / "half",
                    processes=PHONE_PROCESSES,
                    pace_seconds=pace,
                )
            )
        slices.take()
        cpu = slices.result()
    rows = [(name, row) for name, found in mine.items() for row in found]
    floor = crypto_floor.measure(quick=quick)
    profile = safely(lambda: _profile(backends[-1], profile_dir, quick), notes) if profile_dir else None
    elapsed = time.perf_counter() - started
    lines = [
        "# Benchmarks: full QR logins",
        "",
        "Generated by `python -m bench` (bench/qr_login.py). Each login: REST session + QR, sigmai to ns, "
        "sigmai to the SFS with the OPRF PIN check and attestation, signed confirmation, session recorded, "
        "REST check that the session is logged in. The application's REST calls go over a connection it "
        "keeps open, one per phone, as an HTTP client's pool does (the IdP's own client to ns does). The "
        "phones (the Mobile SDK, new sigmai channels per "
        f"login) run as threads of {PHONE_PROCESSES} processes of their own (bench/phones.py; one process "
        "for one phone); the services run as `nextauth all` (one process, one worker) on the same "
        "machine, so both sides share its CPUs. Each row's phones first log in once each, untimed, so "
        "that the row measures the services with their pools grown to its concurrency, as they run "
        "for days (a row's connections opened show what it still opened after that). Their databases "
        f"hold, before the first login, what months of use leave: {history.describe()} of the default "
        "virtual server (bench/history.py): a lookup that walks a table shows here, as on a fresh "
        "database it would not.",
        "",
        machine_table(command),
        f"Servers: {'; '.join(server_notes)}.",
        "",
        f"Run: {elapsed:.0f} s; {watch.note()}.",
        "",
    ]
    lines += [f"Note: {note}" for note in notes or []]
    lines += [
        "",
        "| backend | phones (processes) | offered load | logins | errors | logins/s | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows:
        kinds = f" ({', '.join(row['error_kinds'])})" if row["errors"] else ""
        offered = (
            f"paced, {row['phones'] / row['pace_seconds']:.1f}/s (half of peak)"
            if row.get("pace_seconds")
            else "back to back"
        )
        lines.append(
            f"| {name} | {row['phones']} ({row.get('phone_processes', 1)}) | {offered} | {row['logins']} "
            f"| {row['errors']}{kinds} | {row['per_second']:.1f} | {row['p50_ms']:.0f} "
            f"| {row['p99_ms']:.0f} |"
        )
    lines += [
        "",
        "Latency is one login as the user waits for it (QR fetched to session confirmed); with N phones "
        "logging in back to back the services are saturated, so p50 grows with N at a flat rate. The "
        "paced row offers half of the best rate above at fixed times, whatever the answers take: what a "
        "user waits when the servers have room.",
        "",
        "### Per login",
        "",
        "What one full QR login cost, averaged over the logins of each row: SQL statements (of them sent "
        "in autocommit mode, outside an explicit transaction), database transactions (of them single "
        "write statements in autocommit mode, which the database commits on their own; the others are "
        "BEGIN ... COMMIT with at least one statement), pool pre-pings, PostgreSQL round trips "
        "(statements + BEGIN and COMMIT of each explicit transaction + pre-pings; on SQLite what the same "
        "work would cost on a server), SQLite VM instructions (the work SQLite did, exact: it stays the "
        "same however many rows the tables hold, tests/test_login_budget.py), Redis commands (round "
        "trips), connections opened to the database "
        "and to Redis (a pool that keeps too few opens and closes them under load), all counted inside "
        "services of their own (bench/counting.py; same code and backend, up to 20 logins per row by as "
        "many phones: the counting hooks cost about half a millisecond of CPU per login, so the other "
        "columns come from services without them); CPU time (user + system) of the services' processes, "
        "and of the phones (their processes: Mobile SDK and the application's REST calls). Cores busy: "
        "CPU time over wall time, per side; the services are one process, so they cannot use more than "
        "one core.",
        "",
        "| backend | phones | statements (autocommit) | transactions (single statement) | pre-pings "
        "| DB round trips | SQLite VM instructions | Redis commands (round trips) "
        "| connections opened: DB / Redis | server CPU ms | phone CPU ms | cores busy: servers / phones "
        "| the limit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, row in rows:
        c = row["per_login"]
        busy = row["busy"]
        lines.append(
            f"| {name} | {row['phones']}{' paced' if row.get('pace_seconds') else ''} "
            f"| {c['statements']:.1f} ({c['autocommit_statements']:.1f}) "
            f"| {c['transactions']:.1f} ({c['autocommit_writes']:.1f}) | {c['pings']:.1f} "
            f"| {c['db_round_trips']:.1f} | {_vm_steps(c)} "
            f"| {c['redis_commands']:.1f} ({c['redis_round_trips']:.1f}) "
            f"| {c.get('db_connects', 0):.2f} / {c.get('redis_connects', 0):.2f} "
            f"| {c['server_cpu_ms']:.1f} | {c['phone_cpu_ms']:.1f} "
            f"| {busy['server_cores']:.2f} / {busy['phone_cores']:.2f} | {limit_of(row)} |"
        )
    lines += ["", capacity_section(rows, cpu, floor)]
    load = watch.note()
    if save_to is not None:
        save_to.write_text(
            json.dumps(
                {"source": machine_source(), "load": load, "rows": [[name, row] for name, row in rows]},
                indent=1,
            )
            + "\n"
        )
    if BASELINE.exists():
        lines += ["", before_and_after(json.loads(BASELINE.read_text()), rows)]
    if profile is not None:
        lines += ["", "## Profile of the services", "", markdown_profile(profile)]
    return LoginResults("\n".join(lines) + "\n", rows, profile, cpu)


def _vm_steps(per_login: dict[str, float]) -> str:
    """SQLite's VM instructions per login; a dash where the database is not SQLite (none counted)."""
    steps = per_login.get("sqlite_vm_steps", 0.0)
    return f"{steps:,.0f}" if steps else "-"


def _profile(backend: Backend, profile_dir: Path, quick: bool) -> ProfileSummary | None:
    """The services under pyinstrument while 10 phones log in (after their enrolment)."""
    phones, per_phone = (10, 3) if quick else (10, 8)
    out = profile_dir / "logins.json"
    with backend.database() as env, tempfile.TemporaryDirectory(prefix="nextauth-bench-") as folder:
        services = Services(Path(folder), env, profile_to=out)
        try:
            apps = [_phone(services, Path(folder) / f"phone-{i}", f"user-{i}") for i in range(phones)]
            services.profile_start()
            row = measure_logins(services, apps, per_phone)
            saved = services.profile_stop()
        finally:
            services.stop()
    if saved is None:
        return None
    summary = summarize(
        saved,
        title=f"QR logins, {backend.name}",
        workload=f"{phones} phones x {per_phone} logins, {row['logins']} logins, {row['errors']} errors, "
        f"{row['per_second']:.1f} logins/s under the profiler",
    )
    return summary


if __name__ == "__main__":
    sys.stdout.write(run(quick="--quick" in sys.argv).markdown)
