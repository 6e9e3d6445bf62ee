"""submitted reviews and amendments are immutable in the database

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 05:40:00

"""
import sqlalchemy as sa
from alembic import op

from qaportal.models.review import DROP_IMMUTABLE_TRIGGERS, IMMUTABLE_TRIGGERS

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    for stmt in IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))


def downgrade():
    for stmt in DROP_IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))
