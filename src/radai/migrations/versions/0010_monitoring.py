"""monitoring tables: task input profiles, alerts, webhook notifications, monitoring samples

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitoring_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('open_key', sa.String(length=64), nullable=True),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('window', sa.String(length=32), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=96), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('sample_size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_value', sa.Float(), nullable=False),
    sa.Column('last_evaluated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_alerts')),
    sa.UniqueConstraint('open_key', name=op.f('uq_monitoring_alerts_open_key'))
    )
    with op.batch_alter_table('monitoring_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_alerts_model', ['model_id', 'model_version'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_alerts_state'), ['state'], unique=False)

    op.create_table('monitoring_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('size_requested', sa.Integer(), nullable=False),
    sa.Column('eligible', sa.Integer(), nullable=False),
    sa.Column('size_drawn', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_samples'))
    )
    with op.batch_alter_table('monitoring_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_samples_model_id'), ['model_id'], unique=False)

    op.create_table('monitoring_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_pk', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['alert_pk'], ['monitoring_alerts.id'], name=op.f('fk_monitoring_notifications_alert_pk_monitoring_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_notifications')),
    sa.UniqueConstraint('alert_pk', 'event', name=op.f('uq_monitoring_notifications_alert_pk_event'))
    )
    with op.batch_alter_table('monitoring_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_notifications_due', ['state', 'next_attempt_at'], unique=False)

    op.create_table('monitoring_sample_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_pk', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('task_pk', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('stratum', sa.String(length=16), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sample_pk'], ['monitoring_samples.id'], name=op.f('fk_monitoring_sample_studies_sample_pk_monitoring_samples'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_monitoring_sample_studies_study_pk_studies')),
    sa.ForeignKeyConstraint(['task_pk'], ['inference_tasks.id'], name=op.f('fk_monitoring_sample_studies_task_pk_inference_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_sample_studies')),
    sa.UniqueConstraint('sample_pk', 'study_pk', name=op.f('uq_monitoring_sample_studies_sample_pk_study_pk'))
    )
    with op.batch_alter_table('monitoring_sample_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_sample_studies_reader'), ['reader'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitoring_sample_studies_study_pk'), ['study_pk'], unique=False)

    op.create_table('monitoring_task_inputs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_pk', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('institution', sa.String(length=64), nullable=False),
    sa.Column('calling_ae', sa.String(length=16), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('manufacturer', sa.String(length=64), nullable=False),
    sa.Column('body_part', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('pixel_spacing_mm', sa.Float(), nullable=True),
    sa.Column('patient_age_years', sa.Float(), nullable=True),
    sa.Column('patient_sex', sa.String(length=16), nullable=False),
    sa.Column('last_input_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=128), nullable=False),
    sa.Column('profiled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_pk'], ['inference_tasks.id'], name=op.f('fk_monitoring_task_inputs_task_pk_inference_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_task_inputs')),
    sa.UniqueConstraint('task_pk', name=op.f('uq_monitoring_task_inputs_task_pk'))
    )
    with op.batch_alter_table('monitoring_task_inputs', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_task_inputs_model', ['model_id', 'model_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('monitoring_task_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_monitoring_task_inputs_model')

    op.drop_table('monitoring_task_inputs')
    with op.batch_alter_table('monitoring_sample_studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_sample_studies_study_pk'))
        batch_op.drop_index(batch_op.f('ix_monitoring_sample_studies_reader'))

    op.drop_table('monitoring_sample_studies')
    with op.batch_alter_table('monitoring_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_monitoring_notifications_due')

    op.drop_table('monitoring_notifications')
    with op.batch_alter_table('monitoring_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_samples_model_id'))

    op.drop_table('monitoring_samples')
    with op.batch_alter_table('monitoring_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_alerts_state'))
        batch_op.drop_index('ix_monitoring_alerts_model')

    op.drop_table('monitoring_alerts')
