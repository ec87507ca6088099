"""Run a server module the way a benchmark needs it, without touching the server's code:

    python -m bench.wrapper [--exit-on-sigterm] [--nodelay] [--profile OUT.json] [--count OUT.json]
                            MODULE [ARGS...]

``--profile``: pyinstrument is ready but idle; SIGUSR1 starts it, SIGUSR2 stops it and saves the session
to OUT.json (then OUT.json.done appears). The benchmark sends them around its workload, so start-up
(imports, migrations) and set-up (enrolments, logins) stay out of the profile. The profiler samples the
one OS thread in which every greenlet runs (wall-clock time, 1 ms interval): each greenlet shows up as a
thread of its own, and time spent waiting on the network shows up in gevent's hub loop, which
``bench.profiles`` counts as idle.

``--nodelay``: every ``gevent.pywsgi.WSGIServer`` sets TCP_NODELAY on the sockets it accepts (what the
servers do not do themselves; ``bench.bare_app`` explains the cost). Figures taken with it are labelled
as such: they show what the change would give, not what ships.

``--count``: ``bench.counting`` counts SQL statements, transactions, pre-pings and Redis commands in
this process; SIGUSR1 sets the counts to zero, SIGUSR2 writes them to OUT.json (each time, with a
growing ``dump`` number). With ``--profile`` too, the same signals start and stop both.

``--exit-on-sigterm`` is for modules that do not handle SIGTERM themselves (``bench.bare_app``).
"""

# pyinstrument before the patching: its sampler state must stay per OS thread (a real threading.local), not
# per greenlet, so that the signal handlers' greenlets can start and stop the same profiler.
try:
    from pyinstrument import Profiler
except ImportError:  # only --profile needs it
    Profiler = None  # type: ignore[assignment,misc]

from gevent import monkey  # isort: skip

monkey.patch_all()

import runpy  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
from gevent import pywsgi  # noqa: E402


def _nodelay() -> None:
    handle = pywsgi.WSGIServer.handle

    def handle_nodelay(self: pywsgi.WSGIServer, sock: socket.socket, address: tuple) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handle(self, sock, address)

    pywsgi.WSGIServer.handle = handle_nodelay  # type: ignore[method-assign]


def main() -> None:
    args = sys.argv[1:]
    out: str | None = None
    count_to: str | None = None
    main_greenlet = greenlet.getcurrent()
    while args and args[0].startswith("--"):
        flag, args = args[0], args[1:]
        if flag == "--exit-on-sigterm":
            gevent.signal_handler(signal.SIGTERM, lambda: main_greenlet.throw(SystemExit(0)))
        elif flag == "--nodelay":
            _nodelay()
        elif flag == "--profile":
            out, args = args[0], args[1:]
        elif flag == "--count":
            count_to, args = args[0], args[1:]
        else:
            raise SystemExit(f"bench.wrapper: unknown option {flag}")
    module, *args = args
    if out is not None and Profiler is None:
        raise SystemExit("bench.wrapper: --profile needs pyinstrument")
    profiler = Profiler(interval=0.001, async_mode="disabled") if out is not None else None

    counters = None
    if count_to is not None:
        from bench import counting

        counters = counting.install()

    def start() -> None:
        if counters is not None:
            counters.reset()
        if profiler is not None and not profiler.is_running:
            profiler.start()

    def stop() -> None:
        if counters is not None and count_to is not None:
            counters.dump(count_to)
        if out is not None and profiler is not None and profiler.is_running:
            profiler.stop().save(out)
            Path(out + ".done").write_text("ok\n")

    if out is not None or count_to is not None:
        gevent.signal_handler(signal.SIGUSR1, start)
        gevent.signal_handler(signal.SIGUSR2, stop)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
