"""push subscriptions held at vendors (Microsoft Graph change notifications)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pushsubscription',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=False),
        sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['connection_id'], ['connection.id']),
        sa.ForeignKeyConstraint(['org_id'], ['org.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'external_id'),
    )
    op.create_index('ix_pushsubscription_org_id', 'pushsubscription', ['org_id'])
    op.create_index('ix_pushsubscription_connection_id', 'pushsubscription', ['connection_id'])


def downgrade() -> None:
    op.drop_index('ix_pushsubscription_connection_id', table_name='pushsubscription')
    op.drop_index('ix_pushsubscription_org_id', table_name='pushsubscription')
    op.drop_table('pushsubscription')
