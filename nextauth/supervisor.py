"""Run one service (ns, sfs, mc or the IdP) as several worker processes on shared listening sockets.

The supervisor binds every listener once, starts the first worker and waits until it is ready (it migrates
the database and creates keys: the others then find them made), then starts the rest. A worker that dies is
started again after a pause that doubles while it keeps dying (0.5 s up to 30 s; back to 0.5 s once it has
run for a minute), with a log line each time. SIGTERM or SIGINT is passed on to every worker, each drains
(``authserver.services.runtime``); pages stay connected until every worker is idle, so a login finishing in
one worker still reaches a page connected to another. The supervisor exits when the last worker has.

Metrics: each worker writes its counters to files in a folder of the supervisor's (prometheus_client's
multiprocess mode), and whichever worker answers a scrape of the shared admin port sums them all.

The worker side is ``authserver.workers``; the supervisor runs nothing of the service itself.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import gevent
import gevent.event
from gevent import monkey
from gevent import os as gevent_os

from authserver.config import ComponentConfig, Listen
from authserver.logs import setup_logging
from authserver.workers import ENV, FINISH, IDLE, READY

log = logging.getLogger("nextauth.supervisor")

FIRST_PAUSE = 0.5
LONGEST_PAUSE = 30.0
STABLE_SECONDS = 60.0  # a worker that ran this long and then died is restarted after the first pause again
KILL_MARGIN = 10.0  # after the drain's grace: closing, then SIGKILL for what still runs


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    ready_fd: int = -1  # the worker writes READY, then IDLE while draining
    parent_fd: int = -1  # the worker reads it until EOF
    started: float = 0.0
    ready: bool = False
    idle: bool = False
    pause: float = FIRST_PAUSE
    exit_codes: list[int] = field(default_factory=list)


def bind(listen: Listen) -> socket.socket:
    """A listening socket for ``listen``, as gevent's servers would make it (SO_REUSEADDR, not REUSEPORT:
    another process on the port is an error, not a silent partner)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        listen.host or None, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def _close(fd: int) -> None:
    # gevent's patched os.close hands the close to its loop, which a supervisor busy waiting may not run
    # at once: the plain one closes now.
    monkey.get_original("os", "close")(fd)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class Supervisor:
    def __init__(
        self,
        label: str,
        argv: list[str],
        count: int,
        listens: Mapping[str, Listen],
        grace: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label
        self.argv = argv
        self.grace = grace
        self.environ = dict(os.environ if environ is None else environ)
        self.listens = dict(listens)
        self.sockets: dict[str, socket.socket] = {}
        self.workers = [_Worker(index) for index in range(count)]
        self.stopping = False
        self.first_ready = gevent.event.Event()  # or the first worker failed, or a stop came first
        self.first_failed: int | None = None
        self.stopped = gevent.event.Event()
        self.metrics_dir = ""

    # -- starting workers ----------------------------------------------------------------------------

    def _spawn(self, worker: _Worker) -> None:
        ready_r, ready_w = os.pipe()
        parent_r, parent_w = os.pipe()
        fds = {name: sock.fileno() for name, sock in self.sockets.items()}
        context = {
            "index": worker.index,
            "count": len(self.workers),
            "sockets": fds,
            "ready": ready_w,
            "parent": parent_r,
        }
        env = {**self.environ, ENV: json.dumps(context), "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "nextauth.cli", *self.argv],
                env=env,
                pass_fds=[*fds.values(), ready_w, parent_r],
            )
        finally:
            _close(ready_w)
            _close(parent_r)
        worker.ready_fd, worker.parent_fd = ready_r, parent_w
        worker.started = time.monotonic()
        worker.ready = worker.idle = False
        gevent_os.make_nonblocking(ready_r)

    def _listen_to(self, worker: _Worker) -> None:
        """Read what the worker says until it closes its end (it has exited, or is about to)."""
        while True:
            try:
                said = gevent_os.nb_read(worker.ready_fd, 64)
            except OSError:
                said = b""
            if not said:
                return
            if READY in said and not worker.ready:
                worker.ready = True
                assert worker.process is not None
                log.info("%s worker %d ready (pid %d)", self.label, worker.index, worker.process.pid)
                if worker.index == 0:
                    self.first_ready.set()
            if IDLE in said:
                worker.idle = True
                self._release_if_all_idle()

    def _run(self, worker: _Worker) -> None:
        """One worker's life: start it, wait for its end, start it again after a pause unless stopping."""
        while True:
            self._spawn(worker)
            assert worker.process is not None
            pid = worker.process.pid
            log.info("%s worker %d started (pid %d)", self.label, worker.index, pid)
            self._listen_to(worker)
            code = worker.process.wait()
            worker.exit_codes.append(code)
            self._forget(worker, pid)
            if self.stopping:
                log.info(
                    "%s worker %d (pid %d) exited with %s", self.label, worker.index, pid, describe_exit(code)
                )
                self._release_if_all_idle()
                return
            if worker.index == 0 and not self.first_ready.is_set():
                # The first start failed (its own log says why): starting it again would fail the same way.
                self.first_failed = code
                self.first_ready.set()
                return
            if time.monotonic() - worker.started >= STABLE_SECONDS:
                worker.pause = FIRST_PAUSE
            log.warning(
                "%s worker %d (pid %d) exited with %s; starting it again in %.1f s",
                self.label,
                worker.index,
                pid,
                describe_exit(code),
                worker.pause,
            )
            pause, worker.pause = worker.pause, min(worker.pause * 2, LONGEST_PAUSE)
            self.stopped.wait(pause)
            if self.stopping:
                return

    def _forget(self, worker: _Worker, pid: int) -> None:
        for fd in (worker.ready_fd, worker.parent_fd):
            if fd >= 0:
                try:
                    _close(fd)
                except OSError:
                    pass
        worker.ready_fd = worker.parent_fd = -1
        worker.ready = False
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)  # its gauges no longer count
        except OSError:
            pass

    # -- stopping ----------------------------------------------------------------------------------------

    def _running(self) -> list[_Worker]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    def _release_if_all_idle(self) -> None:
        """While draining: once no worker has anything of its own in flight, every worker may finish (the
        EOF on its parent pipe), closing the pages it kept open for logins finishing elsewhere."""
        if self.stopping and all(w.idle for w in self._running()):
            for worker in self.workers:
                if worker.parent_fd >= 0:
                    try:
                        os.write(worker.parent_fd, FINISH)
                    except OSError:  # it has exited meanwhile
                        pass

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stopped.set()
        self.first_ready.set()
        running = self._running()
        log.info(
            "%s: stopping %d workers (each drains for up to %.0f s)", self.label, len(running), self.grace
        )
        # No new connection from here on: once the workers close their copies too, the port refuses.
        for sock in self.sockets.values():
            sock.close()
        for worker in running:
            assert worker.process is not None
            try:
                worker.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        gevent.spawn_later(self.grace + KILL_MARGIN, self._kill_all)

    def _kill_all(self) -> None:
        for worker in self._running():
            assert worker.process is not None
            log.warning("%s worker %d did not stop in time: killed", self.label, worker.index)
            worker.process.kill()

    # -- the whole ----------------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            for name, listen in self.listens.items():
                self.sockets[name] = bind(listen)
        except OSError as exc:
            log.error(
                "cannot start: cannot listen on %s:%s: %s", listen.host, listen.port, exc.strerror or exc
            )
            for sock in self.sockets.values():
                sock.close()
            return 1
        self.metrics_dir = tempfile.mkdtemp(prefix=f"nextauth-{self.label}-metrics-")
        gevent.signal_handler(signal.SIGTERM, self.stop)
        gevent.signal_handler(signal.SIGINT, self.stop)
        log.info("%s: %d workers on shared listeners", self.label, len(self.workers))
        try:
            lives = [gevent.spawn(self._run, self.workers[0])]
            self.first_ready.wait()
            if self.first_failed is not None:
                log.error("%s: the first worker could not start; not starting the others", self.label)
                for sock in self.sockets.values():
                    sock.close()
                return self.first_failed or 1
            if self.stopping:
                gevent.joinall(lives)
                return 0
            lives += [gevent.spawn(self._run, worker) for worker in self.workers[1:]]
            gevent.joinall(lives)
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        # A worker told to stop before it had set up its signal handlers ends by SIGTERM itself: fine too.
        clean = all(not w.exit_codes or w.exit_codes[-1] in (0, -signal.SIGTERM) for w in self.workers)
        log.info("%s: all workers stopped", self.label)
        return 0 if clean else 1


def supervise_component(config: ComponentConfig) -> int:
    """``NEXTAUTH_<C>_WORKERS`` above one: this process supervises that many workers, each of which runs
    the component (``nextauth.services``) on the sockets bound here. The supervisor loads none of the
    services' code (each worker reports unknown settings itself)."""
    setup_logging(config.log_level, config.log_format)
    # gRPC takes no inherited socket: each mc worker binds its port with SO_REUSEPORT instead.
    listens = {endpoint: listen for endpoint, listen in config.listen.items() if endpoint != "grpc"}
    supervisor = Supervisor(
        config.component, [config.component], config.workers, listens, config.drain_seconds
    )
    return supervisor.run()
