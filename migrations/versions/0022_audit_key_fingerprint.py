"""the audit key's fingerprint on the audit head

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 13:30:00

Every app server must sign the audit chain with the same key (docs/deployment.md section
7). The audit head keeps an HMAC of a fixed label under the key (qaportal/audit_key.py),
never the key: a server or worker started with another key refuses to start, and no entry
is written under another key. NULL until the first start (or the first entry) after this
migration records it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_fingerprint', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('key_fingerprint')
