"""deid tables: vendor grants and the map of pseudonymous UIDs issued to vendors

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vendor_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('granted_by', sa.String(length=64), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_vendor_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vendor_grants')),
    sa.UniqueConstraint('user_id', 'study_instance_uid', name=op.f('uq_vendor_grants_user_id_study_instance_uid'))
    )
    op.create_index(op.f('ix_vendor_grants_study_instance_uid'), 'vendor_grants', ['study_instance_uid'], unique=False)
    op.create_index(op.f('ix_vendor_grants_user_id'), 'vendor_grants', ['user_id'], unique=False)
    op.create_table('vendor_uid_map',
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('original', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'pseudonym', name=op.f('pk_vendor_uid_map'))
    )


def downgrade() -> None:
    op.drop_table('vendor_uid_map')
    op.drop_index(op.f('ix_vendor_grants_user_id'), table_name='vendor_grants')
    op.drop_index(op.f('ix_vendor_grants_study_instance_uid'), table_name='vendor_grants')
    op.drop_table('vendor_grants')
