"""viewer marks: measurements and key images saved from the viewer, linked to an opinion
request or a review assignment; immutable once the opinion is signed or the review submitted

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 05:20:00
"""
import sqlalchemy as sa
from alembic import op

from qaportal.models.viewer_mark import DROP_IMMUTABLE_TRIGGERS, IMMUTABLE_TRIGGERS

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'viewer_marks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('opinion_request_id', sa.Integer(), nullable=True),
        sa.Column('review_assignment_id', sa.Integer(), nullable=True),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=4), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('measurements', sa.JSON(), nullable=False),
        sa.Column('key_images', sa.JSON(), nullable=False),
        sa.CheckConstraint("kind IN ('sr', 'kos')", name=op.f('ck_viewer_marks_kind_valid')),
        sa.CheckConstraint('(opinion_request_id IS NULL) <> (review_assignment_id IS NULL)',
                           name=op.f('ck_viewer_marks_one_parent')),
        sa.ForeignKeyConstraint(['author_id'], ['users.id'],
                                name=op.f('fk_viewer_marks_author_id_users')),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'],
                                name=op.f('fk_viewer_marks_instance_id_instances')),
        sa.ForeignKeyConstraint(['opinion_request_id'], ['opinion_requests.id'],
                                name=op.f('fk_viewer_marks_opinion_request_id_opinion_requests')),
        sa.ForeignKeyConstraint(['review_assignment_id'], ['review_assignments.id'],
                                name=op.f('fk_viewer_marks_review_assignment_id_review_assignments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_viewer_marks')),
        sa.UniqueConstraint('instance_id', name=op.f('uq_viewer_marks_instance_id')),
    )
    with op.batch_alter_table('viewer_marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_viewer_marks_author_id'), ['author_id'])
        batch_op.create_index(batch_op.f('ix_viewer_marks_opinion_request_id'),
                              ['opinion_request_id'])
        batch_op.create_index(batch_op.f('ix_viewer_marks_review_assignment_id'),
                              ['review_assignment_id'])
    for stmt in IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))


def downgrade():
    for stmt in DROP_IMMUTABLE_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(sa.text(stmt))
    op.drop_table('viewer_marks')
