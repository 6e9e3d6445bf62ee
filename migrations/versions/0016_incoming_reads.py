"""incoming reads

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 17:27:24

Reads and orders received by HL7 v2 and FHIR, kept with what became of each.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('incoming_reads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('sending_application', sa.String(length=64), nullable=False),
    sa.Column('sending_facility', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('peer_id', sa.Integer(), nullable=True),
    sa.Column('accession_number', sa.String(length=64), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('patient_name', sa.String(length=200), nullable=False),
    sa.Column('reader_identifier', sa.String(length=64), nullable=False),
    sa.Column('reader_name', sa.String(length=200), nullable=False),
    sa.Column('report_text', sa.Text(), nullable=False),
    sa.Column('result_status', sa.String(length=1), nullable=False),
    sa.Column('finalized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=True),
    sa.Column('reader_user_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('matched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('report', 'order')", name=op.f('ck_incoming_reads_kind_valid')),
    sa.CheckConstraint("source IN ('hl7', 'fhir')", name=op.f('ck_incoming_reads_source_valid')),
    sa.CheckConstraint("status IN ('waiting_images', 'waiting_reader', 'matched', "
                       "'superseded', 'preliminary', 'ordered', 'refused')",
                       name=op.f('ck_incoming_reads_status_valid')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_incoming_reads_owner_id_users')),
    sa.ForeignKeyConstraint(['peer_id'], ['dicom_peers.id'], name=op.f('fk_incoming_reads_peer_id_dicom_peers')),
    sa.ForeignKeyConstraint(['reader_user_id'], ['users.id'], name=op.f('fk_incoming_reads_reader_user_id_users')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_incoming_reads_study_id_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incoming_reads')),
    sa.UniqueConstraint('owner_id', 'source', 'sending_application', 'sending_facility', 'message_id', name='uq_incoming_reads_message')
    )
    with op.batch_alter_table('incoming_reads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incoming_reads_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_incoming_reads_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_incoming_reads_owner_status', ['owner_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_incoming_reads_reader_identifier'), ['reader_identifier'], unique=False)
        batch_op.create_index(batch_op.f('ix_incoming_reads_study_id'), ['study_id'], unique=False)



def downgrade():
    with op.batch_alter_table('incoming_reads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incoming_reads_study_id'))
        batch_op.drop_index(batch_op.f('ix_incoming_reads_reader_identifier'))
        batch_op.drop_index('ix_incoming_reads_owner_status')
        batch_op.drop_index(batch_op.f('ix_incoming_reads_owner_id'))
        batch_op.drop_index(batch_op.f('ix_incoming_reads_accession_number'))

    op.drop_table('incoming_reads')
