"""Per-SP SAML options (signature algorithm, what is signed, assertion lifetime, attribute names, where the
metadata is fetched from), as JSON. NULL means the defaults, which are what every SP got before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Written by hand and frozen: it must not import the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("saml_service_providers", sa.Column("options", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("saml_service_providers") as batch:
        batch.drop_column("options")
