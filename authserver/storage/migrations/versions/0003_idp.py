"""Tables of the IdP: user directory, signing keys, browser sessions, relying-party logins, OIDC clients,
refresh tokens and consents, SAML service providers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "idp_users",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_idp_users"),
    )
    op.create_table(
        "idp_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("retired_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_idp_signing_keys"),
    )
    op.create_table(
        "idp_sessions",
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("ns_nonce", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("acr", sa.String(100), nullable=False),
        sa.Column("auth_time", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("ended_by", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("sid", name="pk_idp_sessions"),
    )
    op.create_index("ix_idp_sessions_ns_nonce", "idp_sessions", ["ns_nonce"])
    op.create_index("ix_idp_sessions_user_id", "idp_sessions", ["user_id"])
    op.create_index("ix_idp_sessions_expires_at", "idp_sessions", ["expires_at"])
    op.create_index("ix_idp_sessions_ended_at", "idp_sessions", ["ended_at"])
    op.create_table(
        "idp_rp_logins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("name_id", sa.String(255), nullable=True),
        sa.Column("session_index", sa.String(100), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idp_rp_logins"),
        sa.UniqueConstraint("sid", "protocol", "client_id", name="uq_idp_rp_logins_sid_protocol_client_id"),
    )
    op.create_index("ix_idp_rp_logins_sid", "idp_rp_logins", ["sid"])
    op.create_table(
        "oidc_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oidc_clients"),
    )
    op.create_table(
        "oidc_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("sid", sa.String(64), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("claims_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_oidc_refresh_tokens"),
    )
    op.create_index("ix_oidc_refresh_tokens_family", "oidc_refresh_tokens", ["family"])
    op.create_index("ix_oidc_refresh_tokens_client_id", "oidc_refresh_tokens", ["client_id"])
    op.create_index("ix_oidc_refresh_tokens_sid", "oidc_refresh_tokens", ["sid"])
    op.create_index("ix_oidc_refresh_tokens_expires_at", "oidc_refresh_tokens", ["expires_at"])
    op.create_table(
        "oidc_consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("granted_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_oidc_consents"),
        sa.UniqueConstraint("user_id", "client_id", name="uq_oidc_consents_user_id_client_id"),
    )
    op.create_table(
        "saml_service_providers",
        sa.Column("entity_id", sa.String(500), nullable=False),
        sa.Column("metadata_xml", LONG_TEXT, nullable=False),
        sa.Column("name_id_format", sa.String(100), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("encrypt_assertions", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name="pk_saml_service_providers"),
    )


def downgrade() -> None:
    for table in (
        "saml_service_providers",
        "oidc_consents",
        "oidc_refresh_tokens",
        "oidc_clients",
        "idp_rp_logins",
        "idp_sessions",
        "idp_signing_keys",
        "idp_users",
    ):
        op.drop_table(table)
