"""runner id and lease of each active deploy

`runner_id` names the process that runs a deploy (hostname, boot id, pid: see bot/deploy/identity.py)
and `lease_expires_at` is when, by the database's clock, it stops being that process's unless renewed.
The reaper ends a deploy whose lease expired; it no longer compares heartbeats with its own clock.

Plain `op.add_column` on SQLite too: it adds a nullable column without rebuilding the table, so
the deploy count triggers of 0004 stay in place (a batch rebuild would drop them).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deploy_history", sa.Column("runner_id", sa.String(length=512), nullable=True))
    op.add_column("deploy_history", sa.Column("lease_expires_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place since 3.35; no batch rebuild, so the triggers stay as well.
    op.drop_column("deploy_history", "lease_expires_at")
    op.drop_column("deploy_history", "runner_id")
