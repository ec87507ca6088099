"""Production shape on real backends: standalone sfs and two ns instances sharing PostgreSQL and Redis.
A login started through one ns and completed through the other reaches the page connected to the first;
parallel PIN guesses against the sfs on PostgreSQL are each counted."""

import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from authserver.storage.db import create_engine_for
from mobilesdk.channel import RemoteError
from mobilesdk.flows import App
from nextauth_core.qr import QRPayload
from tests.fixtures.cluster import start_sfs_cluster
from tests.fixtures.flows import BrowserPage
from tests.fixtures.system import RestClient, RunningSystem, run_app, start_system, stop_system

PIN = "1357"
ROOT_KEY = "root-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, object]]:
    base = tmp_path_factory.mktemp("cluster")
    postgres_uri = request.getfixturevalue("postgres_uri_module")
    shared = start_sfs_cluster(base, postgres_uri, ROOT_KEY, label="cluster")
    ns_b = start_system(base / "ns-b", command=("ns",), extra_env=shared.ns_env)
    # ns A hands out QR codes that send phones to ns B: the login completes on the other instance.
    ns_a = start_system(
        base / "ns-a",
        command=("ns",),
        extra_env={**shared.ns_env, "NEXTAUTH_NS_DEFAULT_SIGMAI_URI": ns_b.sigmai_uri("ns")},
    )
    systems = {
        "sfs": shared.sfs,
        "ns_a": ns_a,
        "ns_b": ns_b,
        "sfs_key": shared.sfs_key,
        "base": base,
        "db": postgres_uri,
    }
    yield systems
    for system in (ns_a, ns_b, shared.sfs):
        stop_system(system)


def _phone(cluster: dict, home: Path) -> None:
    sfs: RunningSystem = cluster["sfs"]
    key_hash = hashlib.sha256(cluster["sfs_key"].public_key().public_bytes_raw()).hexdigest()
    code, answer = run_app(home, "init", "--sfs", sfs.sigmai_uri("sfs"), "--sfs-key-hash", key_hash)
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0, answer


def test_login_completed_on_the_other_ns_reaches_the_page(cluster: dict, tmp_path: Path) -> None:
    ns_a: RunningSystem = cluster["ns_a"]
    api_a = RestClient(f"http://127.0.0.1:{ns_a.port('ns', 'http')}", ROOT_KEY)
    home = tmp_path / "phone"
    _phone(cluster, home)
    status, created = api_a.call("POST", "/v1/servers/default/users/zoe/enrolments")
    assert status == 201, created
    code, scanned = run_app(home, "scan", created["qrdata"], "--pin", PIN)
    assert code == 0, scanned
    status, done = api_a.call(
        "POST",
        f"/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        {"code": scanned["confirmation_code"]},
    )
    assert status == 200, done

    nonce = secrets.token_urlsafe(24)
    status, view = api_a.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert QRPayload.decode(view["loginqrdata"]).sigmai_uri == cluster["ns_b"].sigmai_uri("ns")
    page = BrowserPage(ns_a, view["hsid"], "default")  # the page is connected to ns A
    try:
        code, answer = run_app(home, "scan", view["loginqrdata"], "--pin", PIN)  # the phone talks to ns B
        assert code == 0, answer
        page.wait_for("LOGIN")
    finally:
        page.close()
    status, session = api_a.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["userid"] == "zoe"


def test_parallel_pin_guesses_are_each_counted(cluster: dict, tmp_path: Path) -> None:
    home = tmp_path / "phone"
    _phone(cluster, home)
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess() -> None:
        app = App(home)
        identity = app.accounts.new_account_key()[0]
        try:
            app.attest(
                pin="0000", audience="default", ns_challenge=b"c" * 32, purpose="login", account=identity
            )
            result = "accepted"
        except RemoteError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "accepted" not in outcomes
    assert sorted(set(outcomes)) <= ["locked", "wrong_pin"] and len(outcomes) == 12
    # Exactly five evaluations were answered and counted, whatever the interleaving; the rest met the lock.
    engine = create_engine_for(cluster["db"])
    try:
        with engine.connect() as connection:
            failures, locked = connection.execute(
                text("SELECT failures, locked FROM sfs_app_instances WHERE device_thumbprint = :t"),
                {"t": App(home).store.device().peer_key.thumbprint()},
            ).one()
    finally:
        engine.dispose()
    assert (failures, bool(locked)) == (5, True)
    with pytest.raises(RemoteError) as refused:
        App(home).attest(
            pin=PIN,
            audience="default",
            ns_challenge=b"c" * 32,
            purpose="login",
            account=App(home).accounts.new_account_key()[0],
        )
    assert refused.value.code == "locked"
