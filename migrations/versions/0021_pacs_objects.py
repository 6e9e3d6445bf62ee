"""keys of the DICOMweb image store

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 13:00:00

With QAPORTAL_IMAGE_STORE=dicomweb the files live in a PACS that files them by UIDs; this
table maps each internal storage key to the Study/Series/SOP Instance UIDs it was stored
under, with the SHA-256 and size sent (qaportal/dicom/dicomweb_store.py). A table rather
than a lookup of the instances' rows: keys are written (and read back) before the rows
naming them are committed, and files not tied to an Instance row may be stored too.
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pacs_objects',
        sa.Column('key', sa.String(length=80), nullable=False),
        sa.Column('study_uid', sa.String(length=64), nullable=False),
        sa.Column('series_uid', sa.String(length=64), nullable=False),
        sa.Column('sop_uid', sa.String(length=64), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_pacs_objects')),
    )
    op.create_index(op.f('ix_pacs_objects_sop_uid'), 'pacs_objects', ['sop_uid'])


def downgrade():
    op.drop_index(op.f('ix_pacs_objects_sop_uid'), table_name='pacs_objects')
    op.drop_table('pacs_objects')
