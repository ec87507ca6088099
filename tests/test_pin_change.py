"""Changing the PIN end to end: the phone simulator and the Python SDK against the running services. The
user proves the old PIN at the SFS and sets a new one; a wrong old PIN costs an attempt like one at login,
a locked app cannot change its PIN, and a change is one finish per start, on its channel, in its window.
See docs/app-protocol.md, "Changing the PIN"."""

import hashlib
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mobilesdk.channel import Channel, RemoteError
from mobilesdk.flows import App
from nextauth_core import pin as pin_proofs
from nextauth_core.encoding import b64url, unb64url
from nextauth_core.statements import PIN_CHANGE_EXPORTER, pin_change_statement
from tests.fixtures.flows import PIN, enrol, new_nonce, start_login
from tests.fixtures.system import RunningSystem, ns_api, run_app, start_system, stop_system

NEW_PIN = "4711"


def _registered_phone(system: RunningSystem, home: Path) -> Path:
    code, answer = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0, answer
    return home


def _log_in(system: RunningSystem, phone: Path, pin: str) -> tuple[int, dict[str, Any]]:
    view = start_login(system, new_nonce())
    return run_app(phone, "scan", view["loginqrdata"], "--pin", pin)


def _started(sfs: Channel, old: str, new: str, device_secret: bytes) -> dict[str, str]:
    """``pin.change.start`` on ``sfs``, and the finish parameters the app would send for it."""
    old_request, new_request = pin_proofs.start(old), pin_proofs.start(new)
    started = sfs.request(
        "pin.change.start",
        {
            "blinded_element": b64url(old_request.blinded_element),
            "new_blinded_element": b64url(new_request.blinded_element),
        },
    )
    verifier = pin_proofs.verifier(
        new, new_request, unb64url(started["new_evaluated_element"]), device_secret
    )
    statement = pin_change_statement(
        sfs_challenge=unb64url(started["challenge"]),
        channel_binding=sfs.export(PIN_CHANGE_EXPORTER, b"", 32),
        new_pin_verifier=verifier,
    )
    proof = pin_proofs.prove(
        old, old_request, unb64url(started["evaluated_element"]), device_secret, statement
    )
    return {"proof": b64url(proof), "pin_verifier": b64url(verifier)}


def _refusal(sfs: Channel, op: str, params: dict[str, Any]) -> str:
    try:
        sfs.request(op, params)
    except RemoteError as exc:
        return exc.code
    raise AssertionError(f"{op} was accepted")


def test_change_pin_then_log_in_with_the_new_one(system: RunningSystem, tmp_path: Path) -> None:
    phone = _registered_phone(system, tmp_path / "phone")
    enrol(system, phone, "pin-changer")
    # Refused on the phone, before the SFS counts anything (the count is checked below).
    code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", PIN)
    assert code == 1 and "is the old one" in answer["error"]
    code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", "12")
    assert code == 1 and "4 to 64 characters" in answer["error"]
    code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", NEW_PIN)
    assert code == 0, answer
    assert answer == {"changed": True, "max_attempts": 5}
    code, answer = _log_in(system, phone, NEW_PIN)
    assert code == 0 and answer["result"] == "logged_in", answer
    code, answer = _log_in(system, phone, PIN)
    assert code == 1 and answer["code"] == "wrong_pin", answer
    # The old PIN cannot change it back either; the new one can.
    code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", "8642")
    assert code == 1 and answer["code"] == "wrong_pin"
    assert "3 attempts left" in answer["error"]  # the refused login and this change both counted
    code, answer = run_app(phone, "change-pin", "--old-pin", NEW_PIN, "--new-pin", "8642")
    assert code == 0, answer
    code, answer = _log_in(system, phone, "8642")
    assert code == 0 and answer["result"] == "logged_in", answer


def test_wrong_old_pin_counts_with_login_failures_and_locks(system: RunningSystem, tmp_path: Path) -> None:
    phone = _registered_phone(system, tmp_path / "phone")
    code, answer = run_app(phone, "change-pin", "--old-pin", "0000", "--new-pin", NEW_PIN)
    assert code == 1 and answer["code"] == "wrong_pin" and "4 attempts left" in answer["error"]
    # One count: a wrong PIN at enrolment (as at login) comes off the same attempts.
    _, created = ns_api(system).call("POST", "/v1/servers/default/users/grace/enrolments")
    code, answer = run_app(phone, "scan", created["qrdata"], "--pin", "0000")
    assert code == 1 and answer["code"] == "wrong_pin" and "3 attempts left" in answer["error"]
    codes = [
        run_app(phone, "change-pin", "--old-pin", "0000", "--new-pin", NEW_PIN)[1]["code"] for _ in range(4)
    ]
    assert codes == ["wrong_pin", "wrong_pin", "locked", "locked"]
    # Locked: not even the right old PIN changes it, and it does not log in or enrol any more.
    code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", NEW_PIN)
    assert code == 1 and answer["code"] == "locked"
    _, created = ns_api(system).call("POST", "/v1/servers/default/users/grace/enrolments")
    code, answer = run_app(phone, "scan", created["qrdata"], "--pin", PIN)
    assert code == 1 and answer["code"] == "locked"


def test_finish_is_single_use_bound_to_its_start_and_channel(system: RunningSystem, tmp_path: Path) -> None:
    phone = _registered_phone(system, tmp_path / "phone")
    app = App(phone)
    device_secret = unb64url(app.accounts.second_factor()["device_secret"])
    with app._sfs() as sfs:
        assert {"pin.change.start", "pin.change.finish"} <= set(sfs.request("hello")["operations"])
        fake = {"proof": b64url(bytes(64)), "pin_verifier": b64url(bytes(32))}
        assert _refusal(sfs, "pin.change.finish", fake) == "no_pin_change"  # never started
        finish = _started(sfs, PIN, NEW_PIN, device_secret)
        assert sfs.request("pin.change.finish", finish) == {"changed": True, "max_attempts": 5}
        assert _refusal(sfs, "pin.change.finish", finish) == "no_pin_change"  # replayed
        # A finish made on this channel, sent on another after a start there: wrong challenge and binding.
        captured = _started(sfs, NEW_PIN, "2468", device_secret)
    with app._sfs() as other:
        assert _refusal(other, "pin.change.finish", captured) == "no_pin_change"
        _started(other, NEW_PIN, "2468", device_secret)
        assert _refusal(other, "pin.change.finish", captured) == "wrong_pin"
        # The proof covers the new verifier: another verifier under a valid proof is a wrong PIN.
        genuine = _started(other, NEW_PIN, "2468", device_secret)
        someone_elses = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        swapped = {**genuine, "pin_verifier": b64url(someone_elses)}
        assert _refusal(other, "pin.change.finish", swapped) == "wrong_pin"
    code, answer = run_app(phone, "change-pin", "--old-pin", NEW_PIN, "--new-pin", PIN)
    assert code == 0, answer  # only the first change took effect; the refused ones set nothing


def test_expired_pin_change_is_refused(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "sfs.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sfs_only = start_system(
        tmp_path / "data",
        command=("sfs",),
        extra_env={"NEXTAUTH_SFS_IDENTITY_KEY_FILE": str(key_file), "NEXTAUTH_SFS_PIN_CHANGE_SECONDS": "1"},
    )
    try:
        phone = tmp_path / "phone"
        key_hash = hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest()
        assert run_app(phone, "init", "--sfs", sfs_only.sigmai_uri("sfs"), "--sfs-key-hash", key_hash)[0] == 0
        assert run_app(phone, "register", "--pin", PIN)[0] == 0
        app = App(phone)
        device_secret = unb64url(app.accounts.second_factor()["device_secret"])
        with app._sfs() as sfs:
            late = _started(sfs, PIN, NEW_PIN, device_secret)
            time.sleep(1.3)
            assert _refusal(sfs, "pin.change.finish", late) == "expired"
            # Expiry used the start up: a finish after it finds nothing to finish.
            assert _refusal(sfs, "pin.change.finish", late) == "no_pin_change"
        code, answer = run_app(phone, "change-pin", "--old-pin", PIN, "--new-pin", NEW_PIN)
        assert code == 0, answer  # within the window it works, and the expired try did not change it
    finally:
        stop_system(sfs_only)
