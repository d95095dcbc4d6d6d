"""deploy history and log chunks

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("commit_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deployed_by", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("is_deleted", sa.String(length=1), nullable=False),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.Column("skip_build", sa.Boolean(), nullable=False),
        sa.Column("skip_migrations", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=True),
        sa.Column("slack_channel", sa.String(length=32), nullable=True),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("step_current", sa.Integer(), nullable=True),
        sa.Column("step_total", sa.Integer(), nullable=True),
        sa.Column("step_title", sa.String(length=255), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("log_size", sa.BigInteger(), nullable=False),
        sa.Column("logs_cleared_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=255), nullable=True),
        sa.Column("cancelled_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollback_of"], ["deploy_history.id"], name=op.f("fk_deploy_history_rollback_of_deploy_history")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_history")),
    )
    with op.batch_alter_table("deploy_history", schema=None) as batch_op:
        batch_op.create_index("ix_deploy_history_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_deploy_history_env", ["is_deleted", "environment", "status", "id"], unique=False
        )
        batch_op.create_index("ix_deploy_history_list", ["is_deleted", "id"], unique=False)
        batch_op.create_index("ix_deploy_history_status", ["is_deleted", "status", "id"], unique=False)
        batch_op.create_index(
            "uq_deploy_history_active_environment",
            ["environment"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        )
        batch_op.create_index("uq_deploy_history_request_key", ["request_key"], unique=True)

    op.create_table(
        "deploy_log_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deploy_id", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deploy_id"],
            ["deploy_history.id"],
            name=op.f("fk_deploy_log_chunks_deploy_id_deploy_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_log_chunks")),
    )
    with op.batch_alter_table("deploy_log_chunks", schema=None) as batch_op:
        batch_op.create_index("uq_deploy_log_chunks_deploy_offset", ["deploy_id", "offset"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("deploy_log_chunks", schema=None) as batch_op:
        batch_op.drop_index("uq_deploy_log_chunks_deploy_offset")

    op.drop_table("deploy_log_chunks")
    with op.batch_alter_table("deploy_history", schema=None) as batch_op:
        batch_op.drop_index("uq_deploy_history_request_key")
        batch_op.drop_index(
            "uq_deploy_history_active_environment",
            sqlite_where=sa.text("status IN ('pending', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        )
        batch_op.drop_index("ix_deploy_history_status")
        batch_op.drop_index("ix_deploy_history_list")
        batch_op.drop_index("ix_deploy_history_env")
        batch_op.drop_index("ix_deploy_history_created_at")

    op.drop_table("deploy_history")
