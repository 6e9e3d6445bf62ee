"""kept versions of corrected original reads; per-study context of multi-study uploads

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-03 17:30:00

"""
import sqlalchemy as sa
from alembic import op

from qaportal.models.read_version import DROP_IMMUTABLE_TRIGGERS, IMMUTABLE_TRIGGERS

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('original_read_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('read_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('report_text', sa.Text(), nullable=False),
    sa.Column('finalized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('entered_by_id', sa.Integer(), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('superseded_by_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.CheckConstraint("reason <> ''", name=op.f('ck_original_read_versions_reason_given')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_original_read_versions_version_positive')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['users.id'],
                            name=op.f('fk_original_read_versions_entered_by_id_users')),
    sa.ForeignKeyConstraint(['read_id'], ['original_reads.id'],
                            name=op.f('fk_original_read_versions_read_id_original_reads')),
    sa.ForeignKeyConstraint(['reader_id'], ['users.id'],
                            name=op.f('fk_original_read_versions_reader_id_users')),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['users.id'],
                            name=op.f('fk_original_read_versions_superseded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_original_read_versions')),
    sa.UniqueConstraint('read_id', 'version',
                        name=op.f('uq_original_read_versions_read_id_version'))
    )
    with op.batch_alter_table('original_read_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_original_read_versions_read_id'), ['read_id'],
                              unique=False)
    for stmt in IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))

    with op.batch_alter_table('upload_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_context', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('upload_batches', schema=None) as batch_op:
        batch_op.drop_column('pending_context')

    for stmt in DROP_IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))
    with op.batch_alter_table('original_read_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_original_read_versions_read_id'))
    op.drop_table('original_read_versions')
