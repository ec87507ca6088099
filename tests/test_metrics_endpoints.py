"""The real /metrics, /livez and /readyz: a QR login through the IdP moves the login, REST and IdP
counters; a wrong PIN moves the wrong-PIN counter; the IdP's /readyz turns 503 when its ns stops.

Counters are compared before and after, so the other tests sharing the module's system do not matter."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.flows import PIN, enrol, new_nonce, start_login
from tests.fixtures.idp_browser import Browser
from tests.fixtures.system import REPO, RunningSystem, free_port, run_app, start_system, stop_system

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(system: RunningSystem, component: str) -> Samples:
    url = f"http://127.0.0.1:{system.port(component, 'admin')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("metrics-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    return home


def test_a_login_moves_the_login_rest_and_idp_counters(system: RunningSystem, phone: Path) -> None:
    before_ns, before_idp = scrape(system, "ns"), scrape(system, "idp")
    enrol(system, phone, "metrics-alice")
    browser = Browser(system)
    try:
        page = browser.get("/login")
        browser.approve_on_phone(page, phone)  # ends on "/", which the IdP does not serve
        assert browser.get("/whoami").status_code == 200
        assert browser.get("/.well-known/openid-configuration").status_code == 200
        refused = browser.post("/oidc/token", data={"grant_type": "client_credentials"})
        assert refused.status_code in (400, 401)
        browser.get("/auth/forward", headers={"X-Forwarded-Host": "app.test", "X-Forwarded-Uri": "/"})
        assert browser.get("/saml/sso/redirect").status_code == 400  # no SAMLRequest: refused
    finally:
        browser.close()
    after_ns, after_idp = scrape(system, "ns"), scrape(system, "idp")

    def moved(samples: tuple[Samples, Samples], name: str, **labels: str) -> float:
        return total(samples[1], name, **labels) - total(samples[0], name, **labels)

    ns, idp = (before_ns, after_ns), (before_idp, after_idp)
    assert moved(ns, "nextauth_logins_total", method="qr", outcome="succeeded") == 1
    assert moved(ns, "nextauth_login_duration_seconds_count", method="qr", outcome="succeeded") == 1
    assert moved(ns, "nextauth_enrolments_total", stage="started") == 1
    assert moved(ns, "nextauth_enrolments_total", stage="done") == 1
    enrolments = "/v1/servers/<sid>/users/<uid>/enrolments"
    rest = moved(ns, "nextauth_rest_requests_total", component="ns", route=enrolments, status="201")
    assert rest == 1, sorted(k for k in after_ns if k[0] == "nextauth_rest_requests_total")
    assert moved(ns, "nextauth_rest_request_seconds_count", component="ns") >= 3  # enrol, confirm, IdP's
    # No raw path ever becomes a label: the enrolment's id and the user's are not in any series.
    assert not any("metrics-alice" in str(labels) for _name, labels in after_ns)
    assert moved(idp, "nextauth_idp_oidc_requests_total", endpoint="discovery", outcome="ok") == 1
    assert moved(idp, "nextauth_idp_oidc_requests_total", endpoint="token", outcome="refused") == 1
    assert (
        moved(idp, "nextauth_idp_token_grants_total", grant_type="client_credentials", outcome="refused") == 1
    )
    assert moved(idp, "nextauth_idp_forward_auth_total") == 1
    assert moved(idp, "nextauth_idp_saml_requests_total", profile="sso", outcome="refused") == 1
    assert moved(idp, "nextauth_rest_requests_total", component="idp", route="/login/complete") == 1


def test_a_wrong_pin_moves_the_wrong_pin_counter(system: RunningSystem, phone: Path) -> None:
    _, accounts = run_app(phone, "accounts")
    if not any(a["user_id"] == "metrics-bob" for a in accounts["accounts"]):
        enrol(system, phone, "metrics-bob")
        _, accounts = run_app(phone, "accounts")
    account = next(a["id"] for a in accounts["accounts"] if a["user_id"] == "metrics-bob")
    before_sfs, before_ns = scrape(system, "sfs"), scrape(system, "ns")
    view = start_login(system, new_nonce())
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", "0000", f"--account={account}")
    assert code == 1 and answer["code"] == "wrong_pin", answer
    after_sfs, after_ns = scrape(system, "sfs"), scrape(system, "ns")
    assert (
        value(after_sfs, "nextauth_sfs_wrong_pins_total")
        == value(before_sfs, "nextauth_sfs_wrong_pins_total") + 1
    )
    assert value(after_sfs, "nextauth_sfs_lockouts_total") == value(before_sfs, "nextauth_sfs_lockouts_total")
    wrong = {"method": "qr", "outcome": "wrong_pin"}
    assert (
        value(after_ns, "nextauth_logins_total", **wrong)
        == value(before_ns, "nextauth_logins_total", **wrong) + 1
    )
    # The right PIN resets the count: the next login succeeds.
    view = start_login(system, new_nonce())
    assert run_app(phone, "scan", view["loginqrdata"], "--pin", PIN, f"--account={account}")[0] == 0


def test_the_idp_admin_port_is_not_the_public_one(system: RunningSystem) -> None:
    status, live = system.get("idp", "admin", "/livez")
    assert (status, live) == (200, {"status": "ok", "component": "idp"})
    status, ready = system.get("idp", "admin", "/readyz")
    assert status == 200 and ready["checks"] == {"database": True, "ns": True}, ready
    for path in ("/metrics", "/livez", "/readyz"):
        assert system.get("idp", "http", path)[0] == 404  # the public port serves none of them
    assert "idp  admin" in system.log()  # nextauth all prints where it is


def test_what_starting_made_is_left_out_of_garbage_collections(system: RunningSystem) -> None:
    # nextauth all: ns, sfs, mc and the IdP in one process, frozen once, before it said it was ready.
    frozen = value(scrape(system, "ns"), "nextauth_gc_frozen_objects")
    assert frozen > 50_000, frozen


# -- /readyz with ns stopped: a standalone IdP beside a standalone ns -------------------------------------

ROOT_KEY = "metrics-readiness-root-key-0123456789"


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def lone_ns(tmp_path: Path) -> Iterator[RunningSystem]:
    running = start_system(tmp_path / "ns", command=("ns",), extra_env={"NEXTAUTH_NS_ROOT_API_KEY": ROOT_KEY})
    yield running
    stop_system(running)


def _wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the IdP did not start:\n{log.read_text()}")


def test_idp_readiness_follows_ns(lone_ns: RunningSystem, tmp_path: Path) -> None:
    admin = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEXTAUTH_")}
    env |= {
        "NEXTAUTH_DATA_DIR": str(tmp_path / "idp"),
        "NEXTAUTH_IDP_LISTEN": f"127.0.0.1:{free_port()}",
        "NEXTAUTH_IDP_ADMIN_PORT": str(admin),
        "NEXTAUTH_IDP_SECRET_KEY": "s" * 40,
        "NEXTAUTH_IDP_NS_API_URL": f"http://127.0.0.1:{lone_ns.port('ns', 'http')}",
        "NEXTAUTH_IDP_NS_API_KEY": ROOT_KEY,
        "NEXTAUTH_IDP_NS_WEBSOCKET_URL": f"ws://127.0.0.1:{lone_ns.port('ns', 'websocket')}/ns/websocket",
        "NEXTAUTH_IDP_NS_CHECK_SECONDS": "0",
    }
    (tmp_path / "idp").mkdir()
    log = tmp_path / "idp.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nextauth.cli", "idp"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{admin}"
        _wait_for(base + "/livez", process, log)
        status, body = _get(base + "/readyz")
        assert status == 200, body
        stop_system(lone_ns)
        status, body = _get(base + "/readyz")
        assert status == 503
        answer = json.loads(body)
        assert answer["checks"] == {"database": True, "ns": False}
        assert answer["reasons"] == {"ns": "ns: unreachable"}
        assert _get(base + "/livez")[0] == 200  # up, only not ready
        metrics = _get(base + "/metrics")[1].decode()
        frozen = [line for line in metrics.splitlines() if line.startswith("nextauth_gc_frozen_objects ")]
        assert frozen and float(frozen[0].split()[1]) > 50_000, frozen  # the IdP on its own froze its own
        assert f"idp admin (livez, readyz, metrics) on http://127.0.0.1:{admin}/" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=10)
