"""deploy runners: the live bot processes and the environments each runs

Every `deploybot serve`, `worker` or console process keeps a row here while it runs, renewed with
its leases (DESIGN §12): `/deploy runners` lists them, and a trigger for an environment no live
process runs is refused instead of waiting to be reaped. `expires_at` is the database's UTC time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_runners",
        sa.Column("runner_id", sa.String(length=512), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("environments", sa.Text(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("runner_id", name=op.f("pk_deploy_runners")),
    )


def downgrade() -> None:
    op.drop_table("deploy_runners")
