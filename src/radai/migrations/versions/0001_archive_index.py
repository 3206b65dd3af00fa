"""archive index

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 00:11:31.806324
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_key', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('issuer_of_patient_id', sa.String(length=64), nullable=False),
    sa.Column('patient_name', sa.String(length=324), nullable=False),
    sa.Column('patient_birth_date', sa.String(length=8), nullable=False),
    sa.Column('patient_sex', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('patient_key', name=op.f('uq_patients_patient_key'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_patients_patient_name'), ['patient_name'], unique=False)

    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_pk', sa.Integer(), nullable=False),
    sa.Column('study_date', sa.String(length=8), nullable=False),
    sa.Column('study_time', sa.String(length=32), nullable=False),
    sa.Column('accession_number', sa.String(length=64), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('study_description', sa.String(length=64), nullable=False),
    sa.Column('referring_physician_name', sa.String(length=324), nullable=False),
    sa.Column('patient_age', sa.String(length=4), nullable=False),
    sa.Column('modalities_in_study', sa.String(length=256), nullable=False),
    sa.Column('number_of_series', sa.Integer(), nullable=False),
    sa.Column('number_of_instances', sa.Integer(), nullable=False),
    sa.Column('first_received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('change_seq', sa.BigInteger(), nullable=False),
    sa.Column('stable_seq', sa.BigInteger(), nullable=False),
    sa.Column('stable_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_pk'], ['patients.id'], name=op.f('fk_studies_patient_pk_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('study_instance_uid', name=op.f('uq_studies_study_instance_uid'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_last_received_at'), ['last_received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_patient_pk'), ['patient_pk'], unique=False)
        batch_op.create_index('ix_studies_pending_stability', ['stable_seq', 'change_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_study_date'), ['study_date'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('series_description', sa.String(length=64), nullable=False),
    sa.Column('body_part_examined', sa.String(length=64), nullable=False),
    sa.Column('view_position', sa.String(length=16), nullable=False),
    sa.Column('series_date', sa.String(length=8), nullable=False),
    sa.Column('series_time', sa.String(length=32), nullable=False),
    sa.Column('performed_procedure_step_start_date', sa.String(length=8), nullable=False),
    sa.Column('performed_procedure_step_start_time', sa.String(length=32), nullable=False),
    sa.Column('institution_name', sa.String(length=64), nullable=False),
    sa.Column('manufacturer', sa.String(length=64), nullable=False),
    sa.Column('manufacturer_model_name', sa.String(length=64), nullable=False),
    sa.Column('station_name', sa.String(length=16), nullable=False),
    sa.Column('source_ae_title', sa.String(length=16), nullable=False),
    sa.Column('number_of_instances', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_series_study_pk_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('series_instance_uid', name=op.f('uq_series_series_instance_uid'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_modality'), ['modality'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_study_pk'), ['study_pk'], unique=False)

    op.create_table('instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('series_pk', sa.Integer(), nullable=False),
    sa.Column('instance_number', sa.Integer(), nullable=True),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('bits_allocated', sa.Integer(), nullable=True),
    sa.Column('number_of_frames', sa.Integer(), nullable=True),
    sa.Column('content_date', sa.String(length=8), nullable=False),
    sa.Column('content_time', sa.String(length=32), nullable=False),
    sa.Column('path', sa.String(length=128), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ae_title', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_pk'], ['series.id'], name=op.f('fk_instances_series_pk_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_instances_sop_instance_uid'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instances_series_pk'), ['series_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_sop_class_uid'), ['sop_class_uid'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_sop_class_uid'))
        batch_op.drop_index(batch_op.f('ix_instances_series_pk'))

    op.drop_table('instances')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_study_pk'))
        batch_op.drop_index(batch_op.f('ix_series_modality'))

    op.drop_table('series')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_study_date'))
        batch_op.drop_index('ix_studies_pending_stability')
        batch_op.drop_index(batch_op.f('ix_studies_patient_pk'))
        batch_op.drop_index(batch_op.f('ix_studies_last_received_at'))
        batch_op.drop_index(batch_op.f('ix_studies_accession_number'))

    op.drop_table('studies')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_patient_name'))
        batch_op.drop_index(batch_op.f('ix_patients_patient_id'))

    op.drop_table('patients')
