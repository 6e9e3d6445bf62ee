"""reviewers' assignments counted per status (the QA workload table)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 18:45:00

The QA dashboard and statistics pages showed each reviewer's assigned, completed, open and
overdue reviews by counting every assignment of the department on each request (140-170 ms
at a million assignments). reviewer_status_counts keeps them per reviewer and status
(qaportal/models/reviewer_workload.py); the migration counts the existing assignments.
The overdue ones (open, past due) are counted live from a partial index of the open
assignments' (reviewer_id, due_at): 80 ms by the status index, 11 ms from this one.
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'reviewer_status_counts',
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'],
                                name=op.f('fk_reviewer_status_counts_reviewer_id_users')),
        sa.PrimaryKeyConstraint('reviewer_id', 'status', name=op.f('pk_reviewer_status_counts')),
    )
    where = "status = 'assigned' AND source <> 'legacy'"
    op.create_index('ix_review_assignments_open_due', 'review_assignments',
                    ['reviewer_id', 'due_at'], unique=False,
                    postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    # The counts as of now, written here in SQL of this revision (not the app's code).
    op.execute("INSERT INTO reviewer_status_counts (reviewer_id, status, n) "
               "SELECT reviewer_id, status, count(*) FROM review_assignments "
               "WHERE source <> 'legacy' GROUP BY reviewer_id, status")


def downgrade():
    op.drop_index('ix_review_assignments_open_due', table_name='review_assignments')
    op.drop_table('reviewer_status_counts')
