"""ns_sessions: one index on (hsid, server_id, created_at) in place of the one on hsid alone, so that a
login's lookups of its hsid use it on every database, SQLite (no statistics) included, and read the
newest first without sorting; and one on expires_at, the range the session retention purge deletes.

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


def upgrade() -> None:
    op.create_index("ix_ns_sessions_hsid_server_id", "ns_sessions", ["hsid", "server_id", "created_at"])
    op.drop_index("ix_ns_sessions_hsid", table_name="ns_sessions")
    op.create_index("ix_ns_sessions_expires_at", "ns_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_ns_sessions_expires_at", table_name="ns_sessions")
    op.create_index("ix_ns_sessions_hsid", "ns_sessions", ["hsid"])
    op.drop_index("ix_ns_sessions_hsid_server_id", table_name="ns_sessions")
