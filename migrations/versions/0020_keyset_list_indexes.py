"""indexes for the keyset-paged lists

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 09:00:00

One index per list order (qaportal/paging.py): the reviewer's open assignments by due date,
the QA case list oldest first (every case, the cases not closed, one state), the reader's
feedback newest decision first, a member's committee seats, the notification list newest
first, and the second-opinion worklist's lists by due time (assigned to me, sent by me,
every request, a pool's unclaimed requests); partial indexes where a list's
default filter leaves out the history (cases not closed, requests held or unclaimed).

A member's seats index (user, id) replaces the index on the member alone: it answers every
lookup that one did, and with both PostgreSQL's planner found them equally cheap for the
seat list and picked either (tests/test_scale_indexes.py).
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

NOT_CLOSED = "status <> 'closed'"
UNCLAIMED = "status = 'open' AND consultant_id IS NULL"
HELD = "status IN ('open', 'accepted')"

# (name, table, columns, where)
INDEXES = [
    ('ix_review_assignments_reviewer_status_due', 'review_assignments',
     ['reviewer_id', 'status', 'due_at', 'id'], None),
    ('ix_discrepancy_cases_opened', 'discrepancy_cases', ['opened_at', 'id'], None),
    ('ix_discrepancy_cases_active_opened', 'discrepancy_cases', ['opened_at', 'id'],
     NOT_CLOSED),
    ('ix_discrepancy_cases_status_opened', 'discrepancy_cases', ['status', 'opened_at', 'id'],
     None),
    ('ix_discrepancy_cases_reader_decided', 'discrepancy_cases',
     ['reader_id', sa.text('decided_at DESC'), sa.text('id DESC')], None),
    ('ix_committee_members_user_seat', 'committee_members', ['user_id', 'id'], None),
    ('ix_notifications_user_created', 'notifications',
     ['user_id', sa.text('created_at DESC'), sa.text('id DESC')], None),
    ('ix_opinion_requests_consultant_active', 'opinion_requests',
     ['consultant_id', 'due_at', 'id'], HELD),
    ('ix_opinion_requests_consultant_status_due', 'opinion_requests',
     ['consultant_id', 'status', 'due_at', 'id'], None),
    ('ix_opinion_requests_requester_due', 'opinion_requests',
     ['requester_id', 'due_at', 'id'], None),
    ('ix_opinion_requests_due', 'opinion_requests', ['due_at', 'id'], None),
    ('ix_opinion_requests_pool_unclaimed', 'opinion_requests', ['pool', 'due_at', 'id'],
     UNCLAIMED),
    # not a list: the grants of a workflow object (the review-access sweep)
    ('ix_study_access_source', 'study_access', ['source_type', 'source_id'], None),
]

# (name, table, columns): indexes the ones above make redundant
REPLACED = [
    ('ix_committee_members_user_id', 'committee_members', ['user_id']),
]


def upgrade():
    for name, table, columns, where in INDEXES:
        kw = {}
        if where:
            kw = {'postgresql_where': sa.text(where), 'sqlite_where': sa.text(where)}
        op.create_index(name, table, columns, unique=False, **kw)
    for name, table, _ in REPLACED:
        op.drop_index(name, table_name=table)


def downgrade():
    for name, table, columns in REPLACED:
        op.create_index(name, table, columns, unique=False)
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
