"""governance: statuses that wait, environment locks, the audit trail

- `status` holds `awaiting_approval` (17 characters; PostgreSQL refused it in VARCHAR(16)), as does
  `deploy_counts.status`. SQLite does not enforce a VARCHAR's length: its tables are left as they
  are, so neither is rebuilt and the triggers that keep `deploy_counts` exact stay in place. (On
  PostgreSQL the count trigger is dropped for the change and created again.)
- the unique index on the environment covers every status that holds it (awaiting_approval,
  pending, running); queued and scheduled deploys hold nothing and get an index of their own.
- approval, schedule, force and gate columns on deploy_history; tables environment_locks,
  audit_events.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

HOLDS = sa.text("status IN ('awaiting_approval', 'pending', 'running')")
ACTIVE = sa.text("status IN ('pending', 'running')")
WAITING = sa.text("status IN ('scheduled', 'queued')")
COUNT_TRIGGER = """
    CREATE TRIGGER deploy_counts_track
    AFTER INSERT OR DELETE OR UPDATE OF environment, status, is_deleted ON deploy_history
    FOR EACH ROW EXECUTE FUNCTION deploy_counts_track()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # PostgreSQL alters no column a trigger names: the count trigger of 0004 steps aside (the
        # table is locked meanwhile, so no change goes uncounted) and comes back as it was.
        op.execute("LOCK TABLE deploy_history IN SHARE ROW EXCLUSIVE MODE")
        op.execute("DROP TRIGGER deploy_counts_track ON deploy_history")
        op.alter_column("deploy_history", "status", type_=sa.String(20), existing_nullable=False)
        op.alter_column("deploy_counts", "status", type_=sa.String(20), existing_nullable=False)
        op.execute(COUNT_TRIGGER)
    op.drop_index("uq_deploy_history_active_environment", table_name="deploy_history")
    op.create_index(
        "uq_deploy_history_active_environment",
        "deploy_history",
        ["environment"],
        unique=True,
        sqlite_where=HOLDS,
        postgresql_where=HOLDS,
    )
    op.create_index(
        "ix_deploy_history_waiting",
        "deploy_history",
        ["environment", "id"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    for column in (
        sa.Column("approved_by", sa.String(255)),
        sa.Column("approved_at", sa.DateTime()),
        sa.Column("scheduled_at", sa.DateTime()),
        sa.Column("forced_by", sa.String(255)),
        sa.Column("force_reason", sa.Text()),
        sa.Column("gate_question", sa.Text()),
        sa.Column("gate_asked_at", sa.DateTime()),
        sa.Column("gate_answer", sa.String(16)),
        sa.Column("gate_answered_by", sa.String(255)),
    ):
        op.add_column("deploy_history", column)
    op.create_table(
        "environment_locks",
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("locked_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("reminded_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("environment", name=op.f("pk_environment_locks")),
    )
    op.create_index("ix_environment_locks_expires_at", "environment_locks", ["expires_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(64)),
        sa.Column("deploy_id", sa.Integer()),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_environment", "audit_events", ["environment", "id"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("environment_locks")
    for name in (
        "gate_answered_by",
        "gate_answer",
        "gate_asked_at",
        "gate_question",
        "force_reason",
        "forced_by",
        "scheduled_at",
        "approved_at",
        "approved_by",
    ):
        op.drop_column("deploy_history", name)
    op.drop_index("ix_deploy_history_waiting", table_name="deploy_history")
    op.drop_index("uq_deploy_history_active_environment", table_name="deploy_history")
    op.create_index(
        "uq_deploy_history_active_environment",
        "deploy_history",
        ["environment"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
