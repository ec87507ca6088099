"""The audit trail: security-relevant events of ns and sfs (logins, wrong PINs, lockouts, enrolments,
account and API key changes), kept for NEXTAUTH_<NS|SFS>_AUDIT_RETENTION_DAYS and queryable over REST.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("time", UTC_DATETIME, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("component", sa.String(8), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_time", "audit_events", ["time"])
    op.create_index("ix_audit_events_type", "audit_events", ["type"])
    op.create_index("ix_audit_events_server_id", "audit_events", ["server_id"])
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_index("ix_audit_events_server_id", table_name="audit_events")
    op.drop_index("ix_audit_events_type", table_name="audit_events")
    op.drop_index("ix_audit_events_time", table_name="audit_events")
    op.drop_table("audit_events")
