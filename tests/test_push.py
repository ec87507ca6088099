"""Push login end to end: ns seals a request to the account's key, the MC stores and forwards what it
cannot read, the phone pulls it, checks ns's signature, and approves with number matching."""

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from authserver.ns.mc_client import DeliveryError, RestMessageCenter
from authserver.storage.db import create_engine_for
from tests.fixtures.flows import PIN, BrowserPage, enrol, logged_in_once, new_nonce
from tests.fixtures.system import RunningSystem, ns_api, run_app


@pytest.fixture(scope="module")
def pushed_phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("push-phone")
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    code, answer = run_app(home, "register", "--pin", PIN)
    assert code == 0, answer
    assert answer["mailbox"]
    return home


def test_push_login_with_number_matching(system: RunningSystem, pushed_phone: Path) -> None:
    nonce, account = logged_in_once(system, pushed_phone, "ivan")
    api = ns_api(system)
    status, view = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert view["canprovoke"] is True
    page = BrowserPage(system, view["hsid"], "default")
    try:
        status, provoked = api.call(
            "POST",
            "/v1/servers/default/sessions/provokelogin",
            headers={"X-nonce": nonce, "X-client-ip": "198.51.100.4"},
        )
        assert status == 200, provoked
        code, inbox = run_app(pushed_phone, "inbox")
        assert code == 0, inbox
        (request,) = [m for m in inbox["messages"] if m["account"] == account]
        assert request["type"] == "login"
        assert provoked["number"] in request["numbers"] and len(request["numbers"]) == 3
        assert request["requester"] == {"ip": "198.51.100.4"}
        code, answer = run_app(
            pushed_phone, "approve", request["id"], "--number", str(provoked["number"]), "--pin", PIN
        )
        assert code == 0, answer
        page.wait_for("CONFIRMPROVOKE")
        page.wait_for("LOGIN")
    finally:
        page.close()
    status, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["method"] == "push" and session["second_factor"] == "pin"


def test_wrong_number_refuses_the_login(system: RunningSystem, pushed_phone: Path) -> None:
    nonce, account = logged_in_once(system, pushed_phone, "judy")
    api = ns_api(system)
    _, provoked = api.call("POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce})
    _, inbox = run_app(pushed_phone, "inbox")
    request = next(m for m in inbox["messages"] if m["account"] == account and m["push"])
    wrong = next(n for n in request["numbers"] if n != provoked["number"])
    code, answer = run_app(pushed_phone, "approve", request["id"], "--number", str(wrong), "--pin", PIN)
    assert code == 1 and answer["code"] == "wrong_number"
    # One wrong pick ends the request: the right number no longer works either.
    code, answer = run_app(
        pushed_phone, "approve", request["id"], "--number", str(provoked["number"]), "--pin", PIN
    )
    assert code == 1
    _, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is False


def test_no_push_to_a_session_nobody_logged_in_on(system: RunningSystem) -> None:
    status, answer = ns_api(system).call(
        "POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": new_nonce()}
    )
    assert status == 409 and answer["error"] == "cannot_provoke"


def test_message_center_holds_no_plaintext_and_tampering_is_detected(
    system: RunningSystem, pushed_phone: Path
) -> None:
    nonce, account = logged_in_once(system, pushed_phone, "mallory-target")
    api = ns_api(system)
    _, _provoked = api.call("POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce})
    engine = create_engine_for(system.env.get("NEXTAUTH_DB_URI") or f"sqlite:///{system.data_dir / 'mc.db'}")
    try:
        with engine.begin() as db:
            stored = db.execute(text("SELECT id, envelope FROM mc_messages")).all()
            assert stored
            for message_id, sealed in stored:
                sealed = bytes(sealed)
                for plaintext in (b"login", b"nextAuth", b"number", b"challenge", b"default"):
                    assert plaintext not in sealed
                altered = sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]  # one bit, as an MC could
                db.execute(
                    text("UPDATE mc_messages SET envelope = :e WHERE id = :i"),
                    {"e": altered, "i": message_id},
                )
    finally:
        engine.dispose()
    _, inbox = run_app(pushed_phone, "inbox")
    assert [m for m in inbox["messages"] if m["account"] == account] == []


def test_provoke_user_pushes_to_their_phone(system: RunningSystem, pushed_phone: Path) -> None:
    enrol(system, pushed_phone, "ken")
    nonce = new_nonce()
    status, provoked = ns_api(system).call(
        "POST", "/v1/servers/default/users/ken/provokelogin", headers={"X-nonce": nonce}
    )
    assert status == 200 and provoked["accounts"] == 1
    _, inbox = run_app(pushed_phone, "inbox")
    request = next(m for m in inbox["messages"] if m["userid"] == "ken")
    code, answer = run_app(
        pushed_phone, "approve", request["id"], "--number", str(provoked["number"]), "--pin", PIN
    )
    assert code == 0, answer
    _, session = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["userid"] == "ken"


def test_message_center_rest_api_for_ns(system: RunningSystem, pushed_phone: Path) -> None:
    """The REST alternative to gRPC: the app token is the right to write to the mailbox, nothing more."""
    secrets_file = json.loads((pushed_phone / "second-factor.json").read_text())
    mailbox, token = secrets_file["mailbox"]["mailbox"], secrets_file["mailbox"]["token"]
    center = RestMessageCenter(f"http://127.0.0.1:{system.port('mc', 'http')}")
    with pytest.raises(DeliveryError, match="403"):
        center.send(mailbox, token + "x", b"\x01" + bytes(64), sender="0" * 64, collapse_id="", ttl=60)
    delivered = center.send(mailbox, token, b"\x01" + bytes(64), sender="0" * 64, collapse_id="", ttl=60)
    assert delivered.message_id
    # Bytes that are no envelope of a pinned server never reach the person.
    _, inbox = run_app(pushed_phone, "inbox")
    assert all(message["id"] != delivered.message_id for message in inbox["messages"])
