"""inference tables: routing decisions, inference tasks, findings

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('routing_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('input_instances', sa.Integer(), nullable=False),
    sa.Column('task_count', sa.Integer(), nullable=False),
    sa.Column('rules', sa.Text(), nullable=False),
    sa.Column('models', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_routing_decisions_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_decisions')),
    sa.UniqueConstraint('study_pk', 'change_seq', name=op.f('uq_routing_decisions_study_pk_change_seq'))
    )
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_decisions_study_pk'), ['study_pk'], unique=False)

    op.create_table('inference_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('series_pk', sa.Integer(), nullable=True),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('defect_category', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('input_count', sa.Integer(), nullable=True),
    sa.Column('batch_size', sa.Integer(), nullable=True),
    sa.Column('batch_tasks', sa.Integer(), nullable=True),
    sa.Column('queue_wait_ms', sa.Float(), nullable=True),
    sa.Column('preprocess_ms', sa.Float(), nullable=True),
    sa.Column('inference_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['series_pk'], ['series.id'], name=op.f('fk_inference_tasks_series_pk_series')),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_inference_tasks_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inference_tasks')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_inference_tasks_idempotency_key'))
    )
    with op.batch_alter_table('inference_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_inference_tasks_claim', ['model_id', 'model_version', 'state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inference_tasks_series_pk'), ['series_pk'], unique=False)
        batch_op.create_index('ix_inference_tasks_state_lease', ['state', 'lease_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inference_tasks_study_pk'), ['study_pk'], unique=False)

    op.create_table('findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_pk', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('series_pk', sa.Integer(), nullable=True),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('code_value', sa.String(length=64), nullable=False),
    sa.Column('code_scheme', sa.String(length=16), nullable=False),
    sa.Column('code_meaning', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('positive', sa.Boolean(), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('heatmap_path', sa.String(length=160), nullable=True),
    sa.Column('queue_wait_ms', sa.Float(), nullable=True),
    sa.Column('preprocess_ms', sa.Float(), nullable=True),
    sa.Column('inference_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_pk'], ['series.id'], name=op.f('fk_findings_series_pk_series')),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_findings_study_pk_studies')),
    sa.ForeignKeyConstraint(['task_pk'], ['inference_tasks.id'], name=op.f('fk_findings_task_pk_inference_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_findings')),
    sa.UniqueConstraint('task_pk', 'code_scheme', 'code_value', name=op.f('uq_findings_task_pk_code_scheme_code_value'))
    )
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_findings_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_findings_study_pk'), ['study_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_findings_task_pk'), ['task_pk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_findings_task_pk'))
        batch_op.drop_index(batch_op.f('ix_findings_study_pk'))
        batch_op.drop_index(batch_op.f('ix_findings_model_id'))

    op.drop_table('findings')
    with op.batch_alter_table('inference_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inference_tasks_study_pk'))
        batch_op.drop_index('ix_inference_tasks_state_lease')
        batch_op.drop_index(batch_op.f('ix_inference_tasks_series_pk'))
        batch_op.drop_index('ix_inference_tasks_claim')

    op.drop_table('inference_tasks')
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_decisions_study_pk'))

    op.drop_table('routing_decisions')
