"""Several worker processes per service: how many (``NEXTAUTH_<C>_WORKERS``, ``NEXTAUTH_IDP_WORKERS``), and,
inside a worker, what its supervisor (``nextauth.supervisor``) handed it.

The supervisor binds the listening sockets once and passes them to every worker it starts (pre-fork
style, but each worker is a fresh interpreter, so no gevent hub, gRPC core or database connection is ever
copied by a fork). The kernel then gives each new connection to whichever worker accepts first, and a
worker that dies loses only its own connections: the queue of those not yet accepted stays with the
others. Beside the sockets a worker gets two pipes: one on which it tells the supervisor that it is ready
(``r``) and, while draining, that nothing of its own is in flight any more (``i``); and one it only reads:
its end (EOF) means that the supervisor is gone, and ``f`` during a drain that every worker is idle, so
pages connected here may close: a login finishing on another worker has been delivered by then.
"""

import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nextauth_core.digits import only_digits

ENV = "_NEXTAUTH_WORKER"  # set by the supervisor only; not a setting (hence no NEXTAUTH_ prefix)
MAX_WORKERS = 256
READY = b"r"
IDLE = b"i"
FINISH = b"f"  # supervisor to worker, while draining: every worker is idle


class WorkersError(ValueError):
    """The workers setting cannot be honoured; the message names the variable and what to do."""


def available_cores() -> int:
    """The CPUs this process may run on: its affinity mask, lowered to a cgroup v2 CPU quota (a container
    started with ``--cpus 2`` on a 32-core host gets 2, not 32)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        pass
    return max(1, count)


def sharing_problem(kv_uri: str | None, db_uri: str, *, kv_variable: str) -> str | None:
    """Why several processes could not share this deployment's state, or None if they can."""
    if not kv_uri or kv_uri.startswith("memory://"):
        return (
            f"needs Redis ({kv_variable}): the in-process store (logins in progress, rate limits, "
            "single-use codes) cannot be shared by several processes"
        )
    if db_uri.lower().startswith("sqlite"):
        return "needs PostgreSQL or MariaDB: SQLite is not shared safely by several processes"
    return None


def workers_setting(
    variable: str, value: str | None, *, kv_uri: str | None, db_uri: str, kv_variable: str
) -> int:
    """``auto`` (the default): as many workers as cores when the state can be shared (Redis and a database
    server), else one. A number: that many, refused above one when the state cannot be shared."""
    text = (value or "auto").strip().lower()
    problem = sharing_problem(kv_uri, db_uri, kv_variable=kv_variable)
    if text == "auto":
        return 1 if problem else available_cores()
    if not only_digits(text) or not 1 <= int(text) <= MAX_WORKERS:
        raise WorkersError(
            f"{variable}: expected auto or a whole number from 1 to {MAX_WORKERS}, got {value!r}"
        )
    count = int(text)
    if count > 1 and problem:
        raise WorkersError(f"{variable}={count} {problem}; set {variable}=1")
    return count


# -- inside a worker -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerContext:
    index: int
    count: int
    sockets: Mapping[str, int]  # endpoint name -> inherited listening socket's descriptor
    ready_fd: int
    parent_fd: int


_context: WorkerContext | None = None
_loaded = False


def current(environ: Mapping[str, str] | None = None) -> WorkerContext | None:
    """This process's place among its supervisor's workers; None when it runs on its own."""
    global _context, _loaded
    if not _loaded:
        raw = (os.environ if environ is None else environ).get(ENV)
        if raw:
            data = json.loads(raw)
            _context = WorkerContext(
                index=int(data["index"]),
                count=int(data["count"]),
                sockets={str(k): int(v) for k, v in data["sockets"].items()},
                ready_fd=int(data["ready"]),
                parent_fd=int(data["parent"]),
            )
        _loaded = True
    return _context


def is_leader() -> bool:
    """Background jobs (purges, the IdP's housekeeping and ns watch) run in one worker, not in every one."""
    context = current()
    return context is None or context.index == 0


def log_tag() -> str:
    context = current()
    return f"[worker {context.index}]" if context is not None else ""


def listener(endpoint: str, host: str, port: int) -> socket.socket | tuple[str, int]:
    """What a gevent server should listen on: the supervisor's socket for ``endpoint``, or the address."""
    context = current()
    if context is not None and endpoint in context.sockets:
        return socket.socket(fileno=context.sockets[endpoint])
    return (host, port)


def _tell(message: bytes) -> None:
    context = current()
    if context is None:
        return
    try:
        os.write(context.ready_fd, message)
    except OSError:  # the supervisor is gone; the parent pipe tells the rest
        pass


def announce_ready() -> None:
    _tell(READY)


class ParentWatch:
    """The parent pipe's end, seen from a gevent worker: ``gone`` is set at EOF."""

    def __init__(self) -> None:
        import gevent
        import gevent.event

        self.gone = gevent.event.Event()
        context = current()
        if context is not None:
            gevent.spawn(self._watch, context.parent_fd)

    def _watch(self, fd: int) -> None:
        from gevent import os as gevent_os

        gevent_os.make_nonblocking(fd)
        try:  # FINISH or EOF: either way there is no one left to wait for
            gevent_os.nb_read(fd, 64)
        except OSError:
            pass
        self.gone.set()

    def wait_for_siblings(self, timeout: float) -> bool:
        """Draining: tell the supervisor nothing of ours is in flight, and wait (up to ``timeout``) until
        every worker says so, so that a page connected here still hears a login another worker finishes."""
        if current() is None:
            return True
        _tell(IDLE)
        return bool(self.gone.wait(max(timeout, 0.0)))


_watch: ParentWatch | None = None


def parent_watch() -> ParentWatch:
    """One watch per process (the pipe has one reader)."""
    global _watch
    if _watch is None:
        _watch = ParentWatch()
    return _watch
