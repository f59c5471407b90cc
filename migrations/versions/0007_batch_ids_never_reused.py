"""batch ids never reused on SQLite (AUTOINCREMENT)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # SQLite gives a new row max(id) + 1, so deleting the newest batch freed
    # its id for the next one, anybody's: an upload still naming the deleted
    # batch could land in another user's. AUTOINCREMENT never reuses an id.
    # PostgreSQL's sequences never did; there is nothing to change.
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table(
        'batches', recreate='always', table_kwargs={'sqlite_autoincrement': True}
    ):
        pass


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table(
        'batches', recreate='always', table_kwargs={'sqlite_autoincrement': False}
    ):
        pass
