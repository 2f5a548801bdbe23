"""orgs: when the next debounced skills refresh and CRM sync is due

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('org', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('org', schema=None) as batch_op:
        batch_op.drop_column('refresh_due_at')
