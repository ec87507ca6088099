"""What every benchmark shares: where results go, the machine and versions a figure names, free ports,
child processes with their logs, the PostgreSQL + Redis servers when they are reachable, and what else
was loading the machine."""

import contextlib
import functools
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from nextauth_core.digits import only_digits

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "benchmarks"
PYTHON = sys.executable

POSTGRES_ENV = "NEXTAUTH_BENCH_POSTGRES_URI"
REDIS_ENV = "NEXTAUTH_BENCH_REDIS_URI"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"  # a server; each run gets a fresh database
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"
SQLITE = "SQLite, in-process store"
POSTGRES_REDIS = "PostgreSQL + Redis"


# Below the kernel's ephemeral range (32768 and up by default) and below the tests' share (20000 and up,
# tests/fixtures/system.py): a port the kernel hands out itself can be taken by an outgoing connection
# (the load generator's, a Redis client's) between the pick and the server's bind, as one run showed.
_PORTS = range(12000, 20000)
_handed_out: set[int] = set()


def pick_port(ports: Sequence[int], handed_out: set[int]) -> int:
    """A loopback port of ``ports`` nothing listens on and not in ``handed_out``, which remembers it."""
    while True:
        port = random.choice(ports)
        if port in handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        handed_out.add(port)
        return port


def free_port() -> int:
    """A loopback port for a service of this run (see ``_PORTS``)."""
    return pick_port(_PORTS, _handed_out)


def wait_http(url: str, *, timeout: float = 30.0, alive: Callable[[], bool] = lambda: True) -> None:
    """Until ``url`` answers at all (any status), or raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URLs we built
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.1)


class Child:
    """A server process of the benchmark, its output in a log file; stopped by its own pid only."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        try:
            wait_http(url, timeout=timeout, alive=self.alive)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from exc

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- PostgreSQL + Redis ------------------------------------------------------------------------------


@dataclass
class Backend:
    """A database and store configuration the services run on; ``env`` holds their NEXTAUTH_* settings,
    ``database()`` yields a fresh one for one start of the services."""

    name: str
    note: str = ""
    postgres: str | None = None  # a server URI (fresh database per start) or, from the env, a database URI
    fresh_databases: bool = False
    redis: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def database(self) -> Iterator[dict[str, str]]:
        if self.postgres is None:
            yield dict(self.env)
            return
        if not self.fresh_databases:
            yield {**self.env, "NEXTAUTH_DB_URI": self.postgres, "NEXTAUTH_KV_URI": self.redis or ""}
            return
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        url = make_url(self.postgres)
        name = f"nextauth_bench_{uuid.uuid4().hex[:10]}"
        with _pg_admin(url) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            uri = url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
            yield {**self.env, "NEXTAUTH_DB_URI": uri, "NEXTAUTH_KV_URI": self.redis or ""}
        finally:
            with _pg_admin(url) as admin, contextlib.suppress(psycopg.Error):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _pg_admin(url: object) -> "contextlib.AbstractContextManager":
    import psycopg

    return psycopg.connect(
        host=url.host or "127.0.0.1",  # type: ignore[attr-defined]
        port=url.port or 5432,  # type: ignore[attr-defined]
        user=url.username or "postgres",  # type: ignore[attr-defined]
        password=url.password or None,  # type: ignore[attr-defined]
        dbname=url.database or "postgres",  # type: ignore[attr-defined]
        connect_timeout=3,
        autocommit=True,
    )


def _why_unreachable(postgres: str, redis_uri: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        with _pg_admin(make_url(postgres)) as admin:
            admin.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {_mask(postgres)} unreachable ({type(exc).__name__})"
    try:
        import redis

        client = redis.Redis.from_url(redis_uri, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"Redis at {_mask(redis_uri)} unreachable ({type(exc).__name__})"
    return None


def _mask(uri: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)


@functools.cache
def backends() -> tuple[list[Backend], list[str]]:
    """SQLite always; PostgreSQL + Redis when reachable (from NEXTAUTH_BENCH_* or the local defaults).
    Returns the backends and notes on what was left out."""
    found = [Backend(SQLITE)]
    notes: list[str] = []
    env_pg, env_redis = os.environ.get(POSTGRES_ENV), os.environ.get(REDIS_ENV)
    postgres, redis_uri = env_pg or POSTGRES_DEFAULT, env_redis or REDIS_DEFAULT
    why = _why_unreachable(postgres, redis_uri)
    if why is None:
        found.append(
            Backend(
                POSTGRES_REDIS,
                note=f"PostgreSQL {_mask(postgres)}"
                + (" (as given)" if env_pg else " (a fresh database per start, dropped after)")
                + f", Redis {_mask(redis_uri)}",
                postgres=postgres,
                fresh_databases=not env_pg,
                redis=redis_uri,
            )
        )
    else:
        notes.append(
            f"PostgreSQL + Redis not measured: {why}. Start them or set {POSTGRES_ENV} and {REDIS_ENV}."
        )
    return found, notes


# -- what a figure names -----------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _command_version(argv: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str | None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else None


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def traefik_binary() -> str | None:
    beside = Path(PYTHON).parent / "traefik"
    return str(beside) if beside.exists() else shutil.which("traefik")


def source_state() -> str | None:
    """The commit measured, and which top-level folders had uncommitted changes (they were measured too)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not head:
        return os.environ.get("NEXTAUTH_BENCH_SOURCE")
    changed = sorted({line[3:].split("/", 1)[0] for line in status.splitlines() if len(line) > 3})
    changed = [name for name in changed if name not in ("docs",)]
    return f"git {head}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else "")


@functools.cache
def tool_versions() -> dict[str, str]:
    """Versions of what runs in a benchmark; missing tools are left out."""
    import platform

    found: dict[str, str | None] = {
        "platform": platform.platform(),
        "CPU": f"{_cpu_model()} ({os.cpu_count()} logical CPUs)",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "nextauth": _package("nextauth"),
        "source": source_state(),
        "gevent": _package("gevent"),
        "Flask": _package("flask"),
        "SQLAlchemy": _package("sqlalchemy"),
        "cryptography": _package("cryptography"),
        "wrk": _command_version(["wrk", "-v"]),
        "Traefik": _command_version([traefik_binary() or "traefik", "version"]),
        "Node": _command_version(["node", "--version"]),
    }
    return {name: value for name, value in found.items() if value}


def server_versions(backend: Backend) -> dict[str, str]:
    if backend.postgres is None:
        import sqlite3

        return {"SQLite": sqlite3.sqlite_version}
    versions: dict[str, str] = {}
    with contextlib.suppress(Exception):
        from sqlalchemy.engine import make_url

        with _pg_admin(make_url(backend.postgres)) as admin:
            row = admin.execute("SHOW server_version").fetchone()
            versions["PostgreSQL"] = str(row[0]).split()[0] if row else "?"
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(backend.redis or "", socket_connect_timeout=3)
        versions["Redis"] = str(client.info("server").get("redis_version"))
        client.close()
    return versions


def versions_line(names: list[str], extra: dict[str, str] | None = None) -> str:
    found = {**tool_versions(), **(extra or {})}
    return ", ".join(f"{name} {found[name]}" for name in names if name in found)


def machine_table(command: str, extra: dict[str, str] | None = None) -> str:
    rows = {**tool_versions(), **(extra or {}), "command": f"`{command}`"}
    lines = ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows.items()]
    return "\n".join(lines) + "\n"


# -- what else loaded the machine ---------------------------------------------------------------------


def _busy_others() -> list[str]:
    """Other heavy programs running now (test runners, builds), by name; not ours."""
    ours = {os.getpid()}
    found: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not only_digits(entry.name) or int(entry.name) in ours:
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            text = b" ".join(argv).decode(errors="replace")
            for marker in ("pytest", "playwright", "chromium", "ruff", "pip install", "npm "):
                if marker in text and "bench" not in text:
                    found.add(marker.strip())
    return sorted(found)


PROBE_ITERATIONS = 2_000_000


def speed_probe_ms() -> float:
    """CPU time of a fixed pure-Python loop (the best of three), in ms: how fast this machine runs Python
    at the moment. A shared or throttled host can be much slower at one time than at another; runs on
    the same machine compare by it."""
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        total = 0
        for number in range(PROBE_ITERATIONS):
            total += number
        best = min(best, time.process_time() - began)
    return 1000 * best


@dataclass
class LoadWatch:
    """Load average, other busy programs and the machine's speed (``speed_probe_ms``) seen at the start
    and end of a benchmark."""

    started: tuple[float, float, float] = field(default_factory=os.getloadavg)
    others: set[str] = field(default_factory=lambda: set(_busy_others()))
    probe_started: float = field(default_factory=speed_probe_ms)

    def note(self) -> str:
        ended = os.getloadavg()
        self.others.update(_busy_others())
        text = (
            f"load average (1 min) {self.started[0]:.2f} at the start, {ended[0]:.2f} at the end "
            f"on {os.cpu_count()} CPUs; a fixed Python loop ({PROBE_ITERATIONS:,} additions) took "
            f"{self.probe_started:.0f} ms of CPU at the start and {speed_probe_ms():.0f} ms at the end "
            "(the machine's speed at the time: lower is faster; compare runs by it)"
        )
        if self.others:
            text += (
                f"; other programs running meanwhile: {', '.join(sorted(self.others))} (figures are noisier)"
            )
        return text


# -- CPU time ----------------------------------------------------------------------------------------


def _processes() -> Iterator[tuple[int, str, list[str]]]:
    """Every process /proc shows: its pid, command name and the stat fields after the name (none where
    /proc is not there; a process that ends while it is read is left out)."""
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not only_digits(entry.name):
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
                yield int(entry.name), name, fields


def _cpu_seconds(fields: list[str]) -> float:
    # The fields after the command name (which may itself hold spaces or parentheses): fields[1] is the
    # parent's pid, fields[11:15] utime, stime, cutime and cstime (stat(5), fields 4 and 14 to 17).
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and every live process under it (worker processes), from
    /proc; 0.0 where /proc is not there. Exited children count once their parent waited for them."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for found, _name, fields in _processes():
        parents[found] = int(fields[1])
        times[found] = _cpu_seconds(fields)
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += times.get(current, 0.0)
        pending += [child for child, parent in parents.items() if parent == current]
    return total


def named_processes_cpu(names: tuple[str, ...]) -> float:
    """User + system CPU seconds of every process whose command name is one of ``names`` (a database
    server's processes: its postmaster and backends), with what their exited children used; 0.0 where
    /proc is not there. Read before and after a workload, the difference is what the server spent on it
    (and on anything else it served meanwhile)."""
    return sum(_cpu_seconds(fields) for _pid, name, fields in _processes() if name in names)
