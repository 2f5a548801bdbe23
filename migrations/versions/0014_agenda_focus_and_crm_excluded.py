"""agenda focus per rep and week (for cohorts); meetings that are never written to a CRM

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agendafocus',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=False),
        sa.Column('week', sa.Date(), nullable=False),
        sa.Column('skills', sa.JSON(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['org.id']),
        sa.ForeignKeyConstraint(['rep_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('rep_id', 'week'),
    )
    op.create_index('ix_agendafocus_org_id', 'agendafocus', ['org_id'])
    op.create_index('ix_agendafocus_rep_id', 'agendafocus', ['rep_id'])
    op.create_index('ix_agendafocus_week', 'agendafocus', ['week'])
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_excluded', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_column('crm_excluded')
    op.drop_index('ix_agendafocus_week', table_name='agendafocus')
    op.drop_index('ix_agendafocus_rep_id', table_name='agendafocus')
    op.drop_index('ix_agendafocus_org_id', table_name='agendafocus')
    op.drop_table('agendafocus')
