"""money engine: the journal of money events; order total, discount and E on purchases

Revision ID: 0008_engine
Revises: 0003_identity_payments
Create Date: 2026-11-23 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_engine'
down_revision = '0003_identity_payments'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('money_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('purchase_key', sa.String(length=200), nullable=False),
    sa.Column('payer_key', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=48), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_money_events')),
    sa.UniqueConstraint('event_key', name=op.f('uq_money_events_event_key'))
    )
    with op.batch_alter_table('money_events', schema=None) as batch_op:
        batch_op.create_index('ix_money_events_pending', ['id'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_money_events_held', ['purchase_key'], unique=False, postgresql_where=sa.text("state = 'held'"), sqlite_where=sa.text("state = 'held'"))
        batch_op.create_index('ix_money_events_payer', ['payer_key'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))

    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('total_fen', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('discount_fen', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('points_base', sa.BigInteger(), server_default='0', nullable=False))
    # purchases recorded before: the order total was the amount earned on, nothing discounted,
    # and E is what they keep plus what their refunds took back
    op.execute("UPDATE purchases SET total_fen = paid_fen")
    op.execute(
        "UPDATE purchases SET points_base = points_earned + COALESCE((SELECT SUM(r.points_taken)"
        " FROM purchase_refunds r WHERE r.purchase_id = purchases.id), 0)"
    )


def downgrade():
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_column('points_base')
        batch_op.drop_column('discount_fen')
        batch_op.drop_column('total_fen')
    with op.batch_alter_table('money_events', schema=None) as batch_op:
        batch_op.drop_index('ix_money_events_payer', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.drop_index('ix_money_events_held', postgresql_where=sa.text("state = 'held'"), sqlite_where=sa.text("state = 'held'"))
        batch_op.drop_index('ix_money_events_pending', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
    op.drop_table('money_events')
