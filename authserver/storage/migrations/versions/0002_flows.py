"""Tables of the flows: ns servers, users, accounts, enrolments, sessions, transactions, API access;
sfs app instances; mc mailboxes and messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written by hand and frozen, like 0001: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _id(name: str = "id") -> sa.Column:
    return sa.Column(name, sa.Integer(), autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "ns_servers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("logo_url", sa.String(500), nullable=True),
        sa.Column("announce", sa.Text(), nullable=False),
        sa.Column("login_pin_timeout", sa.Integer(), nullable=False),
        sa.Column("transaction_pin_timeout", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ns_servers"),
    )
    op.create_table(
        "ns_users",
        _id(),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"], ["ns_servers.id"], name="fk_ns_users_server_id_ns_servers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ns_users"),
        sa.UniqueConstraint("server_id", "user_id", name="uq_ns_users_server_id_user_id"),
    )
    op.create_table(
        "ns_accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=True),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("sfs_key_hash", sa.String(64), nullable=False),
        sa.Column("mc_key_hash", sa.String(64), nullable=True),
        sa.Column("mc_mailbox", sa.String(64), nullable=True),
        sa.Column("mc_token", sa.String(128), nullable=True),
        sa.Column("encryption_key", sa.LargeBinary(), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("last_login_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"], ["ns_servers.id"], name="fk_ns_accounts_server_id_ns_servers", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["ns_users.id"], name="fk_ns_accounts_user_pk_ns_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ns_accounts"),
        sa.UniqueConstraint("server_id", "thumbprint", name="uq_ns_accounts_server_id_thumbprint"),
    )
    op.create_index("ix_ns_accounts_server_id", "ns_accounts", ["server_id"])
    op.create_table(
        "ns_enrolments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"], ["ns_servers.id"], name="fk_ns_enrolments_server_id_ns_servers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ns_enrolments"),
    )
    op.create_index("ix_ns_enrolments_server_id", "ns_enrolments", ["server_id"])
    op.create_table(
        "ns_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("hsid", sa.String(43), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("second_factor", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_by", sa.String(16), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ns_accounts.id"],
            name="fk_ns_sessions_account_id_ns_accounts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"], ["ns_servers.id"], name="fk_ns_sessions_server_id_ns_servers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ns_sessions"),
    )
    op.create_index("ix_ns_sessions_account_id", "ns_sessions", ["account_id"])
    op.create_index("ix_ns_sessions_hsid", "ns_sessions", ["hsid"])
    op.create_index("ix_ns_sessions_server_id", "ns_sessions", ["server_id"])
    op.create_table(
        "ns_transactions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("decided_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["ns_servers.id"],
            name="fk_ns_transactions_server_id_ns_servers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["ns_sessions.id"],
            name="fk_ns_transactions_session_id_ns_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ns_transactions"),
    )
    op.create_index("ix_ns_transactions_server_id", "ns_transactions", ["server_id"])
    op.create_index("ix_ns_transactions_session_id", "ns_transactions", ["session_id"])
    for table, hashed in (("api_keys", "key_hash"), ("api_client_certificates", "fingerprint")):
        op.create_table(
            table,
            _id(),
            sa.Column("component", sa.String(8), nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column(hashed, sa.String(64), nullable=False),
            sa.Column("roles", sa.Text(), nullable=False),
            sa.Column("server_id", sa.String(32), nullable=True),
            sa.Column("created_at", UTC_DATETIME, nullable=False),
            sa.Column("revoked_at", UTC_DATETIME, nullable=True),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.UniqueConstraint(hashed, name=f"uq_{table}_{hashed}"),
        )
    op.create_table(
        "sfs_app_instances",
        _id(),
        sa.Column("device_thumbprint", sa.String(64), nullable=False),
        sa.Column("oprf_key", sa.LargeBinary(), nullable=False),
        sa.Column("pin_verifier", sa.LargeBinary(), nullable=True),
        sa.Column("biometric_key", sa.LargeBinary(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sfs_app_instances"),
        sa.UniqueConstraint("device_thumbprint", name="uq_sfs_app_instances_device_thumbprint"),
    )
    op.create_table(
        "mc_mailboxes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("device_thumbprint", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("push_provider", sa.String(8), nullable=False),
        sa.Column("push_token", sa.String(256), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_mailboxes"),
        sa.UniqueConstraint("device_thumbprint", name="uq_mc_mailboxes_device_thumbprint"),
    )
    op.create_table(
        "mc_messages",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("mailbox_id", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("fetched_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mc_mailboxes.id"],
            name="fk_mc_messages_mailbox_id_mc_mailboxes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mc_messages"),
    )
    op.create_index("ix_mc_messages_mailbox_created", "mc_messages", ["mailbox_id", "created_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping them first fails on MariaDB, whose foreign keys need them.
    for table in (
        "mc_messages",
        "mc_mailboxes",
        "sfs_app_instances",
        "api_client_certificates",
        "api_keys",
        "ns_transactions",
        "ns_sessions",
        "ns_enrolments",
        "ns_accounts",
        "ns_users",
        "ns_servers",
    ):
        op.drop_table(table)
