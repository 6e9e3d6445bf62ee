"""audit entries carry an HMAC under a key kept outside the database

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03 17:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on both databases: a batch copy of the table on SQLite would drop
    # the append-only triggers. Entries written before this revision keep a NULL MAC.
    op.add_column('audit_events', sa.Column('entry_mac', sa.String(length=64), nullable=True))


def downgrade():
    # SQLite >= 3.35 and PostgreSQL drop a column in place (the triggers stay).
    op.execute('ALTER TABLE audit_events DROP COLUMN entry_mac')
