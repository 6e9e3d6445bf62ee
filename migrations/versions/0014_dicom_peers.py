"""dicom peers and reader identifiers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 17:40:00

Known DICOM peers (calling AE title, allowed addresses, owner, result destination) and the
identifier the RIS uses for a radiologist, kept on the account.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dicom_peers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ae_title', sa.String(length=16), nullable=False),
    sa.Column('addresses', sa.JSON(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('send_kind', sa.String(length=8), nullable=False),
    sa.Column('send_host', sa.String(length=255), nullable=False),
    sa.Column('send_port', sa.Integer(), nullable=True),
    sa.Column('send_ae', sa.String(length=16), nullable=False),
    sa.Column('stow_url', sa.String(length=500), nullable=False),
    sa.Column('stow_credentials', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("send_kind IN ('none', 'dicom', 'stow')",
                       name=op.f('ck_dicom_peers_send_kind_valid')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'],
                            name=op.f('fk_dicom_peers_owner_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'],
                            name=op.f('fk_dicom_peers_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dicom_peers')),
    sa.UniqueConstraint('ae_title', name=op.f('uq_dicom_peers_ae_title'))
    )
    with op.batch_alter_table('dicom_peers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dicom_peers_owner_id'), ['owner_id'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reader_id', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_users_reader_id'), ['reader_id'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_reader_id'), type_='unique')
        batch_op.drop_column('reader_id')
    with op.batch_alter_table('dicom_peers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dicom_peers_owner_id'))
    op.drop_table('dicom_peers')
