"""study identity scoped to the owner; uploads no longer grant access

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-03 17:40:00

StudyInstanceUID is unique per owner (UNIQUE(owner_id, study_uid)), SeriesInstanceUID per
study and SOPInstanceUID per series (ingest keeps it unique within an owner's studies), so
the same study uploaded by two users is two studies. The grants that an upload used to give
on someone else's study (source "upload_batch") are revoked: knowing a UID gives nothing.
Downgrading restores the global uniqueness (it fails while two owners hold the same UID)
and does not restore those grants.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_studies_study_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_studies_owner_id_study_uid'),
                                          ['owner_id', 'study_uid'])
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_series_series_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_series_study_id_series_uid'),
                                          ['study_id', 'series_uid'])
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_instances_sop_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_instances_series_id_sop_uid'),
                                          ['series_id', 'sop_uid'])
        batch_op.create_index(batch_op.f('ix_instances_sop_uid'), ['sop_uid'], unique=False)
    # An upload of a UID never grants access any more; withdraw what it granted before.
    access = sa.table('study_access', sa.column('source_type', sa.String),
                      sa.column('revoked_at', sa.DateTime(timezone=True)))
    op.execute(access.update()
               .where(access.c.source_type == 'upload_batch', access.c.revoked_at.is_(None))
               .values(revoked_at=datetime.now(UTC).replace(tzinfo=None)
                       if op.get_bind().dialect.name == 'sqlite' else datetime.now(UTC)))


def downgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_sop_uid'))
        batch_op.drop_constraint(batch_op.f('uq_instances_series_id_sop_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_instances_sop_uid'), ['sop_uid'])
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_series_study_id_series_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_series_series_uid'), ['series_uid'])
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_studies_owner_id_study_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_studies_study_uid'), ['study_uid'])
