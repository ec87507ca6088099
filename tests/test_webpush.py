"""Push login by Web Push, end to end: ns seals the request, the MC stores it and pushes a wake-up through a
local RFC 8030 push service, which checks the MC's VAPID token and decrypts the push with the browser-side
keys (RFC 8291); the app then pulls the request it names and approves it."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from authserver.storage.db import create_engine_for
from tests.fixtures.flows import PIN, logged_in_once
from tests.fixtures.system import ENDPOINTS, RunningSystem, ns_api, run_app, start_system, stop_system
from tests.pushservers import TestCA
from tests.pushservers.webpush_server import WebPushServer, WebPushSubscription

SUBJECT = "mailto:operators@example.org"


@pytest.fixture(scope="module")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebPushServer, TestCA]]:
    ca = TestCA(tmp_path_factory.mktemp("webpush-ca"))
    server = WebPushServer(ca.issue())
    yield server, ca
    server.stop()


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, push_service: tuple[WebPushServer, TestCA]
) -> Iterator[RunningSystem]:
    """The whole system on embedded defaults (the VAPID key made in its data folder), trusting the local
    push service's CA and, as only tests should, letting it push to a loopback endpoint."""
    _, ca = push_service
    env = {f"NEXTAUTH_{name.upper()}_SIGMAI_HANDSHAKE_TIMEOUT": "1.5" for name in ENDPOINTS}
    env["NEXTAUTH_MC_PUSH_CA_FILE"] = str(ca.ca_file)
    env["NEXTAUTH_MC_WEBPUSH_SUBJECT"] = SUBJECT
    env["NEXTAUTH_MC_WEBPUSH_ALLOW_PRIVATE_ENDPOINTS"] = "true"
    running = start_system(tmp_path_factory.mktemp("webpush-system"), extra_env=env)
    yield running
    stop_system(running)
    assert running.process.returncode == 0, running.log()


def _vapid_key(system: RunningSystem) -> str:
    status, answer = system.get("mc", "http", "/v1/webpush/vapid-public-key")
    assert status == 200, answer
    return str(answer["vapid_public_key"])


def _phone(system: RunningSystem, home: Path, subscription: WebPushSubscription) -> Path:
    assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    token = json.dumps(subscription.to_json())
    code, answer = run_app(
        home, "register", "--pin", PIN, "--push-provider", "webpush", "--push-token", token
    )
    assert code == 0, answer
    return home


def _mailbox_of(home: Path) -> str:
    return str(json.loads((home / "second-factor.json").read_text())["mailbox"]["mailbox"])


def _push_state(system: RunningSystem, mailbox: str) -> tuple[str, str | None]:
    engine = create_engine_for(f"sqlite:///{system.data_dir / 'mc.db'}")
    try:
        with engine.connect() as db:
            row = db.execute(
                text("SELECT push_provider, push_subscription FROM mc_mailboxes WHERE id = :i"),
                {"i": mailbox},
            ).one()
    finally:
        engine.dispose()
    return row[0], row[1]


def test_the_vapid_key_is_the_same_over_rest_and_sigmai_and_survives_in_the_data_folder(
    system: RunningSystem, tmp_path: Path
) -> None:
    key = _vapid_key(system)
    assert run_app(tmp_path, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    code, answer = run_app(tmp_path, "webpush-key")
    assert code == 0 and answer == {"vapid_public_key": key}
    assert (system.data_dir / "mc-webpush-vapid-key.pem").exists()


def test_push_login_by_web_push(
    system: RunningSystem, push_service: tuple[WebPushServer, TestCA], tmp_path: Path
) -> None:
    service, _ = push_service
    subscription = service.subscribe(_vapid_key(system))
    phone = _phone(system, tmp_path / "phone", subscription)
    mailbox = _mailbox_of(phone)
    assert _push_state(system, mailbox)[0] == "webpush"
    nonce, account = logged_in_once(system, phone, "wendy")
    api = ns_api(system)
    before = len([p for p in service.received if p.subscription == subscription.id])
    status, provoked = api.call(
        "POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce}
    )
    assert status == 200, provoked
    pushes = [p for p in service.wait_for(1) if p.subscription == subscription.id]
    assert len(pushes) == before + 1, service.refused
    push = pushes[-1]
    # What the browser gets after decrypting: only which mailbox and message to pull, nothing of the login.
    wake_up = json.loads(push.plaintext)
    assert wake_up["mailbox"] == mailbox and set(wake_up) == {"mailbox", "message"}
    assert push.claims["sub"] == SUBJECT and push.claims["aud"] == service.origin
    assert push.headers["urgency"] == "high" and int(push.headers["ttl"]) > 0
    _, inbox = run_app(phone, "inbox")
    (request,) = [m for m in inbox["messages"] if m["id"] == wake_up["message"]]
    assert request["account"] == account and request["type"] == "login"
    code, answer = run_app(phone, "approve", request["id"], "--number", str(provoked["number"]), "--pin", PIN)
    assert code == 0, answer
    _, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["method"] == "push"


def test_a_gone_subscription_is_dropped_and_the_request_still_pulled(
    system: RunningSystem, push_service: tuple[WebPushServer, TestCA], tmp_path: Path
) -> None:
    service, _ = push_service
    subscription = service.subscribe(_vapid_key(system))
    phone = _phone(system, tmp_path / "phone", subscription)
    mailbox = _mailbox_of(phone)
    nonce, _account = logged_in_once(system, phone, "xavier")
    service.drop(subscription)
    refused_before = len(service.refused)
    api = ns_api(system)
    status, provoked = api.call(
        "POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce}
    )
    assert status == 200, provoked
    assert service.refused[refused_before:] == [(410, "the subscription has expired or was unsubscribed")]
    assert _push_state(system, mailbox) == ("none", None)
    # The dropped subscription is never tried again.
    status, provoked = api.call(
        "POST", "/v1/servers/default/sessions/provokelogin", headers={"X-nonce": nonce}
    )
    assert status == 200, provoked
    assert len(service.refused) == refused_before + 1
    # Pull stays: the request waits in the mailbox, and approving it logs in.
    _, inbox = run_app(phone, "inbox")
    request = [m for m in inbox["messages"] if m.get("type") == "login" and m["userid"] == "xavier"][-1]
    code, answer = run_app(phone, "approve", request["id"], "--number", str(provoked["number"]), "--pin", PIN)
    assert code == 0, answer
    _, session = api.call("GET", "/v1/servers/default/sessions/", headers={"X-nonce": nonce})
    assert session["loggedin"] is True and session["userid"] == "xavier"


def test_an_unusable_subscription_is_refused_at_registration(system: RunningSystem, tmp_path: Path) -> None:
    assert run_app(tmp_path, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
    plain = {"endpoint": "http://127.0.0.1:9/push/x", "keys": {"p256dh": "AA", "auth": "AA"}}
    code, answer = run_app(
        tmp_path, "register", "--pin", PIN, "--push-provider", "webpush", "--push-token", json.dumps(plain)
    )
    assert code == 1 and "Web Push subscription" in json.dumps(answer), answer
