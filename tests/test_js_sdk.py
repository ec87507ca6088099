"""The JavaScript Mobile SDK (mobilesdk-js/) end to end against the real services: its CLI
(`bin/nextauth-js.mjs`) plays the phone where the Python tests run `nextauth-app`.

A second, independent implementation of the app side that passes the same flows shows the protocol
documents (docs/sigmai.md, docs/app-protocol.md) say enough to build a client from. Node and the SDK's
packages are required: a machine without them fails these tests rather than skipping them.
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.flows import PIN, BrowserPage, new_nonce, start_login
from tests.fixtures.system import REPO, RunningSystem, ns_api

SDK = REPO / "mobilesdk-js"
CLI = SDK / "bin" / "nextauth-js.mjs"
ATTACKS = SDK / "test" / "e2e" / "attacks.mjs"
OTHER_PIN = "1111"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: the JavaScript SDK cannot be tested (apt-get install nodejs npm)")
    if not (SDK / "node_modules" / "@noble" / "curves").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: cannot install the JavaScript SDK's packages")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=SDK, capture_output=True, timeout=600, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in mobilesdk-js: {done.stderr.decode(errors='replace')}")
    return found


def _run(node: str, script: Path, *args: str, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run(
        [node, str(script), *args], capture_output=True, cwd=SDK, timeout=timeout, check=False
    )
    try:
        return completed.returncode, json.loads(completed.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {completed.stdout!r} {completed.stderr!r}") from exc


def js(node: str, home: Path, command: str, **args: Any) -> tuple[int, dict[str, Any]]:
    return _run(node, CLI, "--home", str(home), command, json.dumps(args))


def new_js_phone(node: str, system: RunningSystem, home: Path, pin: str = PIN) -> Path:
    code, answer = js(node, home, "init", config=str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    assert answer["device_created"] is True and answer["device_key_type"] == "p256"
    code, answer = js(node, home, "register", pin=pin)
    assert code == 0, answer
    assert answer["registered"] is True and answer["mailbox"]
    return home


@pytest.fixture(scope="module")
def phone(node: str, system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_js_phone(node, system, tmp_path_factory.mktemp("js-phone"))


def enrol(node: str, system: RunningSystem, home: Path, user: str, pin: str = PIN) -> str:
    """Enrol through the REST API and the JS phone; returns the account id."""
    api = ns_api(system)
    status, created = api.call("POST", f"/v1/servers/default/users/{user}/enrolments")
    assert status == 201, created
    code, scanned = js(node, home, "scan", payload=created["qrdata"], pin=pin)
    assert code == 0, scanned
    assert scanned["action"] == "enrol" and scanned["userid"] == user
    status, done = api.call(
        "POST",
        f"/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        {"code": scanned["confirmation_code"]},
    )
    assert status == 200 and done["state"] == "completed", done
    return str(scanned["account"])


def qr_login(
    node: str, system: RunningSystem, home: Path, account: str, pin: str = PIN
) -> tuple[int, dict, str]:
    nonce = new_nonce()
    view = start_login(system, nonce)
    code, answer = js(node, home, "scan", payload=view["loginqrdata"], pin=pin, account=account)
    return code, answer, nonce


def session(system: RunningSystem, nonce: str) -> dict[str, Any]:
    status, view = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200, view
    return dict(view)


def test_register_enrol_and_log_in_with_qr(node: str, system: RunningSystem, phone: Path) -> None:
    account = enrol(node, system, phone, "js-alice")
    code, accounts = js(node, phone, "accounts")
    assert code == 0 and [a["user_id"] for a in accounts["accounts"]] == ["js-alice"]
    assert "key" not in accounts["accounts"][0]  # private keys are not listed
    nonce = new_nonce()
    view = start_login(system, nonce)
    qr = view["loginqrdata"]
    page = BrowserPage(system, view["hsid"], "default")
    try:
        code, answer = js(node, phone, "scan", payload=qr, pin=PIN)
        assert code == 0, answer
        assert answer["result"] == "logged_in" and answer["account"] == account
        assert answer["requester"] == {"ip": "192.0.2.7", "user_agent": "Firefox on Linux"}
        page.wait_for("LOGIN")
    finally:
        page.close()
    view = session(system, nonce)
    assert view["loggedin"] is True and view["userid"] == "js-alice" and view["second_factor"] == "pin"
    code, status = js(node, phone, "lock-status")
    assert status == {"registered": True, "locked": False, "attempts_left": 5, "max_attempts": 5}
    # The same QR is used up.
    code, again = js(node, phone, "scan", payload=qr, pin=PIN)
    assert code == 1 and again["code"] == "expired", again
    # Logout ends the session at ns.
    code, out = js(node, phone, "logout", account=account)
    assert code == 0 and out["ended"] >= 1, out
    assert session(system, nonce)["loggedin"] is False


def test_declined_login_tells_the_page(node: str, system: RunningSystem, phone: Path) -> None:
    account = enrol(node, system, phone, "js-carol")
    nonce = new_nonce()
    view = start_login(system, nonce)
    page = BrowserPage(system, view["hsid"], "default")
    try:
        code, answer = js(node, phone, "scan", payload=view["loginqrdata"], decline=True, account=account)
        assert code == 0 and answer["result"] == "declined", answer
        page.wait_for("CANCEL declined")
    finally:
        page.close()
    assert session(system, nonce)["loggedin"] is False


def test_transaction_signing(node: str, system: RunningSystem, phone: Path) -> None:
    account = enrol(node, system, phone, "js-olivia")
    code, answer, nonce = qr_login(node, system, phone, account)
    assert code == 0, answer
    api = ns_api(system)
    fields = {"amount": "EUR 1,250.00", "beneficiary": "BE71 0961 2345 6769", "description": "Invoice 42 ✓"}
    status, submitted = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
    )
    assert status == 201, submitted
    code, signed = js(node, phone, "scan", payload=submitted["qrdata"], pin=PIN)
    assert code == 0, signed
    assert signed["shown"] == fields and signed["result"] == "approved"
    status, record = api.call("GET", f"/v1/servers/default/transactions/{submitted['tid']}")
    assert record["status"] == "approved" and record["evidence"]["attestation"]
    status, check = api.call("POST", "/v1/evidence/verify", {"evidence": record["evidence"]})
    assert check["valid"] is True and check["content"]["fields"] == fields
    code, again = js(node, phone, "scan", payload=submitted["qrdata"], pin=PIN)
    assert code == 1 and again["code"] == "expired"
    # A refusal is signed too, and needs no PIN.
    status, submitted = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
    )
    code, declined = js(node, phone, "scan", payload=submitted["qrdata"], decline=True)
    assert code == 0 and declined["result"] == "declined", declined


def _logged_in_once(node: str, system: RunningSystem, phone: Path, user: str) -> tuple[str, str]:
    account = enrol(node, system, phone, user)
    code, answer, nonce = qr_login(node, system, phone, account)
    assert code == 0, answer
    assert ns_api(system).call("POST", "/v1/servers/default/sessions/logout", headers={"X-nonce": nonce})[
        1
    ] == {"loggedout": True}
    return nonce, account


def _provoke(system: RunningSystem, nonce: str) -> int:
    status, provoked = ns_api(system).call(
        "POST",
        "/v1/servers/default/sessions/provokelogin",
        headers={"X-nonce": nonce, "X-client-ip": "198.51.100.4"},
    )
    assert status == 200, provoked
    return int(provoked["number"])


def _pushed(node: str, phone: Path, account: str) -> dict[str, Any]:
    code, inbox = js(node, phone, "inbox")
    assert code == 0, inbox
    return [m for m in inbox["messages"] if m["account"] == account and m["type"] == "login"][-1]


def test_push_login_with_number_matching(node: str, system: RunningSystem, phone: Path) -> None:
    nonce, account = _logged_in_once(node, system, phone, "js-ivan")
    page = BrowserPage(system, session(system, nonce)["hsid"], "default")
    try:
        number = _provoke(system, nonce)
        request = _pushed(node, phone, account)
        assert number in request["numbers"] and len(request["numbers"]) == 3
        assert request["requester"] == {"ip": "198.51.100.4"}
        code, answer = js(node, phone, "approve", message=request["id"], number=number, pin=PIN)
        assert code == 0, answer
        page.wait_for("LOGIN")
    finally:
        page.close()
    view = session(system, nonce)
    assert view["loggedin"] is True and view["method"] == "push" and view["second_factor"] == "pin"


def test_push_login_with_the_wrong_number_is_refused(node: str, system: RunningSystem, phone: Path) -> None:
    nonce, account = _logged_in_once(node, system, phone, "js-judy")
    number = _provoke(system, nonce)
    request = _pushed(node, phone, account)
    wrong = next(n for n in request["numbers"] if n != number)
    code, answer = js(node, phone, "approve", message=request["id"], number=wrong, pin=PIN)
    assert code == 1 and answer["code"] == "wrong_number", answer
    # One wrong pick ends the request: the right number no longer works either.
    code, answer = js(node, phone, "approve", message=request["id"], number=number, pin=PIN)
    assert code == 1
    assert session(system, nonce)["loggedin"] is False


def test_copied_account_keys_on_another_phone_are_refused(
    node: str, system: RunningSystem, phone: Path, tmp_path: Path
) -> None:
    account = enrol(node, system, phone, "js-dora")
    # The attacker's phone: its own device key and PIN at the same SFS, and a copy of the accounts
    # (with their private keys) from the genuine phone's storage.
    attacker = new_js_phone(node, system, tmp_path / "attacker", OTHER_PIN)
    genuine_state = json.loads((phone / "state.json").read_text())
    attacker_state = json.loads((attacker / "state.json").read_text())
    attacker_state["accounts"] = genuine_state["accounts"]
    (attacker / "state.json").write_text(json.dumps(attacker_state))
    code, answer, nonce = qr_login(node, system, attacker, account, OTHER_PIN)
    assert code == 1 and answer["code"] == "second_factor_device_mismatch", answer
    assert session(system, nonce)["loggedin"] is False
    code, answer, nonce = qr_login(node, system, phone, account)
    assert code == 0, answer
    assert session(system, nonce)["loggedin"] is True


def test_wrong_pins_are_counted_and_lock_the_app(node: str, system: RunningSystem, tmp_path: Path) -> None:
    home = new_js_phone(node, system, tmp_path / "phone")
    api = ns_api(system)
    codes = []
    for attempt in range(6):
        _, created = api.call("POST", "/v1/servers/default/users/js-frank/enrolments")
        code, answer = js(node, home, "scan", payload=created["qrdata"], pin="9999")
        assert code == 1
        codes.append(answer.get("code"))
        if attempt == 0:
            assert "4 attempts left" in answer["error"]
            _, status = js(node, home, "lock-status")
            assert status["attempts_left"] == 4 and status["locked"] is False
    assert codes == ["wrong_pin"] * 4 + ["locked", "locked"]
    _, status = js(node, home, "lock-status")
    assert status["locked"] is True and status["attempts_left"] == 0
    _, created = api.call("POST", "/v1/servers/default/users/js-frank/enrolments")
    code, answer = js(node, home, "scan", payload=created["qrdata"], pin=PIN)
    assert code == 1 and answer["code"] == "locked"  # even the right PIN, once locked


def test_a_replayed_attestation_is_refused(node: str, system: RunningSystem, phone: Path) -> None:
    account = enrol(node, system, phone, "js-erin")
    first, second = new_nonce(), new_nonce()
    code, answer = _run(
        node,
        ATTACKS,
        "replay-attestation",
        json.dumps(
            {
                "home": str(phone),
                "account": account,
                "pin": PIN,
                "first": start_login(system, first)["loginqrdata"],
                "second": start_login(system, second)["loginqrdata"],
            }
        ),
    )
    assert code == 0, answer
    assert answer["second"] == "refused" and answer["code"] == "attestation_refused", answer
    assert session(system, first)["loggedin"] is True
    assert session(system, second)["loggedin"] is False


def test_a_server_other_than_the_pinned_one_is_refused(node: str, system: RunningSystem, phone: Path) -> None:
    code, answer = js(node, phone, "hello", service="sfs")
    assert code == 0 and answer["server"]["component"] == "sfs", answer
    # The MC's address with the SFS's pin: whoever answers there cannot prove the pinned key.
    code, answer = js(node, phone, "hello", uri=system.sigmai_uri("mc"), key_hash=system.key_hash("sfs"))
    assert code == 1 and "secure channel" in answer["error"], answer


def test_change_pin(node: str, system: RunningSystem, tmp_path: Path) -> None:
    home = new_js_phone(node, system, tmp_path / "phone")
    account = enrol(node, system, home, "js-paul")
    # A wrong old PIN changes nothing and counts like a wrong PIN at login.
    code, answer = js(node, home, "change-pin", old_pin="9999", new_pin=OTHER_PIN)
    assert code == 1 and answer["code"] == "wrong_pin" and "4 attempts left" in answer["error"], answer
    _, status = js(node, home, "lock-status")
    assert status["attempts_left"] == 4
    # The same PIN again is refused on the phone, before the SFS counts anything.
    code, answer = js(node, home, "change-pin", old_pin=PIN, new_pin=PIN)
    assert code == 1 and "old one" in answer["error"], answer
    code, answer = js(node, home, "change-pin", old_pin=PIN, new_pin=OTHER_PIN)
    assert code == 0 and answer == {"changed": True, "max_attempts": 5}, answer
    _, status = js(node, home, "lock-status")
    assert status["attempts_left"] == 5 and status["locked"] is False
    # From now on only the new PIN passes.
    code, answer, nonce = qr_login(node, system, home, account, PIN)
    assert code == 1 and answer["code"] == "wrong_pin", answer
    code, answer, nonce = qr_login(node, system, home, account, OTHER_PIN)
    assert code == 0, answer
    assert session(system, nonce)["loggedin"] is True


def test_biometric_enrolment_and_login(node: str, system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "bio-phone"
    code, answer = js(node, home, "init", config=str(system.data_dir / "app-config.json"), key_type="ed25519")
    assert code == 0 and answer["device_key_type"] == "ed25519", answer
    code, answer = js(node, home, "register", pin=PIN, biometric=True)
    assert code == 0 and answer["biometric"] is True, answer
    api = ns_api(system)
    _, created = api.call("POST", "/v1/servers/default/users/js-bio/enrolments")
    code, scanned = js(node, home, "scan", payload=created["qrdata"], biometric=True)
    assert code == 0, scanned
    status, done = api.call(
        "POST",
        f"/v1/servers/default/enrolments/{created['enrolment']}/confirm",
        {"code": scanned["confirmation_code"]},
    )
    assert status == 200, done
    nonce = new_nonce()
    view = start_login(system, nonce)
    code, answer = js(node, home, "scan", payload=view["loginqrdata"], biometric=True)
    assert code == 0, answer
    view = session(system, nonce)
    assert view["loggedin"] is True and view["second_factor"] == "biometric"


def test_the_mcs_web_push_key_over_the_pinned_channel(node: str, system: RunningSystem, phone: Path) -> None:
    """What a web app subscribes with: the same key the MC shows its operators over REST."""
    code, answer = js(node, phone, "webpush-key")
    assert code == 0, answer
    status, rest = system.get("mc", "http", "/v1/webpush/vapid-public-key")
    assert status == 200 and answer == rest, (answer, rest)
