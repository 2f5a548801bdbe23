"""connections: one live row per vendor account, ended rows kept however often it reconnects

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LIVE = "status NOT IN ('disconnected', 'replaced')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's constraint has no name: batch mode names it to drop it.
        with op.batch_alter_table('connection', naming_convention={
                "uq": "uq_%(table_name)s_%(column_0_name)s"}) as batch_op:
            batch_op.drop_constraint('uq_connection_org_id', type_='unique')
    else:
        op.drop_constraint('connection_org_id_provider_account_ref_key', 'connection',
                           type_='unique')
    op.create_index('uq_connection_live_account', 'connection',
                    ['org_id', 'provider', 'account_ref'], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_index('uq_connection_live_account', table_name='connection')
    with op.batch_alter_table('connection') as batch_op:
        batch_op.create_unique_constraint('connection_org_id_provider_account_ref_key',
                                          ['org_id', 'provider', 'account_ref'])
