"""deliveries of signed results

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:40:00

One row per signed object (opinion or addendum) per destination peer: the outbox the job
queue's worker sends from, with its attempts, status and the peer's answer.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('addendum_id', sa.Integer(), nullable=True),
    sa.Column('peer_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.Column('peer_status', sa.String(length=64), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sop_instance_uids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')",
                       name=op.f('ck_deliveries_status_valid')),
    sa.ForeignKeyConstraint(['request_id'], ['opinion_requests.id'],
                            name=op.f('fk_deliveries_request_id_opinion_requests')),
    sa.ForeignKeyConstraint(['addendum_id'], ['opinion_addenda.id'],
                            name=op.f('fk_deliveries_addendum_id_opinion_addenda')),
    sa.ForeignKeyConstraint(['peer_id'], ['dicom_peers.id'],
                            name=op.f('fk_deliveries_peer_id_dicom_peers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_request_id'), ['request_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_peer_id'), ['peer_id'], unique=False)
        batch_op.create_index('ix_deliveries_status_next_attempt_at',
                              ['status', 'next_attempt_at'], unique=False)


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_deliveries_peer_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_request_id'))
    op.drop_table('deliveries')
