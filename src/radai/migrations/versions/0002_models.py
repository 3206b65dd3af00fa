"""models tables

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=1024), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('vendor', sa.String(length=128), nullable=False),
    sa.Column('licence', sa.String(length=256), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('model_id', 'version', name=op.f('uq_models_model_id_version'))
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_state'), ['state'], unique=False)

    op.create_table('model_state_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_pk'], ['models.id'], name=op.f('fk_model_state_changes_model_pk_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_state_changes'))
    )
    with op.batch_alter_table('model_state_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_state_changes_model_pk'), ['model_pk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_state_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_state_changes_model_pk'))

    op.drop_table('model_state_changes')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_state'))
        batch_op.drop_index(batch_op.f('ix_models_model_id'))

    op.drop_table('models')
