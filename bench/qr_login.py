"""Full QR logins per second with N simulated phones, against the real services.

Each login is what happens in production: the application asks ns for a session's QR (REST), the phone
opens a sigmai channel to ns with its account key, starts the login, opens a channel to its SFS, checks
the PIN (OPRF evaluation, proof, attestation), signs the confirmation and finishes at ns, which verifies
everything and records the session. Phones run as threads of this process (the Mobile SDK in-process);
the services run as their own process (`nextauth all`), so the numbers include both sides on this
machine's two cores.
"""

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from mobilesdk.flows import App
from mobilesdk.store import ServiceEndpoint
from nextauth_core.qr import QRPayload

REPO = Path(__file__).resolve().parents[1]
PIN = "8642"
ENDPOINTS = {
    "ns": ("http", "websocket", "sigmai", "admin"),
    "sfs": ("sigmai", "admin"),
    "mc": ("http", "grpc", "sigmai", "admin"),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Services:
    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        self.ports = {c: {e: _free_port() for e in eps} for c, eps in ENDPOINTS.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTAUTH_")}
        env.update(extra_env, NEXTAUTH_DATA_DIR=str(data_dir), NEXTAUTH_LOG_LEVEL="WARNING")
        for component, endpoints in self.ports.items():
            for endpoint, port in endpoints.items():
                env[f"NEXTAUTH_{component.upper()}_{endpoint.upper()}_LISTEN"] = f"127.0.0.1:{port}"
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "authserver.cli", "all"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=(data_dir / "server.log").open("wb"),
        )
        deadline = time.monotonic() + 60
        while not (data_dir / "ns-root-api-key").exists() or not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"services did not start: {(data_dir / 'server.log').read_text()}")
            time.sleep(0.2)
        self.api_key = (data_dir / "ns-root-api-key").read_text().strip()

    def _ready(self) -> bool:
        try:
            for component in ENDPOINTS:
                url = f"http://127.0.0.1:{self.ports[component]['admin']}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status != 200:
                        return False
        except OSError:
            return False
        return True

    def call(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['ns']['http']}{path}",
            method=method,
            headers={"X-apikey": self.api_key, **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


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


def measure(services: Services, phones: int, logins_per_phone: int, workdir: Path) -> dict[str, float]:
    apps = [_phone(services, workdir / f"phone-{phones}-{i}", f"user-{phones}-{i}") for i in range(phones)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(app: App, account: str) -> None:
        for _ in range(logins_per_phone):
            nonce = secrets.token_urlsafe(24)
            started = time.perf_counter()
            try:
                view = services.call("GET", "/v1/servers/default/sessions/", {"X-nonce": nonce})
                app.login(QRPayload.decode(view["loginqrdata"]), pin=PIN, approve=True, account_id=account)
                done = services.call("GET", "/v1/servers/default/sessions/", {"X-nonce": nonce})
                assert done["loggedin"], done
            except Exception as exc:
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=app_account) for app_account in apps]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    latencies.sort()
    return {
        "phones": phones,
        "logins": len(latencies),
        "errors": len(errors),
        "per_second": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def run(*, quick: bool = False, backends: dict[str, dict[str, str]] | None = None, command: str = "") -> str:
    backends = backends or {"SQLite, in-process store": {}}
    rows = []
    for name, env in backends.items():
        with tempfile.TemporaryDirectory(prefix="nextauth-bench-") as folder:
            services = Services(Path(folder), env)
            try:
                for phones, per_phone in ((1, 10), (10, 5)) if quick else ((1, 40), (10, 10), (100, 2)):
                    rows.append((name, measure(services, phones, per_phone, Path(folder))))
            finally:
                services.stop()
    lines = [
        "| backend | phones | logins | errors | logins/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['phones']} | {row['logins']} | {row['errors']} | {row['per_second']:.1f} "
            f"| {row['p50_ms']:.0f} | {row['p99_ms']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(run(quick="--quick" in sys.argv))
