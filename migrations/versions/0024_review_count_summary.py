"""review counts per reader and day, and per reader and month, for the statistics pages

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 17:30:00

The statistics pages read these summary tables (qaportal/models/review_counts.py) instead of
counting a year of reviews per request; they are kept up to date by recounting the buckets
a change touches, found by the index on original_reads (reader_id, finalized_at). The
upgrade fills them from the existing reviews (qaportal.qa.summary.rebuild).
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

COUNTS = ("adhoc", "unable", "s_1", "s_2a", "s_2b", "s_3a", "s_3b", "significant", "pending")


def _create(table: str, key: str) -> None:
    op.create_table(
        table,
        sa.Column(key, sa.Date(), nullable=False),
        sa.Column('reader_id', sa.Integer(), nullable=False),
        sa.Column('modalities', sa.String(length=64), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in COUNTS),
        sa.ForeignKeyConstraint(['reader_id'], ['users.id'],
                                name=op.f(f'fk_{table}_reader_id_users')),
        sa.PrimaryKeyConstraint(key, 'reader_id', 'modalities', name=op.f(f'pk_{table}')),
    )


def upgrade():
    with op.batch_alter_table('original_reads', schema=None) as batch_op:
        batch_op.create_index('ix_original_reads_reader_finalized',
                              ['reader_id', 'finalized_at'], unique=False)
    _create('review_day_counts', 'day')
    _create('review_month_counts', 'month')
    from qaportal.qa.summary import rebuild

    rebuild(op.get_bind())


def downgrade():
    op.drop_table('review_month_counts')
    op.drop_table('review_day_counts')
    with op.batch_alter_table('original_reads', schema=None) as batch_op:
        batch_op.drop_index('ix_original_reads_reader_finalized')
