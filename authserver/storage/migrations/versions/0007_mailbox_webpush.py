"""Web Push subscriptions for MC mailboxes: an endpoint URL and two keys, as JSON, too long for the
256-character push_token that holds FCM and APNs device tokens.

A new column rather than a wider push_token: widening a column on SQLite means copying the table, and
dropping the old mc_mailboxes there would cascade to every pending message.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mc_mailboxes", sa.Column("push_subscription", sa.Text(), nullable=True))


def downgrade() -> None:
    # Mailboxes that pushed by Web Push fall back to pulling, which the app does anyway.
    mailboxes = sa.table("mc_mailboxes", sa.column("push_provider", sa.String(8)))
    op.execute(mailboxes.update().where(mailboxes.c.push_provider == "webpush").values(push_provider="none"))
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode: it copies the table and drops the old one, and on SQLite that drop deletes every
        # pending message through the foreign key's ON DELETE CASCADE. SQLite drops a plain column
        # natively since 3.35.
        op.execute("ALTER TABLE mc_mailboxes DROP COLUMN push_subscription")
    else:
        op.drop_column("mc_mailboxes", "push_subscription")
