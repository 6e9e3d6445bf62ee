"""the audit log's actor filter reads the entries by label

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 17:30:00

An index on audit entries' (actor_label, seq): the actor filter first finds the distinct
labels that match the text by skipping through it (one probe per label), then reads a
label's entries newest first and counts them from it (qaportal/auditlog/query.py).
Without it the filter matched every entry's label with ILIKE: its capped count read the
whole table at 2M entries.
"""
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

# (name, table, columns)
INDEXES = [
    ('ix_audit_events_actor_label_seq', 'audit_events', ['actor_label', 'seq']),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
