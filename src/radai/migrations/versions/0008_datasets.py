"""datasets tables: datasets, versions, their studies and labels; frozen versions are immutable

Triggers make the database itself refuse any insert, update or delete of a frozen
version's studies and labels, and any change to (or removal of) a frozen version row.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_FROZEN_MESSAGE = "dataset version is frozen and cannot change"
_CHILD_TABLES = ("dataset_studies", "dataset_labels")


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_pk', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('inclusion_criteria', sa.Text(), nullable=False),
    sa.Column('label_method', sa.Text(), nullable=False),
    sa.Column('label_verification', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('frozen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('frozen_by', sa.String(length=64), nullable=True),
    sa.Column('manifest', sa.Text(), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['dataset_pk'], ['datasets.id'], name=op.f('fk_dataset_versions_dataset_pk_datasets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('dataset_pk', 'number', name=op.f('uq_dataset_versions_dataset_pk_number'))
    )
    op.create_index(op.f('ix_dataset_versions_dataset_pk'), 'dataset_versions', ['dataset_pk'], unique=False)
    op.create_table('dataset_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_pk', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['studies.id'], name=op.f('fk_dataset_studies_study_pk_studies')),
    sa.ForeignKeyConstraint(['version_pk'], ['dataset_versions.id'], name=op.f('fk_dataset_studies_version_pk_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_studies')),
    sa.UniqueConstraint('version_pk', 'key', name=op.f('uq_dataset_studies_version_pk_key')),
    sa.UniqueConstraint('version_pk', 'study_pk', name=op.f('uq_dataset_studies_version_pk_study_pk'))
    )
    op.create_index(op.f('ix_dataset_studies_study_pk'), 'dataset_studies', ['study_pk'], unique=False)
    op.create_index(op.f('ix_dataset_studies_version_pk'), 'dataset_studies', ['version_pk'], unique=False)
    op.create_table('dataset_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_pk', sa.Integer(), nullable=False),
    sa.Column('entry_pk', sa.Integer(), nullable=False),
    sa.Column('code_value', sa.String(length=64), nullable=False),
    sa.Column('code_scheme', sa.String(length=16), nullable=False),
    sa.Column('code_meaning', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=128), nullable=False),
    sa.Column('established_by', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['entry_pk'], ['dataset_studies.id'], name=op.f('fk_dataset_labels_entry_pk_dataset_studies')),
    sa.ForeignKeyConstraint(['version_pk'], ['dataset_versions.id'], name=op.f('fk_dataset_labels_version_pk_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_labels')),
    sa.UniqueConstraint('entry_pk', 'code_scheme', 'code_value', name=op.f('uq_dataset_labels_entry_pk_code_scheme_code_value'))
    )
    op.create_index(op.f('ix_dataset_labels_entry_pk'), 'dataset_labels', ['entry_pk'], unique=False)
    op.create_index(op.f('ix_dataset_labels_version_pk'), 'dataset_labels', ['version_pk'], unique=False)
    _create_frozen_triggers()


def _create_frozen_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Nested IFs: PL/pgSQL does not promise to short-circuit AND, and OLD is NULL on INSERT.
        op.execute(f"""
            CREATE FUNCTION dataset_rows_frozen_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN
                    IF EXISTS (SELECT 1 FROM dataset_versions WHERE id = OLD.version_pk AND state = 'frozen') THEN
                        RAISE EXCEPTION '{_FROZEN_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
                    END IF;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    IF EXISTS (SELECT 1 FROM dataset_versions WHERE id = NEW.version_pk AND state = 'frozen') THEN
                        RAISE EXCEPTION '{_FROZEN_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
                    END IF;
                    RETURN NEW;
                END IF;
                RETURN OLD;
            END $$""")  # noqa: S608 (the message is a module constant, not input)
        op.execute(f"""
            CREATE FUNCTION dataset_version_frozen_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.state = 'frozen' THEN
                    RAISE EXCEPTION '{_FROZEN_MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                IF TG_OP = 'DELETE' THEN
                    RETURN OLD;
                END IF;
                RETURN NEW;
            END $$""")
        for table in _CHILD_TABLES:
            op.execute(f"CREATE TRIGGER {table}_frozen BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION dataset_rows_frozen_guard()")
        op.execute("CREATE TRIGGER dataset_versions_frozen BEFORE UPDATE OR DELETE ON dataset_versions "
                   "FOR EACH ROW EXECUTE FUNCTION dataset_version_frozen_guard()")
        return
    frozen = "(SELECT state FROM dataset_versions WHERE id = {row}.version_pk) = 'frozen'"
    for table in _CHILD_TABLES:
        for event, condition in (("INSERT", frozen.format(row="NEW")),
                                 ("UPDATE", f"{frozen.format(row='OLD')} OR {frozen.format(row='NEW')}"),
                                 ("DELETE", frozen.format(row="OLD"))):
            op.execute(f"CREATE TRIGGER {table}_frozen_{event.lower()} BEFORE {event} ON {table} "
                       f"WHEN {condition} BEGIN SELECT RAISE(ABORT, '{_FROZEN_MESSAGE}'); END")
    for event in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER dataset_versions_frozen_{event.lower()} BEFORE {event} ON dataset_versions "
                   f"WHEN OLD.state = 'frozen' BEGIN SELECT RAISE(ABORT, '{_FROZEN_MESSAGE}'); END")


def _drop_frozen_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dataset_versions_frozen ON dataset_versions")
        for table in _CHILD_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen ON {table}")
        op.execute("DROP FUNCTION IF EXISTS dataset_version_frozen_guard()")
        op.execute("DROP FUNCTION IF EXISTS dataset_rows_frozen_guard()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS dataset_versions_frozen_{event}")
    for table in _CHILD_TABLES:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen_{event}")


def downgrade() -> None:
    _drop_frozen_triggers()
    op.drop_index(op.f('ix_dataset_labels_version_pk'), table_name='dataset_labels')
    op.drop_index(op.f('ix_dataset_labels_entry_pk'), table_name='dataset_labels')
    op.drop_table('dataset_labels')
    op.drop_index(op.f('ix_dataset_studies_version_pk'), table_name='dataset_studies')
    op.drop_index(op.f('ix_dataset_studies_study_pk'), table_name='dataset_studies')
    op.drop_table('dataset_studies')
    op.drop_index(op.f('ix_dataset_versions_dataset_pk'), table_name='dataset_versions')
    op.drop_table('dataset_versions')
    op.drop_table('datasets')
