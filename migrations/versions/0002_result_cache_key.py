"""result cache key (2026-11-27)."""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'


def upgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_fingerprint', sa.String(length=128), server_default='', nullable=False))
        batch_op.add_column(sa.Column('cached', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_index(batch_op.f('ix_predictions_sha256'))
        batch_op.create_index('ix_predictions_cache', ['sha256', 'model_fingerprint'], unique=False)



def downgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_cache')
        batch_op.create_index(batch_op.f('ix_predictions_sha256'), ['sha256'], unique=False)
        batch_op.drop_column('cached')
        batch_op.drop_column('model_fingerprint')

