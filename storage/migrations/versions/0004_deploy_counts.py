"""deploy counts per environment and status, kept by triggers

History pages show how many deploys match their filters. Counting them with count(*) reads every
matching index entry (tens of milliseconds on a million rows); `deploy_counts` holds the number of
live (not soft-deleted) rows per (environment, status), kept exact by triggers in the same
transaction as the change, so a total is a sum over at most a few dozen rows.

On SQLite, a later migration that rebuilds `deploy_history` with batch_alter_table drops these
triggers with the old table: it must create them again (`create_triggers`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BUMP = (
    "INSERT INTO deploy_counts (environment, status, n) VALUES ({row}.environment, {row}.status, 1)"
    " ON CONFLICT (environment, status) DO UPDATE SET n = deploy_counts.n + 1"
)
_DROP = "UPDATE deploy_counts SET n = n - 1 WHERE environment = {row}.environment AND status = {row}.status"

POSTGRESQL_TRIGGERS = [
    f"""
    CREATE FUNCTION deploy_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.is_deleted = 'N' THEN
            {_DROP.format(row="OLD")};
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.is_deleted = 'N' THEN
            {_BUMP.format(row="NEW")};
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER deploy_counts_track
    AFTER INSERT OR DELETE OR UPDATE OF environment, status, is_deleted ON deploy_history
    FOR EACH ROW EXECUTE FUNCTION deploy_counts_track()
    """,
]

SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER deploy_counts_insert AFTER INSERT ON deploy_history WHEN NEW.is_deleted = 'N'
    BEGIN {_BUMP.format(row="NEW")}; END
    """,
    f"""
    CREATE TRIGGER deploy_counts_update_old AFTER UPDATE OF environment, status, is_deleted
    ON deploy_history WHEN OLD.is_deleted = 'N'
    BEGIN {_DROP.format(row="OLD")}; END
    """,
    f"""
    CREATE TRIGGER deploy_counts_update_new AFTER UPDATE OF environment, status, is_deleted
    ON deploy_history WHEN NEW.is_deleted = 'N'
    BEGIN {_BUMP.format(row="NEW")}; END
    """,
    f"""
    CREATE TRIGGER deploy_counts_delete AFTER DELETE ON deploy_history WHEN OLD.is_deleted = 'N'
    BEGIN {_DROP.format(row="OLD")}; END
    """,
]


def create_triggers() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "deploy_counts",
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("environment", "status", name=op.f("pk_deploy_counts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No deploy may change between the count below and the triggers taking over.
        op.execute("LOCK TABLE deploy_history IN SHARE ROW EXCLUSIVE MODE")
    create_triggers()
    op.execute(
        "INSERT INTO deploy_counts (environment, status, n)"
        " SELECT environment, status, count(*) FROM deploy_history WHERE is_deleted = 'N'"
        " GROUP BY environment, status"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER deploy_counts_track ON deploy_history")
        op.execute("DROP FUNCTION deploy_counts_track()")
    else:
        for name in ("insert", "update_old", "update_new", "delete"):
            op.execute(f"DROP TRIGGER deploy_counts_{name}")
    op.drop_table("deploy_counts")
