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

    op.create_table('validation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('model_state', sa.String(length=16), nullable=False),
    sa.Column('dataset_version_pk', sa.Integer(), nullable=False),
    sa.Column('dataset_name', sa.String(length=64), nullable=False),
    sa.Column('dataset_version', sa.Integer(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('thresholds', sa.Text(), nullable=False),
    sa.Column('level', sa.Float(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=64), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('n_studies', sa.Integer(), nullable=False),
    sa.Column('n_processed', sa.Integer(), nullable=False),
    sa.Column('n_defects', sa.Integer(), nullable=False),
    sa.Column('gate_passed', sa.Boolean(), nullable=True),
    sa.Column('gate_reasons', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('report_html', sa.Text(), nullable=True),
    sa.Column('report_path', sa.String(length=1024), nullable=True),
    sa.Column('promoted', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_version_pk'], ['dataset_versions.id'], name=op.f('fk_validation_runs_dataset_version_pk_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_runs'))
    )
    op.create_index(op.f('ix_validation_runs_dataset_version_pk'), 'validation_runs', ['dataset_version_pk'], unique=False)
    op.create_index(op.f('ix_validation_runs_model_id'), 'validation_runs', ['model_id'], unique=False)
    op.create_table('validation_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=True),
    sa.Column('task_pk', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('defect_category', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('subgroups', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['validation_runs.id'], name=op.f('fk_validation_studies_run_pk_validation_runs')),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_validation_studies_study_pk_studies')),
    sa.ForeignKeyConstraint(['task_pk'], ['inference_tasks.id'], name=op.f('fk_validation_studies_task_pk_inference_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_studies')),
    sa.UniqueConstraint('run_pk', 'key', name=op.f('uq_validation_studies_run_pk_key'))
    )
    op.create_index(op.f('ix_validation_studies_run_pk'), 'validation_studies', ['run_pk'], unique=False)
    op.create_index(op.f('ix_validation_studies_study_pk'), 'validation_studies', ['study_pk'], unique=False)
    op.create_index(op.f('ix_validation_studies_task_pk'), 'validation_studies', ['task_pk'], unique=False)
    op.create_table('validation_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_result_pk', sa.Integer(), nullable=False),
    sa.Column('code_scheme', sa.String(length=16), nullable=False),
    sa.Column('code_value', sa.String(length=64), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('truth', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['study_result_pk'], ['validation_studies.id'], name=op.f('fk_validation_scores_study_result_pk_validation_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_scores')),
    sa.UniqueConstraint('study_result_pk', 'code_scheme', 'code_value', name=op.f('uq_validation_scores_study_result_pk_code_scheme_code_value'))
    )
    op.create_index(op.f('ix_validation_scores_study_result_pk'), 'validation_scores', ['study_result_pk'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_validation_scores_study_result_pk'), table_name='validation_scores')
    op.drop_table('validation_scores')
    op.drop_index(op.f('ix_validation_studies_task_pk'), table_name='validation_studies')
    op.drop_index(op.f('ix_validation_studies_study_pk'), table_name='validation_studies')
    op.drop_index(op.f('ix_validation_studies_run_pk'), table_name='validation_studies')
    op.drop_table('validation_studies')
    op.drop_index(op.f('ix_validation_runs_model_id'), table_name='validation_runs')
    op.drop_index(op.f('ix_validation_runs_dataset_version_pk'), table_name='validation_runs')
    op.drop_table('validation_runs')
    with op.batch_alter_table('inference_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inference_tasks_validation_run_id'))
        batch_op.drop_column('validation_run_id')
        batch_op.drop_column('purpose')
