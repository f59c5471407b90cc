"""class activation maps stored with predictions (2026-11-30)."""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'


def upgrade():
    # Nullable: rows from before have no maps (the page shows no "Why?", the
    # API answers "explanation": null, and the result cache classifies them
    # again once).
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('explanation', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('explanation')
