"""The MC's mailboxes with Web Push: what registration accepts, a push through a local push service, and a
subscription the push service disowns being forgotten while the message stays for the app's pull."""

import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from authserver.mc.mailboxes import MailboxService
from authserver.operations import ChannelContext, OperationError
from authserver.push.webpush import EndpointPolicy, Vapid, WebPushProvider
from authserver.storage import db
from authserver.storage.flow_models import Mailbox
from sigmai import PeerKey
from sigmai.constants import KEY_TYPE_ED25519
from tests.pushservers import TestCA
from tests.pushservers.webpush_server import WebPushServer


def _context() -> ChannelContext:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()

    def no_export(_label: bytes, _context: bytes, _length: int) -> bytes:
        raise AssertionError("not used here")

    return ChannelContext("mc", PeerKey.parse(KEY_TYPE_ED25519, raw), b"\0" * 32, b"\0" * 32, no_export)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("webpush-mailbox-ca"))


@pytest.fixture(scope="module")
def service(ca: TestCA) -> Iterator[WebPushServer]:
    server = WebPushServer(ca.issue())
    yield server
    server.stop()


@pytest.fixture
def engine(db_uri: str) -> Iterator[Engine]:
    """On each supported database: forgetting a subscription compares a TEXT column."""
    made = db.create_engine_for(db_uri)
    db.upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def mailboxes(engine: Engine, ca: TestCA) -> Iterator[MailboxService]:
    provider = WebPushProvider(
        Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:ops@example.org"),
        policy=EndpointPolicy(allow_private=True),
        ca_file=str(ca.ca_file),
    )
    yield MailboxService(engine, {"webpush": provider})
    provider.close()


def _stored(engine: Engine, mailbox: str) -> Mailbox:
    with Session(engine) as session:
        row = session.scalar(select(Mailbox).where(Mailbox.id == mailbox))
        assert row is not None
        return row


def test_registration_keeps_the_subscription_in_canonical_form(
    mailboxes: MailboxService, service: WebPushServer, engine: Engine
) -> None:
    key = mailboxes.vapid_public_key()
    assert key is not None and mailboxes.webpush_key(_context(), {}) == {"vapid_public_key": key}
    subscription = service.subscribe(key).to_json()
    context = _context()
    answer = mailboxes.register(context, {"push_provider": "webpush", "push_token": subscription})
    row = _stored(engine, answer["mailbox"])
    assert row.push_provider == "webpush" and row.push_token is None
    assert json.loads(row.push_subscription or "") == subscription
    # Moving to FCM (say, the app now runs natively) forgets the subscription.
    mailboxes.register(context, {"push_provider": "fcm", "push_token": "f" * 40})
    row = _stored(engine, answer["mailbox"])
    assert (row.push_provider, row.push_token, row.push_subscription) == ("fcm", "f" * 40, None)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "not json",
        {"endpoint": "http://push.example.net/x", "keys": {"p256dh": "A", "auth": "A"}},
        ["https://push.example.net/x"],
    ],
    ids=["missing", "empty", "not-json", "http", "list"],
)
def test_registration_refuses_what_is_no_usable_subscription(
    mailboxes: MailboxService, token: object
) -> None:
    with pytest.raises(OperationError) as refused:
        mailboxes.register(_context(), {"push_provider": "webpush", "push_token": token})
    assert refused.value.code == "bad_request"


def test_push_settings_change_without_touching_the_mailbox_token(
    mailboxes: MailboxService, service: WebPushServer, engine: Engine
) -> None:
    """mailbox.push: a web app that allowed notifications after set-up hands its subscription over; the
    token ns holds for the mailbox stays, so every enrolled account keeps reaching it."""
    context = _context()
    answer = mailboxes.register(context, {"push_provider": "none"})
    before = _stored(engine, answer["mailbox"]).token_hash
    subscription = service.subscribe(mailboxes.vapid_public_key() or "").to_json()
    changed = mailboxes.set_push(
        context, {"push_provider": "webpush", "push_token": json.dumps(subscription)}
    )
    assert changed == {"mailbox": answer["mailbox"], "push_provider": "webpush"}
    row = _stored(engine, answer["mailbox"])
    assert row.token_hash == before and json.loads(row.push_subscription or "") == subscription
    # What registration refuses, this refuses too, and the stored subscription stays.
    with pytest.raises(OperationError) as refused:
        mailboxes.set_push(context, {"push_provider": "webpush", "push_token": {"endpoint": "http://x/"}})
    assert refused.value.code == "bad_request"
    assert json.loads(_stored(engine, answer["mailbox"]).push_subscription or "") == subscription
    mailboxes.set_push(context, {"push_provider": "none"})
    row = _stored(engine, answer["mailbox"])
    assert (row.push_provider, row.push_subscription, row.token_hash) == ("none", None, before)
    # Only a device with a mailbox: another key changes nothing.
    with pytest.raises(OperationError) as unknown:
        mailboxes.set_push(_context(), {"push_provider": "none"})
    assert unknown.value.code == "no_mailbox"


def test_without_web_push_the_key_operation_says_so(engine: Engine) -> None:
    bare = MailboxService(engine, {})
    assert bare.vapid_public_key() is None
    with pytest.raises(OperationError) as refused:
        bare.webpush_key(_context(), {})
    assert refused.value.code == "unavailable"


def _registered(mailboxes: MailboxService, service: WebPushServer) -> tuple[ChannelContext, str, str]:
    key = mailboxes.vapid_public_key()
    assert key is not None
    subscription = service.subscribe(key)
    context = _context()
    answer = mailboxes.register(context, {"push_provider": "webpush", "push_token": subscription.to_json()})
    return context, answer["mailbox"], answer["token"]


def test_a_send_pushes_and_a_gone_subscription_is_forgotten_but_the_message_kept(
    mailboxes: MailboxService, service: WebPushServer, engine: Engine
) -> None:
    context, mailbox, token = _registered(mailboxes, service)
    sent = mailboxes.send(mailbox, token, b"sealed-1", sender="ns", collapse_id="login:1", ttl=60)
    assert sent.pushed
    assert json.loads(service.received[-1].plaintext) == {"mailbox": mailbox, "message": sent.message_id}
    stored = _stored(engine, mailbox).push_subscription or ""
    service.drop(service.find(json.loads(stored)["endpoint"]))
    gone = mailboxes.send(mailbox, token, b"sealed-2", sender="ns", collapse_id="login:2", ttl=60)
    assert not gone.pushed
    row = _stored(engine, mailbox)
    assert (row.push_provider, row.push_subscription) == ("none", None)
    pulled = mailboxes.fetch(context, {})["messages"]
    assert [m["id"] for m in pulled] == [sent.message_id, gone.message_id]


def test_a_subscription_registered_since_is_not_forgotten(
    mailboxes: MailboxService, service: WebPushServer, engine: Engine
) -> None:
    """The push service's 410 answers for the old subscription; if the app registered a new one in the
    meantime, that one stays."""
    context, mailbox, _ = _registered(mailboxes, service)
    old = _stored(engine, mailbox).push_subscription or ""
    key = mailboxes.vapid_public_key() or ""
    mailboxes.register(context, {"push_provider": "webpush", "push_token": service.subscribe(key).to_json()})
    new = _stored(engine, mailbox).push_subscription
    assert new != old
    mailboxes._forget_push_token(mailbox, "webpush", old)
    assert _stored(engine, mailbox).push_subscription == new
    mailboxes._forget_push_token(mailbox, "webpush", new or "")
    assert _stored(engine, mailbox).push_provider == "none"
