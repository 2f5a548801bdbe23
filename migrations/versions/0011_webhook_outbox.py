"""webhook events: when each was handed to the broker (the outbox relay's mark)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhookevent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enqueued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Events stored before the outbox were enqueued on the request path already.
    op.execute("UPDATE webhookevent SET enqueued_at = received_at")


def downgrade() -> None:
    with op.batch_alter_table('webhookevent', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')
