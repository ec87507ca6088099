"""Roles granted to an API key or client certificate on one virtual server (api_grants), and key/value
attributes kept at ns: global, per server, privileged per server, per user (ns_attributes).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "api_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("principal_kind", sa.String(12), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["ns_servers.id"],
            name="fk_api_grants_server_id_ns_servers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_grants"),
        sa.UniqueConstraint(
            "principal_kind",
            "principal_id",
            "server_id",
            "role",
            name="uq_api_grants_principal_kind_principal_id_server_id_role",
        ),
    )
    op.create_index("ix_api_grants_server_id", "api_grants", ["server_id"])
    op.create_table(
        "ns_attributes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("server_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ns_attributes"),
        sa.UniqueConstraint(
            "scope", "server_id", "user_id", "name", name="uq_ns_attributes_scope_server_id_user_id_name"
        ),
    )


def downgrade() -> None:
    op.drop_table("ns_attributes")
    # The index goes with its table: MariaDB refuses to drop it alone while the foreign key uses it.
    op.drop_table("api_grants")
