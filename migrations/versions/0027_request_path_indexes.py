"""indexes of what every page and the radiologist's home read

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 03:20:00

Every page a signed-in user opens looks for their unread notifications linking to it (to
mark them read): through ix_notifications_user_unread that read each unread notification
of the user and filtered on the link (7.5 ms with 1,851 unread, at every request of the
50-user load test); a partial index of the unread ones by (user_id, link) finds them
directly (0.05 ms). The radiologist's home panel lists their five latest studies: sorted
from every study of theirs (21 ms at 3,334), now read off (owner_id, created_at, id).
"""
import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_notifications_unread_link', 'notifications', ['user_id', 'link'],
                    unique=False, postgresql_where=sa.text('read_at IS NULL'),
                    sqlite_where=sa.text('read_at IS NULL'))
    op.create_index('ix_studies_owner_created_at_id', 'studies',
                    ['owner_id', sa.text('created_at DESC'), sa.text('id DESC')], unique=False)


def downgrade():
    op.drop_index('ix_studies_owner_created_at_id', table_name='studies')
    op.drop_index('ix_notifications_unread_link', table_name='notifications')
