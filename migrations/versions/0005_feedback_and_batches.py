"""feedback on predictions, batches of uploads (2026-11-30)."""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'

# Named, so that SQLite's batch mode can drop it again on downgrade.
BATCH_FK = 'fk_predictions_batch_id_batches'


def upgrade():
    op.create_table('batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index('ix_batches_user_created', ['user_id', 'created_at'], unique=False)

    # Every new column is nullable: existing rows are "not reviewed", no batch.
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feedback_correct', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('feedback_label', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('feedback_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('batch_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_predictions_feedback', ['feedback_correct'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_batch_id'), ['batch_id'], unique=False)
        batch_op.create_foreign_key(BATCH_FK, 'batches', ['batch_id'], ['id'], ondelete='CASCADE')


def downgrade():
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_constraint(BATCH_FK, type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_predictions_batch_id'))
        batch_op.drop_index('ix_predictions_feedback')
        batch_op.drop_column('batch_id')
        batch_op.drop_column('feedback_at')
        batch_op.drop_column('feedback_label')
        batch_op.drop_column('feedback_correct')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index('ix_batches_user_created')

    op.drop_table('batches')
