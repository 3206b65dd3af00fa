"""quality tables: validation runs, their studies and scores; validation tasks

Inference tasks get a purpose (clinical or validation) and the validation run they
belong to, so that a validation run goes through the same task pipeline.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inference_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), server_default='clinical', nullable=False))
        batch_op.add_column(sa.Column('validation_run_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_inference_tasks_validation_run_id'), ['validation_run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inference_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inference_tasks_validation_run_id'))
        batch_op.drop_column('validation_run_id')
        batch_op.drop_column('purpose')
