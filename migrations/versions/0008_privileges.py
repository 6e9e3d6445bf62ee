"""hospital privileges of a radiologist, with their validity

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('privileges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('facility', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('granted_on', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('notes', sa.String(length=500), nullable=False),
    sa.CheckConstraint('valid_to >= granted_on', name=op.f('ck_privileges_period_ordered')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_privileges_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privileges'))
    )
    with op.batch_alter_table('privileges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privileges_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('privileges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privileges_user_id'))

    op.drop_table('privileges')
