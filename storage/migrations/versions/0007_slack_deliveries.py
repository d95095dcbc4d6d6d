"""slack deliveries, so that every bot process handles a Slack request once

Slack may redeliver an event, and a user may double-click, to any of several bot processes on one
database: each request's keys are recorded here (storage/deliveries.py), and rows older than ten
minutes are deleted by a periodic job. seen_at is the database's UTC time; on SQLite it is text
with milliseconds, written only in that format so that it sorts as it reads.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOW = {
    "postgresql": "timezone('utc', now())",
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
}


def upgrade() -> None:
    now = NOW[op.get_bind().dialect.name]
    op.create_table(
        "slack_deliveries",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), server_default=sa.text(now), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_deliveries")),
    )
    op.create_index("ix_slack_deliveries_seen_at", "slack_deliveries", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_slack_deliveries_seen_at", table_name="slack_deliveries")
    op.drop_table("slack_deliveries")
