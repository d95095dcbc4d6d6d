"""Environment locks over REST (DESIGN §9): `GET /api/v1/locks`, `PUT /api/v1/locks/{environment}`
(lock, or extend one's own) and `DELETE /api/v1/locks/{environment}` (unlock). A token acts as
`api:<name>`; the service decides who may lock and unlock. The operations' rows are added to the
table of handlers/openapi.py, which builds the document and the router."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.deploy.locks import DEFAULT_MINUTES, MAX_MINUTES, MAX_REASON
from bot.deploy.service import DeployService
from handlers.schemas import API_PREFIX, NO_NUL, Operation, _Body
from storage.models import EnvironmentLock


class LockPath(BaseModel):
    environment: str = Field(
        max_length=200, description="Environment name or alias (case-insensitive).", examples=["production"]
    )


class LockRequest(_Body):
    """Lock an environment for a while; the holder asking again extends the lock to end that long
    from now (and replaces the reason when one is given)."""

    duration_minutes: int = Field(
        default=DEFAULT_MINUTES, ge=1, le=MAX_MINUTES, description="How long, in minutes (at most 7 days)."
    )
    reason: str = Field(
        default="",
        pattern=NO_NUL,
        json_schema_extra={"maxLength": MAX_REASON},
        description="Why, shown to whoever is refused meanwhile.",
        examples=["release 4.2 verification"],
    )


class LockRecord(BaseModel):
    """A lock. Timestamps are ISO 8601 in UTC, by the database's clock."""

    model_config = ConfigDict(from_attributes=True)

    environment: str
    holder: str = Field(description="A Slack user id, or `api:<token name>`.")
    reason: str
    locked_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, lock: EnvironmentLock) -> LockRecord:
        return cls.model_validate(lock)


class LockList(BaseModel):
    """The live locks, by environment name."""

    locks: list[LockRecord]


class _Call(Protocol):
    service: DeployService
    user: str
    path: Any
    body: Any


async def handle_list_locks(call: _Call) -> web.Response:
    return _json(LockList(locks=[LockRecord.of(lock) for lock in await call.service.locks.all()]))


async def handle_lock(call: _Call) -> web.Response:
    body: LockRequest = call.body
    lock = await call.service.locks.lock(
        call.path.environment, user=call.user, duration=body.duration_minutes, reason=body.reason
    )
    return _json(LockRecord.of(lock))


async def handle_unlock(call: _Call) -> web.Response:
    return _json(LockRecord.of(await call.service.locks.unlock(call.path.environment, user=call.user)))


def _json(model: BaseModel) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), content_type="application/json")


LOCKS = f"{API_PREFIX}/locks"
LOCK_OPERATIONS: tuple[Operation, ...] = (
    Operation("listLocks", "GET", LOCKS, "The locked environments", response=LockList),
    Operation(
        "lockEnvironment",
        "PUT",
        f"{LOCKS}/{{environment}}",
        "Lock an environment: only the holder may deploy or roll back there until it ends; "
        "the holder asking again extends it (409 environment_locked when someone else holds it)",
        response=LockRecord,
        errors=(400, 403, 404, 409, 413),
        path_params=LockPath,
        body=LockRequest,
    ),
    Operation(
        "unlockEnvironment",
        "DELETE",
        f"{LOCKS}/{{environment}}",
        "Unlock an environment: one's own lock, or anyone's for a manager (404 not_locked when "
        "it is not locked, 403 locked_by_other for someone else's)",
        response=LockRecord,
        errors=(400, 403, 404),
        path_params=LockPath,
    ),
)
LOCK_HANDLERS = {
    "listLocks": handle_list_locks,
    "lockEnvironment": handle_lock,
    "unlockEnvironment": handle_unlock,
}
