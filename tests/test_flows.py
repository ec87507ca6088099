"""Registration, enrolment and QR login end to end: the phone simulator against the running services,
a business application on the REST API, and a login page on the browser WebSocket."""

import time
import urllib.parse
from pathlib import Path

import pytest

from tests.fixtures.flows import PIN, BrowserPage, enrol, new_nonce, start_login
from tests.fixtures.system import RunningSystem, ns_api, run_app, start_system, stop_system


@pytest.fixture(scope="module")
def phone(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("phone")
    code, answer = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", PIN, "--biometric")
    assert code == 0, answer
    assert answer["registered"] is True
    return home


def test_enrol_then_log_in_with_qr(system: RunningSystem, phone: Path) -> None:
    enrolled = enrol(system, phone, "alice")
    nonce = new_nonce()
    view = start_login(system, nonce)
    page = BrowserPage(system, view["hsid"], "default")
    try:
        code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)
        assert code == 0, answer
        assert answer["result"] == "logged_in"
        assert answer["requester"] == {"ip": "192.0.2.7", "user_agent": "Firefox on Linux"}
        page.wait_for("CONFIRMSCAN")
        page.wait_for("LOGIN")
    finally:
        page.close()
    status, session = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200
    assert session["loggedin"] is True
    assert session["userid"] == "alice"
    assert session["accountid"] == enrolled["done"]["accountid"]
    assert session["second_factor"] == "pin"
    # Whoever holds only the QR or the hsid has no session: another nonce sees nothing.
    status, other = ns_api(system).call(
        "GET", "/v1/servers/default/sessions/", headers={"X-nonce": new_nonce()}
    )
    assert other["loggedin"] is False


def test_login_with_biometric(system: RunningSystem, phone: Path) -> None:
    enrol(system, phone, "bio-user")
    nonce = new_nonce()
    view = start_login(system, nonce)
    code, accounts = run_app(phone, "accounts")
    account = next(a["id"] for a in accounts["accounts"] if a["user_id"] == "bio-user")
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--biometric", f"--account={account}")
    assert code == 0, answer
    _status, session = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["second_factor"] == "biometric"


def test_reused_qr_is_refused(system: RunningSystem, phone: Path) -> None:
    enrol(system, phone, "bob")
    view = start_login(system, new_nonce())
    assert run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)[0] == 0
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)
    assert code == 1
    assert answer["code"] == "expired"


def test_declined_login_tells_the_page(system: RunningSystem, phone: Path) -> None:
    enrol(system, phone, "carol")
    nonce = new_nonce()
    view = start_login(system, nonce)
    page = BrowserPage(system, view["hsid"], "default")
    try:
        code, answer = run_app(phone, "scan", view["loginqrdata"], "--decline")
        assert code == 0 and answer["result"] == "declined"
        page.wait_for("CANCEL declined")
    finally:
        page.close()
    _status, session = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is False


def test_foreign_server_qr_is_refused(system: RunningSystem, phone: Path) -> None:
    api = ns_api(system)
    status, other = api.call("POST", "/v1/servers", {"name": "Other shop"})
    assert status == 201, other
    enrol(system, phone, "dave")  # an account at the default server only
    view = start_login(system, new_nonce(), other["id"])
    code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", PIN)
    assert code == 1
    assert "no account" in answer["error"]


def test_wrong_pin_is_refused_and_counted(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone2"
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    api = ns_api(system)
    _status, created = api.call("POST", "/v1/servers/default/users/erin/enrolments")
    code, answer = run_app(home, "scan", created["qrdata"], "--pin", "0000")
    assert code == 1
    assert answer["code"] == "wrong_pin"
    assert "4 attempts left" in answer["error"]
    # The enrolment code was consumed by the failed attempt: a new one is needed.
    code, answer = run_app(home, "scan", created["qrdata"], "--pin", PIN)
    assert code == 1 and answer["code"] == "expired"


def test_pin_locks_after_five_wrong_attempts(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone3"
    run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert run_app(home, "register", "--pin", PIN)[0] == 0
    api = ns_api(system)
    answers = []
    for _ in range(6):
        _, created = api.call("POST", "/v1/servers/default/users/frank/enrolments")
        answers.append(run_app(home, "scan", created["qrdata"], "--pin", "9999")[1])
    assert [a.get("code") for a in answers] == ["wrong_pin"] * 4 + ["locked", "locked"]
    _, created = api.call("POST", "/v1/servers/default/users/frank/enrolments")
    code, answer = run_app(home, "scan", created["qrdata"], "--pin", PIN)
    assert code == 1 and answer["code"] == "locked"  # even the right PIN, once locked


def test_enrolment_needs_the_code_from_the_phone(system: RunningSystem, phone: Path) -> None:
    api = ns_api(system)
    _, created = api.call("POST", "/v1/servers/default/users/grace/enrolments")
    code, scanned = run_app(phone, "scan", created["qrdata"], "--pin", PIN)
    assert code == 0
    wrong = f"{(int(scanned['confirmation_code']) + 1) % 1_000_000:06d}"
    path = f"/v1/servers/default/enrolments/{created['enrolment']}/confirm"
    assert api.call("POST", path, {"code": wrong})[1]["error"] == "wrong_code"
    assert api.call("POST", path, {"code": wrong})[1]["error"] == "wrong_code"
    assert api.call("POST", path, {"code": wrong})[1]["error"] == "failed"
    status, _answer = api.call("POST", path, {"code": scanned["confirmation_code"]})
    assert status == 409  # too late: three wrong codes ended it
    status, _ = api.call("GET", "/v1/servers/default/users/grace")
    assert status == 404


def test_logout_from_application_and_from_phone(system: RunningSystem, phone: Path) -> None:
    enrol(system, phone, "heidi")
    code, accounts = run_app(phone, "accounts")
    account = next(a["id"] for a in accounts["accounts"] if a["user_id"] == "heidi")
    api = ns_api(system)
    for ender in ("application", "phone"):
        nonce = new_nonce()
        view = start_login(system, nonce)
        assert run_app(phone, "scan", view["loginqrdata"], "--pin", PIN, f"--account={account}")[0] == 0
        page = BrowserPage(system, view["hsid"], "default")
        try:
            page.wait_for("LOGIN")  # registered on a logged-in session: told at once
            if ender == "application":
                _status, answer = api.call(
                    "POST", "/v1/servers/default/sessions/logout", headers={"X-nonce": nonce}
                )
                assert answer == {"loggedout": True}
            else:
                code, answer = run_app(phone, "logout", f"--account={account}")
                assert code == 0 and answer["ended"] >= 1
            page.wait_for("LOGOUT")
        finally:
            page.close()
        _status, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
        assert session["loggedin"] is False


def test_rest_api_refuses_bad_callers_and_input(system: RunningSystem) -> None:
    root = ns_api(system)
    assert ns_api(system, "na_" + "x" * 43).call("GET", "/v1/servers")[0] == 401
    status, answer = root.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": "short"})
    assert status == 400 and answer["error"] == "bad_nonce"
    assert root.call("GET", "/v1/servers/nope")[0] == 404
    assert root.call("POST", "/v1/servers", {"name": ""})[0] == 400
    assert root.call("GET", "/v1/no/such/thing")[0] == 404
    status, answer = root.call("POST", "/v1/servers/default/enrolments/x/confirm", {"code": "12ab56"})
    assert status == 400 and "six digits" in answer["message"]


def test_qr_image_endpoints(system: RunningSystem) -> None:
    api = ns_api(system)
    status, png = api.call(
        "GET", "/v1/servers/default/sessions/qr/login?format=png", headers={"X-nonce": new_nonce()}
    )
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, svg = api.call(
        "GET", "/v1/servers/default/sessions/qr/login?format=svg", headers={"X-nonce": new_nonce()}
    )
    assert status == 200 and b"<svg" in svg


def test_nonce_is_never_sent_to_the_page(system: RunningSystem) -> None:
    nonce = new_nonce()
    view = start_login(system, nonce)
    assert nonce not in str(view)


def test_transaction_signing_with_verifiable_evidence(system: RunningSystem, phone: Path) -> None:
    enrol(system, phone, "olivia")
    _, accounts = run_app(phone, "accounts")
    account = next(a["id"] for a in accounts["accounts"] if a["user_id"] == "olivia")
    nonce = new_nonce()
    view = start_login(system, nonce)
    assert run_app(phone, "scan", view["loginqrdata"], "--pin", PIN, f"--account={account}")[0] == 0
    api = ns_api(system)
    fields = {"amount": "EUR 1,250.00", "beneficiary": "BE71 0961 2345 6769", "description": "Invoice 42 ✓"}
    status, submitted = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
    )
    assert status == 201, submitted
    code, signed = run_app(phone, "scan", submitted["qrdata"], "--pin", PIN)
    assert code == 0, signed
    assert signed["shown"] == fields and signed["result"] == "approved"
    status, record = api.call("GET", f"/v1/servers/default/transactions/{submitted['tid']}")
    assert record["status"] == "approved"
    evidence = record["evidence"]
    assert evidence["attestation"]  # the second factor was checked for this very signature
    status, check = api.call("POST", "/v1/evidence/verify", {"evidence": evidence})
    assert check["valid"] is True and check["content"]["fields"] == fields
    # Anyone can check it offline too; and any change to the record is caught.
    from nextauth_core import evidence as evidence_check

    assert evidence_check.verify(evidence)["transaction"] == submitted["tid"]
    tampered = dict(evidence, decision="declined")
    status, check = api.call("POST", "/v1/evidence/verify", {"evidence": tampered})
    assert check["valid"] is False
    # The request is single use: scanning it again does nothing.
    code, again = run_app(phone, "scan", submitted["qrdata"], "--pin", PIN)
    assert code == 1 and again["code"] == "expired"


def test_transaction_needs_a_logged_in_session_and_typed_fields(system: RunningSystem) -> None:
    api = ns_api(system)
    fields = {"amount": "1", "beneficiary": "x", "description": "y"}
    status, answer = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": new_nonce()}
    )
    assert status == 409 and answer["error"] == "not_logged_in"
    status, answer = api.call(
        "POST", "/v1/servers/default/sessions/transactions", {"amount": 5}, {"X-nonce": new_nonce()}
    )
    assert status == 400


def test_expired_qr_is_refused(tmp_path: Path) -> None:
    short = start_system(tmp_path / "data", extra_env={"NEXTAUTH_NS_LOGIN_QR_TTL": "1"})
    try:
        home = tmp_path / "phone"
        run_app(home, "init", "--config", str(short.data_dir / "app-config.json"))
        assert run_app(home, "register", "--pin", PIN)[0] == 0
        enrol(short, home, "late-larry")
        view = start_login(short, new_nonce())
        time.sleep(1.5)
        code, answer = run_app(home, "scan", view["loginqrdata"], "--pin", PIN)
        assert code == 1 and answer["code"] == "expired"
    finally:
        stop_system(short)


def test_qr_images_for_enrolment_payloads(system: RunningSystem) -> None:
    api = ns_api(system)
    _, created = api.call("POST", "/v1/servers/default/users/pat/enrolments")
    query = urllib.parse.urlencode({"data": created["qrdata"], "format": "png"})
    status, png = api.call("GET", f"/v1/servers/default/qr?{query}")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, answer = api.call("GET", "/v1/servers/default/qr?data=NA1.garbage")
    assert status == 400 and answer["error"] == "bad_request"
