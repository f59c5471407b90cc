"""thumbnails stored once by content; what each account stores (2026-12-08).

Moves every prediction's thumbnail into the new ``thumbnails`` table, one row
per distinct JPEG (by SHA-256), and counts each user's ``stored_bytes``.
Downgrading copies the bytes back into every prediction.
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'

# Named, so that SQLite's batch mode can drop it again on downgrade.
THUMBNAIL_FK = 'fk_predictions_thumbnail_id_thumbnails'
# app/services/storage.py ROW_BYTES when this revision was written (a copy:
# a migration must not change when the app does).
ROW_BYTES = 4 * 1024
# Predictions read per query while the thumbnails move.
CHUNK = 500

thumbnails = sa.table(
    'thumbnails',
    sa.column('id', sa.Integer),
    sa.column('sha256', sa.String),
    sa.column('size_bytes', sa.Integer),
    sa.column('data', sa.LargeBinary),
    # Untyped: the prediction's value is copied as the driver gave it.
    sa.column('created_at'),
)


def upgrade():
    op.create_table('thumbnails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumbnail_id', sa.Integer(), nullable=True))

    move_thumbnails_out(op.get_bind())

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.alter_column('thumbnail_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('ix_predictions_thumbnail', ['thumbnail_id', 'user_id'], unique=False)
        batch_op.create_foreign_key(THUMBNAIL_FK, 'thumbnails', ['thumbnail_id'], ['id'])
        batch_op.drop_column('thumbnail')

    op.execute(
        sa.text(
            "UPDATE users SET stored_bytes = "
            "(SELECT COUNT(*) FROM predictions p WHERE p.user_id = users.id) * :row "
            "+ (SELECT COALESCE(SUM(t.size_bytes), 0) FROM thumbnails t "
            "WHERE t.id IN (SELECT p.thumbnail_id FROM predictions p "
            "WHERE p.user_id = users.id))"
        ).bindparams(row=ROW_BYTES)
    )


def move_thumbnails_out(connection):
    """One ``thumbnails`` row per distinct JPEG; each prediction points at it."""
    ids = {}  # sha256 -> thumbnails.id
    last = 0
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT id, thumbnail, created_at FROM predictions "
                "WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": CHUNK},
        ).all()
        if not rows:
            return
        links = []
        for prediction_id, data, created_at in rows:
            data = bytes(data)
            key = hashlib.sha256(data).hexdigest()
            if key not in ids:
                ids[key] = connection.execute(
                    thumbnails.insert()
                    .values(sha256=key, size_bytes=len(data), data=data,
                            created_at=created_at)
                    .returning(thumbnails.c.id)
                ).scalar_one()
            links.append({"t": ids[key], "p": prediction_id})
        connection.execute(
            sa.text("UPDATE predictions SET thumbnail_id = :t WHERE id = :p"), links
        )
        last = rows[-1][0]


def downgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumbnail', sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE predictions SET thumbnail = "
        "(SELECT t.data FROM thumbnails t WHERE t.id = predictions.thumbnail_id)"
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.alter_column('thumbnail', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_constraint(THUMBNAIL_FK, type_='foreignkey')
        batch_op.drop_index('ix_predictions_thumbnail')
        batch_op.drop_column('thumbnail_id')
    # Not batch mode: SQLite would copy and drop `users`, and dropping it
    # cascades to every prediction (foreign keys are on).
    op.execute('ALTER TABLE users DROP COLUMN stored_bytes')
    op.drop_table('thumbnails')
