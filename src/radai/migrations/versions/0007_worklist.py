"""worklist tables: reading state, verdicts, missed findings, reports and their verdicts

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('missed_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=True),
    sa.Column('code_value', sa.String(length=64), nullable=False),
    sa.Column('code_scheme', sa.String(length=16), nullable=False),
    sa.Column('code_meaning', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_missed_findings_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_missed_findings')),
    sa.UniqueConstraint('study_pk', 'reader', 'code_scheme', 'code_value', name=op.f('uq_missed_findings_study_pk_reader_code_scheme_code_value'))
    )
    with op.batch_alter_table('missed_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_missed_findings_study_pk'), ['study_pk'], unique=False)

    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signed_by', sa.String(length=64), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=True),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=True),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_reports_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_reports_sop_instance_uid')),
    sa.UniqueConstraint('study_pk', 'version', name=op.f('uq_reports_study_pk_version'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_study_pk'), ['study_pk'], unique=False)

    op.create_table('study_readings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_by', sa.String(length=64), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sa.String(length=64), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_study_readings_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_readings')),
    sa.UniqueConstraint('study_pk', name=op.f('uq_study_readings_study_pk'))
    )
    with op.batch_alter_table('study_readings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_readings_status'), ['status'], unique=False)

    op.create_table('report_verdicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_pk', sa.Integer(), nullable=False),
    sa.Column('finding_pk', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=True),
    sa.Column('model_version', sa.String(length=32), nullable=True),
    sa.Column('code_value', sa.String(length=64), nullable=False),
    sa.Column('code_scheme', sa.String(length=16), nullable=False),
    sa.Column('code_meaning', sa.String(length=64), nullable=False),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('ai_positive', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['finding_pk'], ['findings.id'], name=op.f('fk_report_verdicts_finding_pk_findings')),
    sa.ForeignKeyConstraint(['report_pk'], ['reports.id'], name=op.f('fk_report_verdicts_report_pk_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_verdicts'))
    )
    with op.batch_alter_table('report_verdicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_verdicts_finding_pk'), ['finding_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_verdicts_report_pk'), ['report_pk'], unique=False)

    op.create_table('verdicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_pk', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['finding_pk'], ['findings.id'], name=op.f('fk_verdicts_finding_pk_findings')),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_verdicts_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verdicts')),
    sa.UniqueConstraint('finding_pk', 'reader', name=op.f('uq_verdicts_finding_pk_reader'))
    )
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verdicts_finding_pk'), ['finding_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_verdicts_study_pk'), ['study_pk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verdicts_study_pk'))
        batch_op.drop_index(batch_op.f('ix_verdicts_finding_pk'))

    op.drop_table('verdicts')
    with op.batch_alter_table('report_verdicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_verdicts_report_pk'))
        batch_op.drop_index(batch_op.f('ix_report_verdicts_finding_pk'))

    op.drop_table('report_verdicts')
    with op.batch_alter_table('study_readings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_readings_status'))

    op.drop_table('study_readings')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_study_pk'))

    op.drop_table('reports')
    with op.batch_alter_table('missed_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_missed_findings_study_pk'))

    op.drop_table('missed_findings')
