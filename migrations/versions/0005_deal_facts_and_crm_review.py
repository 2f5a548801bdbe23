"""deal facts (status, negative) and the CRM review queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crmproposal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('crm', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sobject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('deal_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('field', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=True),
    sa.Column('call_title', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('proposed', sa.Text(), nullable=False),
    sa.Column('final', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('evidence_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['org.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('crmproposal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crmproposal_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crmproposal_record_id'), ['record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crmproposal_evidence_key'), ['evidence_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_crmproposal_status'), ['status'], unique=False)
    with op.batch_alter_table('fieldextraction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default='absent'))
        batch_op.add_column(sa.Column('negative', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Values stored before deal facts existed: a value was a found one.
    op.execute("UPDATE fieldextraction SET status = 'found' WHERE value IS NOT NULL")
    with op.batch_alter_table('crmwrite', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('crmwrite', schema=None) as batch_op:
        batch_op.drop_column('actor')
    with op.batch_alter_table('fieldextraction', schema=None) as batch_op:
        batch_op.drop_column('negative')
        batch_op.drop_column('status')
    with op.batch_alter_table('crmproposal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crmproposal_status'))
        batch_op.drop_index(batch_op.f('ix_crmproposal_evidence_key'))
        batch_op.drop_index(batch_op.f('ix_crmproposal_record_id'))
        batch_op.drop_index(batch_op.f('ix_crmproposal_org_id'))
    op.drop_table('crmproposal')
