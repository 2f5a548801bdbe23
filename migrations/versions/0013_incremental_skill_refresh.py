"""skill snapshots: the sums a refresh needs to re-rank a rep without their calls, and the
fingerprint of the calls they were computed from

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('skillsnapshot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score_sum', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('score_ss', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('calls_digest', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('skillsnapshot', schema=None) as batch_op:
        batch_op.drop_column('calls_digest')
        batch_op.drop_column('score_ss')
        batch_op.drop_column('score_sum')
