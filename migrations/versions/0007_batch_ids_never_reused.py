"""batch ids never reused on SQLite (AUTOINCREMENT) (2026-12-08)."""
from alembic import op


revision = '0007'
down_revision = '0006'


def upgrade():
    # SQLite gives a new row max(id) + 1, so deleting the newest batch freed
    # its id for the next one, anybody's: an upload still naming the deleted
    # batch could land in another user's. AUTOINCREMENT never reuses an id.
    # PostgreSQL's sequences never did; there is nothing to change.
    rebuild_batches(autoincrement=True)


def downgrade():
    rebuild_batches(autoincrement=False)


def rebuild_batches(autoincrement):
    """SQLite only: the table is copied with the new option (env.py turns
    foreign keys off meanwhile, so the photos are not cascaded away)."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table(
        'batches', recreate='always',
        table_kwargs={'sqlite_autoincrement': autoincrement},
    ):
        pass
