"""`GET /api/v1/audit` (DESIGN §9): the audit trail, newest first, by environment or all. Its
models are described in the OpenAPI document by the `listAudit` row of handlers/openapi.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.deploy.queries import MAX_PAGE_SIZE
from bot.deploy.service import DeployService
from bot.errors import InvalidInput
from bot.i18n import Text
from handlers.schemas import MAX_PAGE


class AuditQuery(BaseModel):
    environment: str | None = Field(default=None, description="Environment name or alias.")
    page: int = Field(default=1, ge=1, le=MAX_PAGE, description="1-based page number.")
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)


class AuditRecord(BaseModel):
    """One entry of the audit trail. `at` is ISO 8601 in UTC, by the database's clock."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str = Field(description="A Slack user id, or `api:<token name>`.")
    action: str = Field(
        description="force, refused, cancel, lock, unlock, approve, reject or gate.", examples=["force"]
    )
    environment: str | None
    deploy_id: int | None
    detail: str = Field(description="The reason, or what was refused.")


class AuditList(BaseModel):
    """Newest first."""

    items: list[AuditRecord]
    total: int
    page: int
    page_size: int
    pages: int


class _Call(Protocol):
    service: DeployService
    query: AuditQuery


async def handle_audit(call: _Call) -> web.Response:
    query = call.query
    found = await call.service.audit(query.environment, query.page, query.page_size)
    pages = max(1, -(-found.total // found.page_size))
    if query.page > pages:
        raise InvalidInput(detail=Text("api.page_out_of_range", {"page": query.page, "pages": pages}))
    answer = AuditList(
        items=[AuditRecord.model_validate(event) for event in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=pages,
    )
    return web.Response(body=answer.model_dump_json().encode(), content_type="application/json")
