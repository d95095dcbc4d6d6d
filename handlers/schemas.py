"""The REST API's models: pydantic models for what goes in and out, and `Operation`, one row of the
table of operations (handlers/openapi.py builds the document and the router from that table).

The handlers validate requests with these same models, so the document cannot promise something
the server does not do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bot.deploy.governance import MAX_FORCE_REASON
from bot.deploy.queries import MAX_PAGE_SIZE
from bot.deploy.service import MAX_DESCRIPTION
from bot.errors import DescriptionTooLong
from storage.models import Deploy, Runner, Status

API_PREFIX = "/api/v1"
REF_TEMPLATE = "#/components/schemas/{model}"
MAX_ID = 2**31 - 1  # deploy_history.id is a 32-bit integer
MAX_OFFSET = 2**53 - 1  # still exact in a JavaScript client
MAX_PAGE = 1_000_000
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _description_limit(value: str) -> str:
    # The service's own error, so the client sees the same code and message as from Slack.
    if len(value) > MAX_DESCRIPTION:
        raise DescriptionTooLong(length=len(value), limit=MAX_DESCRIPTION)
    return value


Description = Annotated[
    str,
    Field(pattern=NO_NUL, json_schema_extra={"maxLength": MAX_DESCRIPTION}),
    AfterValidator(_description_limit),
]


# --- request bodies: JSON, strictly typed, unknown fields refused --------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TriggerRequest(_Body):
    """Start a deploy."""

    environment: str = Field(
        description="Environment name or alias (case-insensitive).", examples=["production"]
    )
    branch: str | None = Field(
        default=None,
        description="Branch, tag or commit to deploy; the environment's default branch when omitted.",
        examples=["main"],
    )
    description: Description = Field(default="", description="Free text shown in history and Slack.")
    skip_build: bool = False
    skip_migrations: bool = False
    queue: bool = Field(
        default=False,
        description="When the environment is busy, wait in its queue (202) instead of being refused (409).",
    )
    force: str | None = Field(
        default=None,
        pattern=NO_NUL,
        max_length=MAX_FORCE_REASON,
        description="A manager's reason to deploy a branch the environment's allowed_branches refuse, "
        "or during a freeze window (audited).",
        examples=["INC-7 hotfix"],
    )
    at: datetime | None = Field(
        default=None,
        description="Start it then (ISO 8601; without an offset, in the bot's timezone): a scheduled deploy "
        "(202), at most 30 days ahead. The lock, freeze and queue apply when its time comes.",
        examples=["2026-12-01T22:00:00+08:00"],
    )


class RollbackRequest(_Body):
    """Deploy again the commit of an earlier successful deploy."""

    deploy_id: int = Field(
        ge=1, le=MAX_ID, description="The successful deploy whose version to restore.", examples=[1]
    )
    description: Description = Field(default="", description="Reason; a default names the target.")


# --- path and query parameters: strings from the URL, converted ----------------------------------


class DeployPath(BaseModel):
    deploy_id: int = Field(ge=1, le=MAX_ID, description="Deploy id.", examples=[1])


class LogQuery(BaseModel):
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Byte offset to read the log from.")
    output: Literal["json", "raw"] = Field(
        default="json",
        alias="format",
        description="`json` (whole characters as text) or `raw` (the bytes as text/plain, for curl).",
    )


class HistoryQuery(BaseModel):
    environment: str | None = Field(default=None, description="Environment name or alias.")
    status: Status | None = None
    page: int = Field(default=1, ge=1, le=MAX_PAGE, description="1-based page number.")
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)


# --- responses -----------------------------------------------------------------------------------


class DeployRecord(BaseModel):
    """A row of deploy_history. Timestamps are ISO 8601 in UTC."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    environment: str
    branch: str
    commit_hash: str | None
    status: Status
    deployed_by: str
    description: str
    error_message: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration: int | None = Field(description="Seconds from start to end.")
    created_at: datetime
    updated_at: datetime
    rollback_of: int | None = Field(description="The deploy whose version this one restored.")
    skip_build: bool
    skip_migrations: bool
    source: str = Field(description="Where it was started: slack, api, cli or console.")
    step_current: int | None
    step_total: int | None
    step_title: str | None
    exit_code: int | None
    log_size: int = Field(description="Bytes of log stored so far.")
    logs_cleared_at: datetime | None
    cancel_requested_by: str | None
    cancelled_by: str | None
    forced_by: str | None = Field(default=None, description="The manager whose --force let it past a rule.")
    scheduled_at: datetime | None = Field(default=None, description="A scheduled deploy's time (UTC).")
    approved_by: str | None = Field(default=None, description="Who approved it (approval environments).")
    force_reason: str | None = None

    @classmethod
    def of(cls, deploy: Deploy) -> DeployRecord:
        return cls.model_validate(deploy)


class StatusReport(BaseModel):
    """Where a deploy stands, small enough to poll."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    environment: str
    branch: str
    commit_hash: str | None
    status: Status
    finished: bool
    step_current: int | None
    step_total: int | None
    step_title: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration: int | None
    error_message: str | None
    exit_code: int | None
    log_size: int
    cancel_requested_by: str | None

    @classmethod
    def of(cls, deploy: Deploy) -> StatusReport:
        return cls.model_validate(
            {**DeployRecord.of(deploy).model_dump(), "finished": deploy.state.is_finished}
        )


class HistoryPage(BaseModel):
    """Newest first; soft-deleted records never appear."""

    items: list[DeployRecord]
    total: int
    page: int
    page_size: int
    pages: int


class LogText(BaseModel):
    """Log text from `offset`: whole UTF-8 characters only, so `next_offset` may stop short of the
    bytes stored when a character is still incomplete. Bytes that are not UTF-8 appear as U+FFFD;
    `format=raw` gives the exact bytes."""

    deploy_id: int
    status: Status
    offset: int
    next_offset: int = Field(description="Ask for this offset next.")
    complete: bool = Field(description="The deploy has finished and the whole log was returned.")
    text: str


class RunnerRecord(BaseModel):
    """A live bot process (DESIGN §12). Timestamps are ISO 8601 in UTC, by the database's clock."""

    runner_id: str = Field(description="host/boot id/pid namespace/pid/start time/instance.")
    host: str
    pid: int
    role: str = Field(description="serve, worker, console or cli.")
    environments: list[str] = Field(description="The environments whose scripts it runs.")
    draining: bool = Field(description="Stopping: it starts no more deploys and ends its running ones.")
    started_at: datetime
    seen_at: datetime = Field(description="When it last renewed its presence.")
    this_process: bool = Field(description="It is the process that answered this request.")

    @classmethod
    def of(cls, runner: Runner, this_runner: str) -> RunnerRecord:
        return cls(
            runner_id=runner.runner_id,
            host=runner.host,
            pid=runner.pid,
            role=runner.role,
            environments=list(runner.environment_names),
            draining=runner.draining,
            started_at=runner.started_at,
            seen_at=runner.seen_at,
            this_process=runner.runner_id == this_runner,
        )


class RunnerList(BaseModel):
    """Oldest first."""

    runners: list[RunnerRecord]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable machine-readable code, e.g. environment_busy.", examples=["invalid_input"]
    )
    message: str = Field(description="Human-readable, in the server's language or Accept-Language.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# --- operations ----------------------------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "Bad input: unknown environment, invalid branch, bad id, page out of range, body not JSON, "
    "wrong types, description too long. Nothing was written.",
    401: "Missing or wrong bearer token.",
    403: "Not permitted: not among the environment's deployers, or --force without being a manager, "
    "or unlocking someone else's lock without being a manager (locked_by_other).",
    404: "No such deploy (or deleted), the environment is not locked (not_locked), or no such route.",
    409: "The environment is busy, locked or its queue is full (queue_full), the branch is not allowed "
    "(branch_not_allowed), or the deploy has already finished.",
    413: "Request body larger than 1 MiB.",
    422: "The rollback target is not eligible (not a success, no commit, commit gone).",
    500: "A bug in the server (logged).",
    502: "The environment's git repository could not be read.",
}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    summary: str
    success: int = 200
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400,)
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    public: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
