"""single sign-on: started OpenID Connect sign-ins (state, nonce, PKCE verifier)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signinstate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('nonce_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('verifier_ciphertext', sa.Text(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('state_hash')
    )


def downgrade() -> None:
    op.drop_table('signinstate')
