"""webhook events: secrets sealed apart from the body, and the vendor account they are for

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhookevent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('account_ref', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.create_index(batch_op.f('ix_webhookevent_account_ref'), ['account_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhookevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhookevent_account_ref'))
        batch_op.drop_column('account_ref')
        batch_op.drop_column('sealed')
