"""The second factor is bound to the app instance that vouched at enrolment (docs/security.md, item 1).

The attacker of these tests holds a copy of a phone's account keys (a stolen or rooted phone, a copy of
the SDK's files): a second simulated phone with its own device key registers a PIN of its choice at the
same SFS and tries to log in, approve a push and sign with the copied keys. ns must refuse each with
``second_factor_device_mismatch``, while the genuine phone keeps working. Each system test runs on the
embedded defaults and again on PostgreSQL + Redis (the ``system`` fixture's two parameters).
"""

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text
from sqlalchemy.orm import Session as DbSession

from authserver.ns.common import parse_trusted_sfs_keys, unbound_accounts
from authserver.ns.login import BINDING_REFUSALS, LoginService
from authserver.ns.servers import ServerRegistry
from authserver.operations import OperationError
from authserver.storage import db
from authserver.storage.db import create_engine_for
from authserver.storage.flow_models import Account
from authserver.storage.kv import MemoryStore
from mobilesdk.channel import RemoteError
from mobilesdk.flows import App
from nextauth_core import attestation
from nextauth_core.encoding import unb64url
from nextauth_core.qr import QRPayload
from tests.fixtures.flows import PIN, BrowserPage, enrol, new_nonce, start_login
from tests.fixtures.system import RunningSystem, ns_api, run_app, start_system

ATTACKER_PIN = "1111"
MISMATCH = "second_factor_device_mismatch"
TRANSACTIONS = "/v1/servers/default/sessions/transactions"


# -- phones ------------------------------------------------------------------------------------------


def _new_phone(system: RunningSystem, home: Path, pin: str = PIN) -> Path:
    code, answer = run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))
    assert code == 0, answer
    code, answer = run_app(home, "register", "--pin", pin)
    assert code == 0, answer
    return home


@pytest.fixture(scope="module")
def genuine(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _new_phone(system, tmp_path_factory.mktemp("genuine"))


def _clone(system: RunningSystem, original: Path, home: Path) -> Path:
    """The attacker's phone: its own device key and PIN at the SFS, and a copy of the original's account
    keys and account list (everything but its device key and second-factor secrets)."""
    _new_phone(system, home, ATTACKER_PIN)
    shutil.copytree(original / "keys", home / "keys", dirs_exist_ok=True)
    shutil.copy2(original / "accounts.json", home / "accounts.json")
    return home


def _account_of(phone: Path, user: str) -> str:
    code, accounts = run_app(phone, "accounts")
    assert code == 0, accounts
    return str([a["id"] for a in accounts["accounts"] if a["user_id"] == user][-1])


def _logged_in(system: RunningSystem, nonce: str) -> dict[str, Any]:
    status, view = ns_api(system).call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert status == 200, view
    return dict(view)


def _qr_login(system: RunningSystem, phone: Path, account: str, pin: str) -> tuple[int, dict, str, list]:
    nonce = new_nonce()
    view = start_login(system, nonce)
    page = BrowserPage(system, view["hsid"], "default")
    try:
        code, answer = run_app(phone, "scan", view["loginqrdata"], "--pin", pin, f"--account={account}")
        if code != 0 and answer.get("code") in (MISMATCH, "reenrol_required"):
            page.wait_for(f"CANCEL {answer['code']}")
    finally:
        page.close()
    return code, answer, nonce, page.events


# -- QR login, push approval, signing ----------------------------------------------------------------


def test_copied_account_key_cannot_log_in_with_another_instances_pin(
    system: RunningSystem, genuine: Path, tmp_path: Path
) -> None:
    enrol(system, genuine, "dora")
    account = _account_of(genuine, "dora")
    attacker = _clone(system, genuine, tmp_path / "attacker")
    code, answer, nonce, events = _qr_login(system, attacker, account, ATTACKER_PIN)
    assert code == 1 and answer["code"] == MISMATCH, answer
    assert "enrol" in answer["error"]  # says what to do
    assert f"CANCEL {MISMATCH}" in events  # the login page is told why
    assert _logged_in(system, nonce)["loggedin"] is False
    # The genuine phone, with its own PIN, still logs in.
    code, answer, nonce, _events = _qr_login(system, genuine, account, PIN)
    assert code == 0, answer
    view = _logged_in(system, nonce)
    assert view["loggedin"] is True and view["second_factor"] == "pin" and view["userid"] == "dora"


def _provoke(system: RunningSystem, nonce: str) -> int:
    status, provoked = ns_api(system).call(
        "POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce}
    )
    assert status == 200, provoked
    return int(provoked["number"])


def _pushed_request(phone: Path, account: str) -> tuple[QRPayload, dict[str, Any]]:
    """The newest login request for ``account`` in the phone's inbox, as the payload a scan would give."""
    app = App(phone)
    item = [i for i in app.inbox() if i["account"] == account and i["type"] == "login"][-1]
    record = next(a for a in app.accounts.accounts() if a.id == account)
    payload = QRPayload(
        kind="login",
        server_id=item["server_id"],
        sigmai_uri=record.sigmai_uri,
        server_key_hash=record.server_key_hash,
        item_id=item["push"],
        secret=unb64url(item["challenge"]),
    )
    return payload, item


def test_copied_account_key_cannot_approve_a_push(
    system: RunningSystem, genuine: Path, tmp_path: Path
) -> None:
    enrol(system, genuine, "emil")
    account = _account_of(genuine, "emil")
    code, answer, nonce, _events = _qr_login(system, genuine, account, PIN)
    assert code == 0, answer
    ns_api(system).call("POST", "/v1/servers/default/sessions/logout", headers={"X-nonce": nonce})
    attacker = _clone(system, genuine, tmp_path / "attacker")
    # The attacker reads the pushed request (a copy of the phone's files opens its mailbox too) and
    # approves it with the copied account key and its own PIN.
    number = _provoke(system, nonce)
    payload, _item = _pushed_request(genuine, account)
    with pytest.raises(RemoteError) as refused:
        App(attacker).login(payload, pin=ATTACKER_PIN, approve=True, account_id=account, number=number)
    assert refused.value.code == MISMATCH
    assert _logged_in(system, nonce)["loggedin"] is False
    # The genuine phone approves the next push.
    number = _provoke(system, nonce)
    payload, _item = _pushed_request(genuine, account)
    answer = App(genuine).login(payload, pin=PIN, approve=True, account_id=account, number=number)
    assert answer["result"] == "logged_in"
    view = _logged_in(system, nonce)
    assert view["loggedin"] is True and view["method"] == "push" and view["second_factor"] == "pin"


def test_copied_account_key_cannot_sign(system: RunningSystem, genuine: Path, tmp_path: Path) -> None:
    enrol(system, genuine, "fay")
    account = _account_of(genuine, "fay")
    code, answer, nonce, _events = _qr_login(system, genuine, account, PIN)
    assert code == 0, answer
    attacker = _clone(system, genuine, tmp_path / "attacker")
    api = ns_api(system)
    fields = {"amount": "EUR 9,999.00", "beneficiary": "attacker", "description": "transfer"}
    status, submitted = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
    )
    assert status == 201, submitted
    code, answer = run_app(attacker, "scan", submitted["qrdata"], "--pin", ATTACKER_PIN)
    assert code == 1 and answer["code"] == MISMATCH, answer
    status, record = api.call("GET", f"/v1/servers/default/transactions/{submitted['tid']}")
    assert record["status"] != "approved" and "evidence" not in record
    # The genuine phone signs the next request.
    status, submitted = api.call(
        "POST", "/v1/servers/default/sessions/transactions", fields, {"X-nonce": nonce}
    )
    code, answer = run_app(genuine, "scan", submitted["qrdata"], "--pin", PIN)
    assert code == 0 and answer["result"] == "approved", answer


# -- locks and re-registration -----------------------------------------------------------------------


def _reregister(phone: Path, pin: str) -> tuple[int, dict]:
    """Register again with the same device key: what an attacker with a copy of the app's files would do
    after dropping the SDK's own record of the registration."""
    (phone / "second-factor.json").unlink()
    return run_app(phone, "register", "--pin", pin)


def test_registered_instance_cannot_register_a_new_pin(system: RunningSystem, tmp_path: Path) -> None:
    phone = _new_phone(system, tmp_path / "phone")
    code, answer = _reregister(phone, ATTACKER_PIN)
    assert code == 1 and answer["code"] == "already_registered", answer


def test_locked_instance_stays_locked_for_all_its_accounts(system: RunningSystem, tmp_path: Path) -> None:
    phone = _new_phone(system, tmp_path / "phone")
    enrol(system, phone, "gus")
    enrol(system, phone, "hana")
    gus, hana = _account_of(phone, "gus"), _account_of(phone, "hana")
    codes = [_qr_login(system, phone, gus, "0000")[1].get("code") for _ in range(5)]
    assert codes == ["wrong_pin"] * 4 + ["locked"]
    # Locked for every account of this app instance, even with the right PIN.
    for account in (gus, hana):
        code, answer, nonce, _events = _qr_login(system, phone, account, PIN)
        assert code == 1 and answer["code"] == "locked", answer
        assert _logged_in(system, nonce)["loggedin"] is False
    # The same device key cannot register a new PIN to undo the lock...
    saved = (phone / "second-factor.json").read_bytes()
    code, answer = _reregister(phone, ATTACKER_PIN)
    assert code == 1 and answer["code"] == "locked", answer
    (phone / "second-factor.json").write_bytes(saved)
    # ...and a new app instance holding the account keys cannot vouch for them.
    attacker = _clone(system, phone, tmp_path / "attacker")
    for account in (gus, hana):
        code, answer, _nonce, _events = _qr_login(system, attacker, account, ATTACKER_PIN)
        assert code == 1 and answer["code"] == MISMATCH, answer


# -- accounts enrolled before the binding --------------------------------------------------------------


def test_account_enrolled_before_the_binding_must_be_reenrolled(system: RunningSystem, genuine: Path) -> None:
    enrol(system, genuine, "ida")
    account = _account_of(genuine, "ida")
    api = ns_api(system)
    _status, user = api.call("GET", "/v1/servers/default/users/ida")
    assert [a["second_factor_bound"] for a in user["accounts"]] == [True]
    # What migration 0004 leaves for an account enrolled before it: no recorded app instance.
    engine = create_engine_for(system.env.get("NEXTAUTH_DB_URI") or f"sqlite:///{system.data_dir / 'ns.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE ns_accounts SET sfs_device = NULL WHERE id = :id"), {"id": account}
            )
    finally:
        engine.dispose()
    _status, user = api.call("GET", "/v1/servers/default/users/ida")
    assert [a["second_factor_bound"] for a in user["accounts"]] == [False]  # the operator sees it
    # Even the genuine phone with the right PIN: no trust on first use.
    code, answer, nonce, events = _qr_login(system, genuine, account, PIN)
    assert code == 1 and answer["code"] == "reenrol_required", answer
    assert "CANCEL reenrol_required" in events
    assert _logged_in(system, nonce)["loggedin"] is False
    # A new enrolment binds the new account, which logs in.
    enrol(system, genuine, "ida")
    code, answer, nonce, _events = _qr_login(system, genuine, _account_of(genuine, "ida"), PIN)
    assert code == 0, answer
    assert _logged_in(system, nonce)["loggedin"] is True


# -- the attestation key: its own, published, and required by ns ------------------------------------------


def test_sfs_shows_an_attestation_key_apart_from_its_identity(system: RunningSystem, tmp_path: Path) -> None:
    home = tmp_path / "phone"
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    code, answer = run_app(home, "hello", "sfs")
    assert code == 0, answer
    published = bytes.fromhex(answer["server"]["attestation_public_key"])
    assert len(published) == 32
    assert hashlib.sha256(published).hexdigest() != system.key_hash("sfs")
    assert "NEXTAUTH_NS_TRUSTED_SFS_KEYS=" in system.log() and published.hex() in system.log()


def _pem(key: ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_sfs_refuses_its_identity_key_as_attestation_key(tmp_path: Path) -> None:
    pem = _pem(ed25519.Ed25519PrivateKey.generate())
    env = {"NEXTAUTH_SFS_IDENTITY_KEY": pem, "NEXTAUTH_SFS_ATTESTATION_KEY": pem}
    running = start_system(tmp_path, command=("sfs",), extra_env=env, wait_ready=False)
    assert running.process.wait(timeout=30) == 2
    assert "NEXTAUTH_SFS_ATTESTATION_KEY: must differ" in running.log()
    assert "Traceback" not in running.log()


def test_ns_refuses_an_sfs_listed_without_its_attestation_key(tmp_path: Path) -> None:
    identity = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    env = {"NEXTAUTH_NS_TRUSTED_SFS_KEYS": identity}
    running = start_system(tmp_path, command=("ns",), extra_env=env, wait_ready=False)
    assert running.process.wait(timeout=30) == 2
    assert "NEXTAUTH_NS_TRUSTED_SFS_KEYS" in running.log() and "SFS_KEY:ATTESTATION_KEY" in running.log()
    assert "Traceback" not in running.log()


def test_login_page_explains_each_binding_refusal() -> None:
    """The page's script shows the text of a refusal by its code; the texts are the page's (translated)."""
    page = (Path(__file__).resolve().parents[1] / "templates" / "login.html").read_text()
    for code in BINDING_REFUSALS:
        assert f'  "{code}": _(' in page


# -- ns's rules, on the service itself ------------------------------------------------------------------


@pytest.fixture
def login_service(tmp_path: Path) -> Any:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'ns.db'}")
    db.upgrade(engine)
    server = ServerRegistry(engine).ensure_default()
    identity = ed25519.Ed25519PrivateKey.generate()
    attesting = ed25519.Ed25519PrivateKey.generate()
    pair = (
        f"{identity.public_key().public_bytes_raw().hex()}:{attesting.public_key().public_bytes_raw().hex()}"
    )
    trusted = parse_trusted_sfs_keys([pair])
    sfs_hash = hashlib.sha256(identity.public_key().public_bytes_raw()).hexdigest()
    service = LoginService(engine, MemoryStore(), ServerRegistry(engine), trusted, "ws://127.0.0.1:1/")
    yield {
        "engine": engine,
        "login": service,
        "server": server.id,
        "identity": identity,
        "attesting": attesting,
        "sfs_hash": sfs_hash,
    }
    engine.dispose()


def _account(setup: dict, device: str | None) -> Account:
    return Account(
        id="acc",
        server_id=setup["server"],
        key_type="ed25519",
        public_key=b"k" * 32,
        thumbprint="tp",
        sfs_key_hash=setup["sfs_hash"],
        sfs_device=device,
        active=True,
    )


def _token(setup: dict, key: ed25519.Ed25519PrivateKey, device: str, purpose: str = "login") -> str:
    return attestation.issue(
        key,
        issuer=setup["sfs_hash"],
        audience=setup["server"],
        nonce=attestation.nonce_for(b"challenge"),
        purpose=purpose,
        method="pin",
        account_thumbprint="tp",
        device=device,
    )


def _check(setup: dict, token: str, account: Account, purpose: str = "login") -> attestation.Attestation:
    return setup["login"].check_attestation(token, account, setup["server"], b"challenge", purpose)


@pytest.mark.parametrize("purpose", ["login", "sign"])
def test_unit_attestation_from_another_instance_is_refused(login_service: dict, purpose: str) -> None:
    token = _token(login_service, login_service["attesting"], "instance-b", purpose)
    with pytest.raises(OperationError) as refused:
        _check(login_service, token, _account(login_service, "instance-a"), purpose)
    assert refused.value.code == MISMATCH
    token = _token(login_service, login_service["attesting"], "instance-a", purpose)
    assert _check(login_service, token, _account(login_service, "instance-a"), purpose).device == "instance-a"


def test_unit_enrolment_reports_the_vouching_instance(login_service: dict) -> None:
    token = _token(login_service, login_service["attesting"], "instance-a", "enrol")
    assert _check(login_service, token, _account(login_service, None), "enrol").device == "instance-a"


def test_unit_unbound_account_is_refused_with_the_reenrol_reason(login_service: dict) -> None:
    token = _token(login_service, login_service["attesting"], "instance-a")
    with pytest.raises(OperationError) as refused:
        _check(login_service, token, _account(login_service, None))
    assert refused.value.code == "reenrol_required"


def test_unit_attestation_signed_with_the_sfs_identity_key_is_refused(login_service: dict) -> None:
    """The SFS's sigmai identity key names the SFS, but only its attestation key signs attestations."""
    token = _token(login_service, login_service["identity"], "instance-a")
    with pytest.raises(OperationError) as refused:
        _check(login_service, token, _account(login_service, "instance-a"))
    assert refused.value.code == "attestation_refused"


def test_unit_trusted_sfs_setting_needs_the_attestation_key() -> None:
    identity = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    with pytest.raises(ValueError, match="SFS key only"):
        parse_trusted_sfs_keys([identity])
    with pytest.raises(ValueError, match="must differ"):
        parse_trusted_sfs_keys([f"{identity}:{identity}"])
    with pytest.raises(ValueError, match="hex Ed25519"):
        parse_trusted_sfs_keys([f"{identity}:zz"])


def test_unit_unbound_accounts_are_counted_for_the_operator(login_service: dict) -> None:
    """ns logs this count at start: the operator learns that some users must enrol again."""
    rows = [("bound", "instance-a", True), ("legacy", None, True), ("unconfirmed", None, False)]
    with DbSession(login_service["engine"]) as session:
        for name, device, active in rows:
            account = _account(login_service, device)
            account.id, account.thumbprint, account.active = name, name, active
            session.add(account)
        session.commit()
    assert unbound_accounts(login_service["engine"]) == 1
