"""results tables: result sets, result objects, delivery outbox and attempts

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('result_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_pk', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pathology_flag', sa.Boolean(), nullable=True),
    sa.Column('confidence_level', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('produced_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_result_sets_study_pk_studies')),
    sa.ForeignKeyConstraint(['task_pk'], ['inference_tasks.id'], name=op.f('fk_result_sets_task_pk_inference_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_sets')),
    sa.UniqueConstraint('task_pk', name=op.f('uq_result_sets_task_pk'))
    )
    with op.batch_alter_table('result_sets', schema=None) as batch_op:
        batch_op.create_index('ix_result_sets_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_sets_study_pk'), ['study_pk'], unique=False)

    op.create_table('result_objects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('result_set_pk', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['result_set_pk'], ['result_sets.id'], name=op.f('fk_result_objects_result_set_pk_result_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_objects')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_result_objects_sop_instance_uid'))
    )
    with op.batch_alter_table('result_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_objects_result_set_pk'), ['result_set_pk'], unique=False)

    op.create_table('result_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('object_pk', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['object_pk'], ['result_objects.id'], name=op.f('fk_result_deliveries_object_pk_result_objects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_deliveries')),
    sa.UniqueConstraint('object_pk', 'destination', name=op.f('uq_result_deliveries_object_pk_destination'))
    )
    with op.batch_alter_table('result_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_result_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_deliveries_object_pk'), ['object_pk'], unique=False)

    op.create_table('result_delivery_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_pk', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('detail', sa.String(length=256), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_pk'], ['result_deliveries.id'], name=op.f('fk_result_delivery_attempts_delivery_pk_result_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_delivery_attempts'))
    )
    with op.batch_alter_table('result_delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_delivery_attempts_delivery_pk'), ['delivery_pk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('result_delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_delivery_attempts_delivery_pk'))

    op.drop_table('result_delivery_attempts')
    with op.batch_alter_table('result_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_deliveries_object_pk'))
        batch_op.drop_index('ix_result_deliveries_due')

    op.drop_table('result_deliveries')
    with op.batch_alter_table('result_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_objects_result_set_pk'))

    op.drop_table('result_objects')
    with op.batch_alter_table('result_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_sets_study_pk'))
        batch_op.drop_index('ix_result_sets_due')

    op.drop_table('result_sets')
