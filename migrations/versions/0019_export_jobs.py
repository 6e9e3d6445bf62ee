"""long exports made by the job queue

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 06:00:00

An export asked for in the browser (a large audit CSV, a report over more than a year) is a
row here: the worker makes it, keeps its progress, and the file (or the PDF's ReportExport)
it made.
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('export_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('report_kind', sa.String(length=20), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('rows_done', sa.BigInteger(), nullable=False),
    sa.Column('rows_total', sa.BigInteger(), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('storage_key', sa.String(length=200), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('report_export_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('audit_csv', 'report')", name=op.f('ck_export_jobs_kind_valid')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                       name=op.f('ck_export_jobs_status_valid')),
    sa.CheckConstraint('progress >= 0 AND progress <= 100',
                       name=op.f('ck_export_jobs_progress_percent')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'],
                            name=op.f('fk_export_jobs_requested_by_id_users')),
    sa.ForeignKeyConstraint(['report_export_id'], ['report_exports.id'],
                            name=op.f('fk_export_jobs_report_export_id_report_exports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_jobs')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_export_jobs_storage_key'))
    )
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_jobs_requested_by_id'), ['requested_by_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_export_jobs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_jobs_created_at'), ['created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_jobs_created_at'))
        batch_op.drop_index(batch_op.f('ix_export_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_export_jobs_requested_by_id'))
    op.drop_table('export_jobs')
