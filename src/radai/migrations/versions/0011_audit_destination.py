"""audit log: where a C-MOVE sent the data (destination)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# A plain ALTER TABLE, not a batch operation: on SQLite a batch copies the table into a
# new one, which would drop the append-only triggers of migration 0004.
def upgrade() -> None:
    op.add_column("audit_log", sa.Column("destination", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "destination")
