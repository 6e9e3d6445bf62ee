"""report kind "committee": the committee record of a discrepancy case

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 13:20:00

`report_exports.kind` is kept within the report kinds by a CHECK constraint; the
committee record (qaportal/reports/committee_record.py) adds "committee" to them.
"""
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

OLD = ("oppe", "fppe", "case", "department", "audit", "credentials")
NEW = (*OLD, "committee")


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _replace(kinds) -> None:
    with op.batch_alter_table('report_exports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_report_exports_kind_valid'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_report_exports_kind_valid'),
                                         _kinds(kinds))


def upgrade():
    _replace(NEW)


def downgrade():
    # Fails while committee records are recorded: they are kept, not silently deleted.
    _replace(OLD)
