"""a partial index on active deploys

The reaper, the heartbeat and start-up look for the pending and running deploys; without an index
that is a scan of the whole table (150 ms on a million deploys with SQLite, every few seconds).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    op.create_index(
        "ix_deploy_history_active", "deploy_history", ["id"], sqlite_where=ACTIVE, postgresql_where=ACTIVE
    )


def downgrade() -> None:
    op.drop_index("ix_deploy_history_active", table_name="deploy_history")
