"""indexes for the list pages; a discrepancy case's reader

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:00:00

The study list's upload order (created_at DESC, id DESC), the reviewer's worklist (reviewer,
status, submitted_at DESC, id DESC), and a discrepancy case's reader kept on the case
(filled from its review's read) with an index on (reader, status) for the reader's
feedback.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('discrepancy_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reader_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE discrepancy_cases SET reader_id = ("
        "SELECT original_reads.reader_id FROM original_reads "
        "JOIN review_assignments ON review_assignments.read_id = original_reads.id "
        "JOIN reviews ON reviews.assignment_id = review_assignments.id "
        "WHERE reviews.id = discrepancy_cases.review_id)"
    )
    with op.batch_alter_table('discrepancy_cases', schema=None) as batch_op:
        batch_op.alter_column('reader_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_discrepancy_cases_reader_id_users'),
                                    'users', ['reader_id'], ['id'])
        batch_op.create_index('ix_discrepancy_cases_reader_status', ['reader_id', 'status'],
                              unique=False)
    op.create_index('ix_studies_created_at_id', 'studies',
                    [sa.text('created_at DESC'), sa.text('id DESC')], unique=False)
    op.create_index('ix_review_assignments_reviewer_status_submitted', 'review_assignments',
                    ['reviewer_id', 'status', sa.text('submitted_at DESC'),
                     sa.text('id DESC')], unique=False)


def downgrade():
    op.drop_index('ix_review_assignments_reviewer_status_submitted',
                  table_name='review_assignments')
    op.drop_index('ix_studies_created_at_id', table_name='studies')
    with op.batch_alter_table('discrepancy_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_discrepancy_cases_reader_status')
        batch_op.drop_constraint(batch_op.f('fk_discrepancy_cases_reader_id_users'),
                                 type_='foreignkey')
        batch_op.drop_column('reader_id')
