"""Approvals over REST (DESIGN §9): `POST /api/v1/deploy/approve/{deploy_id}` and
`POST /api/v1/deploy/reject/{deploy_id}`. A token acts as `api:<name>` and never approves a deploy it
asked for (403 self_approval); the service decides who else may. The operations' rows are added to
the table of handlers/openapi.py, which builds the document and the router."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from bot.deploy.service import DeployService
from handlers.schemas import API_PREFIX, DeployPath, DeployRecord, Operation


class _Call(Protocol):
    service: DeployService
    user: str
    path: Any


async def handle_approve(call: _Call) -> web.Response:
    return _json(DeployRecord.of(await call.service.approvals.approve(call.path.deploy_id, call.user)))


async def handle_reject(call: _Call) -> web.Response:
    return _json(DeployRecord.of(await call.service.approvals.reject(call.path.deploy_id, call.user)))


def _json(model: DeployRecord) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), content_type="application/json")


APPROVAL_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "approveDeploy",
        "POST",
        f"{API_PREFIX}/deploy/approve/{{deploy_id}}",
        "Approve a deploy that waits for approval: it starts, or waits for its turn in the queue "
        "(403 self_approval for one's own, 409 not_awaiting_approval once approved, rejected or ended)",
        response=DeployRecord,
        errors=(400, 403, 404, 409),
        path_params=DeployPath,
    ),
    Operation(
        "rejectDeploy",
        "POST",
        f"{API_PREFIX}/deploy/reject/{{deploy_id}}",
        "Reject a deploy that waits for approval: it ends cancelled, naming who rejected it",
        response=DeployRecord,
        errors=(400, 403, 404, 409),
        path_params=DeployPath,
    ),
)
APPROVAL_HANDLERS = {"approveDeploy": handle_approve, "rejectDeploy": handle_reject}
