"""Tables, the deploy status lifecycle, and the database's clock.

`deploy_history` keeps the CRM page's columns and adds what the bot needs. Log output lives in
`deploy_log_chunks`, appended as it arrives and read back by byte offset; the legacy `logs` column
is only read for rows imported from the CRM page, which kept the whole log there.

Every lifecycle timestamp is the database's `db_now()`, never a process's clock: several processes
judge each other's leases by these times, and their clocks (or their pauses) must not matter.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    literal,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"  # waits for its time (DESIGN §10)
    QUEUED = "queued"  # waits for its environment to free
    AWAITING_APPROVAL = "awaiting_approval"  # waits for a second pair of eyes (DESIGN §9)
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Not finished: waiting, holding its environment or running."""
        return self not in FINISHED_STATUSES

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATUSES

    @property
    def holds_environment(self) -> bool:
        return self in HOLDING_STATUSES

    @property
    def is_leased(self) -> bool:
        return self in LEASED_STATUSES


FINISHED_STATUSES = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELLED})
# The two predicates of DESIGN §9, written once (the SQL forms are below): a deploy that holds its
# environment (one at a time, enforced by a unique index), and one that has an owner or is waiting
# to be claimed by one, within a lease: only those can be reaped. Queued and scheduled deploys hold
# nothing; a deploy awaiting approval holds its environment but has no lease.
HOLDING_STATUSES = frozenset({Status.AWAITING_APPROVAL, Status.PENDING, Status.RUNNING})
LEASED_STATUSES = frozenset({Status.PENDING, Status.RUNNING})
WAITING_STATUSES = frozenset({Status.SCHEDULED, Status.QUEUED})
ACTIVE_STATUSES = frozenset(Status) - FINISHED_STATUSES

# Every allowed move. A pending deploy may fail or be cancelled before its script starts
# (commit gone, spawn error, cancel, crash); a waiting one starts, waits for approval or is
# cancelled (also: missed, rejected, approval expired); nothing leaves a finished state.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.AWAITING_APPROVAL, Status.PENDING, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.AWAITING_APPROVAL, Status.PENDING, Status.CANCELLED}),
    Status.AWAITING_APPROVAL: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.PENDING: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELLED}),
    Status.SUCCESS: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def sources_of(target: Status) -> frozenset[Status]:
    """The states from which `target` may be reached."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """This process's clock: for display and retention cutoffs, never for a lifecycle timestamp."""
    return datetime.now(UTC)


class db_now(FunctionElement[datetime]):  # lowercase: used like the SQL function it renders
    """The database's clock in UTC, as the naive timestamp the columns hold. On SQLite it is the
    host's clock, which is fine: one file, one process. The SQLite form has the microsecond digits
    SQLAlchemy writes, so the stored strings compare in time order with the ones it wrote."""

    type = UTCDateTime()
    inherit_cache = True


class seconds_after(FunctionElement[datetime]):
    """`when` plus `seconds` (a float, negative for before), in the database."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, when, seconds: float) -> None:
        super().__init__(when, literal(float(seconds), Float()))


_SQLITE_FORMAT = "'%Y-%m-%d %H:%M:%f000'"  # %f is SS.SSS: padded to SQLAlchemy's six digits


@compiles(db_now, "postgresql")
def _db_now_postgresql(element, compiler, **kw) -> str:
    return "timezone('utc', now())"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element, compiler, **kw) -> str:
    return f"strftime({_SQLITE_FORMAT}, 'now')"


@compiles(seconds_after, "postgresql")
def _seconds_after_postgresql(element, compiler, **kw) -> str:
    when, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({when} + make_interval(secs => {seconds}))"


@compiles(seconds_after, "sqlite")
def _seconds_after_sqlite(element, compiler, **kw) -> str:
    when, seconds = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"strftime({_SQLITE_FORMAT}, {when}, {seconds} || ' seconds')"


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# 'awaiting_approval' is 17 characters. SQLite ignores a VARCHAR's length, and widening it there would
# rebuild the table (migration 0009): its declaration stays as it was.
STATUS_TYPE = String(20).with_variant(String(16), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# The predicates of the partial indexes. A query meant to use one must say it in these very words
# (with literals, not bound parameters), or SQLite cannot tell that the index applies.
HOLDS_SQL = text("status IN ('awaiting_approval', 'pending', 'running')")  # holds its environment
LEASED_SQL = text("status IN ('pending', 'running')")  # has an owner (or awaits one), can be reaped
WAITING_SQL = text("status IN ('scheduled', 'queued')")  # waits for its time or its environment


class Deploy(Base):
    __tablename__ = "deploy_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str] = mapped_column(String(255))
    commit_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(STATUS_TYPE, default=Status.PENDING.value)
    deployed_by: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    logs: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=db_now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=db_now(), onupdate=db_now())
    is_deleted: Mapped[str] = mapped_column(String(1), default="N")

    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("deploy_history.id"))
    skip_build: Mapped[bool] = mapped_column(Boolean, default=False)
    skip_migrations: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="slack")
    request_key: Mapped[str | None] = mapped_column(String(255))
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    step_current: Mapped[int | None] = mapped_column(Integer)
    step_total: Mapped[int | None] = mapped_column(Integer)
    step_title: Mapped[str | None] = mapped_column(String(255))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    log_size: Mapped[int] = mapped_column(BigInteger, default=0)
    logs_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(255))
    cancelled_by: Mapped[str | None] = mapped_column(String(255))
    # where the script runs, so a restarted bot on the same host can stop a script it orphaned
    runner_host: Mapped[str | None] = mapped_column(String(255))
    runner_pid: Mapped[int | None] = mapped_column(Integer)  # the script's (its group's) pid
    # the process that runs the deploy (bot/deploy/identity.py), and until when, by the database's
    # clock, it holds it: renewed every few seconds, or the deploy is reaped
    runner_id: Mapped[str | None] = mapped_column(String(512))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # governance and automation (DESIGN §9, §10)
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    forced_by: Mapped[str | None] = mapped_column(String(255))  # a manager's --force, with its reason
    force_reason: Mapped[str | None] = mapped_column(Text)
    # the gate the script waits at now (`::gate:: <question>`), and its answer once given
    gate_question: Mapped[str | None] = mapped_column(Text)
    gate_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gate_answer: Mapped[str | None] = mapped_column(String(16))  # "continue" | "abort"
    gate_answered_by: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        # The database itself keeps one deploy holding each environment, across processes.
        Index(
            "uq_deploy_history_active_environment",
            "environment",
            unique=True,
            sqlite_where=HOLDS_SQL,
            postgresql_where=HOLDS_SQL,
        ),
        # The few leased deploys among millions, for the reaper, the heartbeat and start-up.
        Index("ix_deploy_history_active", "id", sqlite_where=LEASED_SQL, postgresql_where=LEASED_SQL),
        # The waiting ones (queued, scheduled), for the jobs that start them.
        Index(
            "ix_deploy_history_waiting",
            "environment",
            "id",
            sqlite_where=WAITING_SQL,
            postgresql_where=WAITING_SQL,
        ),
        # A Slack delivery retried or a button clicked twice carries the same key: one deploy.
        Index("uq_deploy_history_request_key", "request_key", unique=True),
        # History filters: newest first, optionally by environment and/or status.
        Index("ix_deploy_history_list", "is_deleted", "id"),
        Index("ix_deploy_history_env", "is_deleted", "environment", "status", "id"),
        Index("ix_deploy_history_status", "is_deleted", "status", "id"),
        Index("ix_deploy_history_created_at", "created_at"),
    )

    @property
    def state(self) -> Status:
        return Status(self.status)

    @property
    def short_commit(self) -> str:
        return (self.commit_hash or "")[:7]

    def __repr__(self) -> str:
        return f"<Deploy #{self.id} {self.environment} {self.branch} {self.status}>"


class LogChunk(Base):
    __tablename__ = "deploy_log_chunks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploy_history.id", ondelete="CASCADE"))
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("uq_deploy_log_chunks_deploy_offset", "deploy_id", "offset", unique=True),)


class Runner(Base):
    """A live bot process (`serve`, `worker`, console, CLI) and the environments whose scripts it
    runs; kept while it runs, renewed with its leases, by the database's clock (storage/runners.py)."""

    __tablename__ = "deploy_runners"

    runner_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    environments: Mapped[str] = mapped_column(Text)  # comma-separated names; empty: runs none
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def environment_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.environments.split(",") if name)


class EnvironmentLock(Base):
    """An environment locked by one person (DESIGN §9): only they may deploy there until it ends."""

    __tablename__ = "environment_locks"

    environment: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the DM before expiry, sent once

    __table_args__ = (Index("ix_environment_locks_expires_at", "expires_at"),)


class AuditEvent(Base):
    """Who did what, where and when: locks, unlocks, forces, approvals, rejections, gate answers,
    cancels, and attempts the config refused (DESIGN §9)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=db_now())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str | None] = mapped_column(String(64))
    deploy_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_audit_events_environment", "environment", "id"),
        Index("ix_audit_events_at", "at"),
    )


class DeployCount(Base):
    """How many live (not soft-deleted) deploys each (environment, status) has: the totals of
    history pages without counting rows. Kept by database triggers (migration 0004), never by code."""

    __tablename__ = "deploy_counts"

    environment: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(STATUS_TYPE, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
