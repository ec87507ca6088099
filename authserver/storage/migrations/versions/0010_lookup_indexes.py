"""Indexes for lookups that walked whole tables, found by the plans of the statements the flows send:

- ns_sessions: (hsid, server_id, created_at) in place of the index on hsid alone, so that a login's lookups
  of its hsid use it on every database, SQLite (no statistics) included, and read the newest first
  without sorting; (user_id, server_id), for a user's sessions; expires_at, the range the retention
  purge deletes (on ns_enrolments too);
- ns_accounts: user_pk (a user's accounts; a user deleted sets it NULL) and thumbprint (evidence checks,
  which name the key and not the server);
- idp_rp_logins: (client_id, name_id), the lookup of a SAML LogoutRequest.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = (
    ("ix_ns_sessions_hsid_server_id", "ns_sessions", ["hsid", "server_id", "created_at"]),
    ("ix_ns_sessions_user_id_server_id", "ns_sessions", ["user_id", "server_id"]),
    ("ix_ns_sessions_expires_at", "ns_sessions", ["expires_at"]),
    ("ix_ns_enrolments_expires_at", "ns_enrolments", ["expires_at"]),
    ("ix_ns_accounts_user_pk", "ns_accounts", ["user_pk"]),
    ("ix_ns_accounts_thumbprint", "ns_accounts", ["thumbprint"]),
    ("ix_idp_rp_logins_client_id_name_id", "idp_rp_logins", ["client_id", "name_id"]),
)


def upgrade() -> None:
    for name, table, columns in NEW:
        op.create_index(name, table, columns)
    op.drop_index("ix_ns_sessions_hsid", table_name="ns_sessions")


def downgrade() -> None:
    op.create_index("ix_ns_sessions_hsid", "ns_sessions", ["hsid"])
    for name, table, _columns in reversed(NEW):
        op.drop_index(name, table_name=table)
