"""Migration 0007 (Web Push subscriptions of MC mailboxes): existing mailboxes keep what they had, and a
downgrade leaves Web Push mailboxes pulling instead of pointing at a provider that is gone, their pending
messages still there."""

from alembic import command
from sqlalchemy import Connection, Engine, text

from authserver.storage import db

MAILBOX = text(
    "INSERT INTO mc_mailboxes (id, device_thumbprint, token_hash, push_provider, push_token, created_at)"
    " VALUES (:i, :d, :h, :p, :t, CURRENT_TIMESTAMP)"
)
MESSAGE = text(
    "INSERT INTO mc_messages (id, mailbox_id, sender, envelope, created_at, expires_at)"
    " VALUES (:i, :m, 'ns', :e, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)


def _mailbox(connection: Connection, mailbox: str, provider: str, token: str | None) -> None:
    values = {"i": mailbox, "d": "d-" + mailbox, "h": b"\0" * 32, "p": provider, "t": token}
    connection.execute(MAILBOX, values)
    connection.execute(MESSAGE, {"i": "m-" + mailbox, "m": mailbox, "e": b"sealed"})


def test_upgrade_keeps_mailboxes_and_downgrade_turns_web_push_off(bare_engine: Engine) -> None:
    with bare_engine.connect() as connection:
        command.upgrade(db.alembic_config(connection), "0006")
        _mailbox(connection, "fcm-box", "fcm", "f" * 40)
        connection.commit()
        command.upgrade(db.alembic_config(connection), "0007")
        connection.commit()
        assert connection.execute(
            text("SELECT push_provider, push_token, push_subscription FROM mc_mailboxes")
        ).all() == [("fcm", "f" * 40, None)]
        _mailbox(connection, "web-box", "webpush", None)
        connection.execute(text("UPDATE mc_mailboxes SET push_subscription = '{}' WHERE id = 'web-box'"))
        connection.commit()
        command.downgrade(db.alembic_config(connection), "0006")
        connection.commit()
        rows = connection.execute(text("SELECT id, push_provider FROM mc_mailboxes ORDER BY id")).all()
        assert rows == [("fcm-box", "fcm"), ("web-box", "none")]
        messages = connection.execute(text("SELECT id FROM mc_messages ORDER BY id")).all()
        assert messages == [("m-fcm-box",), ("m-web-box",)]
    db.upgrade(bare_engine)
