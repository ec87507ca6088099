"""The phones of the login benchmark, spread over several processes so that the load generator is not
the limit on its own: each process runs its share of the phones as threads (the Mobile SDK in-process)
and logs them in back to back, or paced at a given rate.

The parent (``bench.qr_login``) enrols the phones, then starts one ``python -m bench.phones`` per
process with a JSON plan on standard input. Each child loads its phones, prints ``ready``, waits for
``go`` (so that every process starts at once and set-up stays out of the timing), runs, and prints one
JSON line: latencies, errors and the CPU time the process used while it ran.
"""

import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilesdk.flows import App
from nextauth_core.qr import QRPayload

REPO = Path(__file__).resolve().parents[1]


class RestError(Exception):
    """ns answered a REST call with an error status."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


class NsRest:
    """The application's side of a login: ns's REST API with an API key, over a connection kept open per
    thread, as an application's HTTP client pool keeps it (the IdP's own client to ns does: a kept-alive
    ``httpx.Client``). A connection the server closed meanwhile is opened again, once, for a GET."""

    def __init__(self, base_url: str, api_key: str) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or parsed.hostname is None:
            raise ValueError(f"not an http:// URL: {base_url}")
        self.base_url = base_url
        self.api_key = api_key
        self._address = (parsed.hostname, parsed.port or 80)
        self._local = threading.local()

    def call(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        sent = {"X-apikey": self.api_key, **(headers or {})}
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
            fresh = connection is None
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(*self._address, timeout=30)
            try:
                connection.request(method, path, headers=sent)
                response = connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                connection.close()
                self._local.connection = None
                if fresh or attempt == 2 or method not in ("GET", "HEAD"):
                    raise  # a POST may have been done: not sent twice
                continue  # the kept connection had been closed by the server: once more on a new one
            if response.will_close:
                connection.close()
                self._local.connection = None
            if response.status >= 400:
                raise RestError(response.status, body)
            return json.loads(body)
        raise AssertionError("unreachable")


@dataclass
class Outcome:
    latencies: list[float]
    errors: list[str]
    cpu_seconds: float
    wall_seconds: float


def run_logins(
    rest: NsRest, apps: list[tuple[App, str]], logins_per_phone: int, pin: str, pace_seconds: float = 0.0
) -> Outcome:
    """Every phone logs in ``logins_per_phone`` times: back to back, or one login every ``pace_seconds``
    (phones staggered over the interval), which keeps the offered rate fixed whatever the latency."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    started_at = time.perf_counter()

    def run(index: int, app: App, account: str) -> None:
        offset = pace_seconds * index / max(len(apps), 1)
        for number in range(logins_per_phone):
            if pace_seconds:
                delay = started_at + offset + number * pace_seconds - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            nonce = secrets.token_urlsafe(24)
            started = time.perf_counter()
            try:
                view = rest.call("GET", "/v1/servers/default/sessions/", {"X-nonce": nonce})
                app.login(QRPayload.decode(view["loginqrdata"]), pin=pin, approve=True, account_id=account)
                done = rest.call("GET", "/v1/servers/default/sessions/", {"X-nonce": nonce})
                if not done.get("loggedin"):
                    raise RuntimeError("not logged in after the phone approved")
            except Exception as exc:
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(i, *pair)) for i, pair in enumerate(apps)]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Outcome(latencies, errors, time.process_time() - cpu, time.perf_counter() - started_at)


class PhoneProcesses:
    """Phones (enrolled already, by their home folders) split over ``count`` child processes."""

    def __init__(
        self,
        rest: NsRest,
        phones: list[tuple[Path, str]],
        count: int,
        *,
        logins_per_phone: int,
        pin: str,
        pace_seconds: float = 0.0,
    ) -> None:
        groups = [phones[i::count] for i in range(count)]
        self.children: list[subprocess.Popen[str]] = []
        for group in (g for g in groups if g):
            plan = {
                "base_url": rest.base_url,
                "api_key": rest.api_key,
                "phones": [[str(home), account] for home, account in group],
                "logins_per_phone": logins_per_phone,
                "pin": pin,
                "pace_seconds": pace_seconds,
            }
            child = subprocess.Popen(
                [sys.executable, "-m", "bench.phones"],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(plan) + "\n")
            child.stdin.flush()
            self.children.append(child)
        for child in self.children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                self.kill()
                raise RuntimeError("a phone process did not start")

    def run(self) -> Outcome:
        """All processes start together; the wall time is from ``go`` to the last one's answer."""
        started = time.perf_counter()
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = []
        for child in self.children:
            assert child.stdout is not None
            line = child.stdout.readline()
            child.wait(timeout=30)
            if not line:
                raise RuntimeError("a phone process ended without an answer")
            answers.append(json.loads(line))
        wall = time.perf_counter() - started
        return Outcome(
            latencies=[value for answer in answers for value in answer["latencies"]],
            errors=[value for answer in answers for value in answer["errors"]],
            cpu_seconds=sum(answer["cpu_seconds"] for answer in answers),
            wall_seconds=wall,
        )

    def kill(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _child() -> None:
    plan = json.loads(sys.stdin.readline())
    rest = NsRest(plan["base_url"], plan["api_key"])
    apps = [(App(Path(home), timeout=60), account) for home, account in plan["phones"]]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    outcome = run_logins(rest, apps, plan["logins_per_phone"], plan["pin"], plan["pace_seconds"])
    answer = {"latencies": outcome.latencies, "errors": outcome.errors, "cpu_seconds": outcome.cpu_seconds}
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _child()
