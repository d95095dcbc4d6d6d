"""The REST API's contract: the table of operations and the OpenAPI 3.1 document built from it and
from the models of handlers/schemas.py. The router is built from the same table, so the document
cannot leave a route undescribed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from handlers.rest_approvals import APPROVAL_OPERATIONS
from handlers.rest_audit import AuditList, AuditQuery
from handlers.rest_locks import LOCK_OPERATIONS
from handlers.rest_stream import STREAM_OPERATIONS
from handlers.schemas import (
    API_PREFIX,
    ERROR_DESCRIPTIONS,
    REF_TEMPLATE,
    DeployPath,
    DeployRecord,
    ErrorResponse,
    Health,
    HistoryPage,
    HistoryQuery,
    LogQuery,
    LogText,
    Operation,
    RollbackRequest,
    RunnerList,
    StatusReport,
    TriggerRequest,
)

LOG_HEADERS = {
    "X-Next-Offset": {
        "description": "Byte offset to ask for next.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-Log-Complete": {
        "description": "`true` once the deploy has finished and the whole log was returned.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "triggerDeploy",
        "POST",
        f"{API_PREFIX}/deploy/trigger",
        "Start a deploy (201), or queue it when the environment is busy and `queue` is true (202)",
        success=201,
        response=DeployRecord,
        errors=(400, 403, 409, 413, 502),
        body=TriggerRequest,
        extra={"also": {202: "Queued: it starts by itself, oldest first, when the environment frees."}},
    ),
    Operation(
        "getDeployStatus",
        "GET",
        f"{API_PREFIX}/deploy/status/{{deploy_id}}",
        "Status and progress of a deploy",
        response=StatusReport,
        errors=(400, 404),
        path_params=DeployPath,
    ),
    Operation(
        "getDeployLogs",
        "GET",
        f"{API_PREFIX}/deploy/logs/{{deploy_id}}",
        "Log of a deploy from a byte offset; follow a running deploy by asking again from next_offset",
        response=LogText,
        errors=(400, 404),
        path_params=DeployPath,
        query=LogQuery,
        extra={"text/plain": True, "headers": LOG_HEADERS},
    ),
    *STREAM_OPERATIONS,
    Operation(
        "listDeployHistory",
        "GET",
        f"{API_PREFIX}/deploy/history",
        "Deploy history, newest first",
        response=HistoryPage,
        errors=(400,),
        query=HistoryQuery,
    ),
    Operation(
        "getDeployRecord",
        "GET",
        f"{API_PREFIX}/deploy/history/{{deploy_id}}",
        "One history record",
        response=DeployRecord,
        errors=(400, 404),
        path_params=DeployPath,
    ),
    Operation(
        "cancelDeploy",
        "POST",
        f"{API_PREFIX}/deploy/cancel/{{deploy_id}}",
        "Cancel a pending or running deploy (the script is stopped; poll status for the outcome)",
        success=202,
        response=DeployRecord,
        errors=(400, 404, 409),
        path_params=DeployPath,
    ),
    Operation(
        "rollbackDeploy",
        "POST",
        f"{API_PREFIX}/deploy/rollback",
        "Deploy again the commit of an earlier successful deploy",
        success=201,
        response=DeployRecord,
        errors=(400, 404, 409, 413, 422, 502),
        body=RollbackRequest,
    ),
    Operation(
        "listRunners",
        "GET",
        f"{API_PREFIX}/runners",
        "The live bot processes on this database and the environments each runs",
        response=RunnerList,
    ),
    Operation(
        "listAudit",
        "GET",
        f"{API_PREFIX}/audit",
        "The audit trail (locks, unlocks, forced deploys, cancels, refused attempts), newest first",
        response=AuditList,
        errors=(400,),
        query=AuditQuery,
    ),
    *LOCK_OPERATIONS,
    *APPROVAL_OPERATIONS,
    Operation(
        "getHealth",
        "GET",
        "/healthz",
        "Liveness and database reachability (503 when the database is down)",
        response=Health,
        errors=(),
        public=True,
    ),
    Operation(
        "getOpenApiDocument",
        "GET",
        f"{API_PREFIX}/openapi.json",
        "This document",
        errors=(),
        public=True,
    ),
)


# --- the document --------------------------------------------------------------------------------


class _ParameterSchema(GenerateJsonSchema):
    """An absent query parameter is the null: describe optional parameters without `null`."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        generated = super().default_schema(schema)
        if generated.get("default", ...) is None:
            generated.pop("default")
        return generated


def _schema(model: type[BaseModel], components: dict, mode: str, generator=GenerateJsonSchema) -> dict:
    generated = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode, schema_generator=generator)
    components.update(generated.pop("$defs", {}))
    return generated


def _ref(model: type[BaseModel], components: dict, mode: str) -> dict:
    components.setdefault(model.__name__, _schema(model, components, mode))
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _parameters(model: type[BaseModel] | None, where: str, components: dict) -> list[dict]:
    if model is None:
        return []
    generated = _schema(model, components, "validation", _ParameterSchema)
    required = set(generated.get("required", ()))
    parameters = []
    for name, prop in generated["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        parameter = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(op: Operation, components: dict) -> dict:
    error = {"description": "", "content": _json(_ref(ErrorResponse, components, "serialization"))}
    body = _ref(op.response, components, "serialization") if op.response else {"type": "object"}
    success: dict[str, Any] = {"description": op.summary, "content": _json(body)}
    if op.extra.get("event-stream"):
        success["content"] = {"text/event-stream": {"schema": op.extra["event-stream"]}}  # one event
    if op.extra.get("text/plain"):
        success["content"]["text/plain"] = {"schema": {"type": "string"}}
    if op.extra.get("headers"):
        success["headers"] = {name: {**spec, "required": True} for name, spec in op.extra["headers"].items()}
    responses: dict[str, Any] = {str(op.success): success}
    for code, description in op.extra.get("also", {}).items():  # another success, same body
        responses[str(code)] = {**success, "description": description}
    if op.operation_id == "getHealth":
        responses["503"] = {"description": "The database is unreachable.", "content": _json(body)}
    codes = set(op.errors) | ({401} if not op.public else set()) | {500}
    for code in sorted(codes):
        responses[str(code)] = {**error, "description": ERROR_DESCRIPTIONS[code]}
    if 401 in codes:
        responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return responses


def _operation(op: Operation, components: dict) -> dict:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": ["health" if op.public else "deploy"],
        "responses": _responses(op, components),
    }
    parameters = _parameters(op.path_params, "path", components) + _parameters(op.query, "query", components)
    parameters += op.extra.get("header_params", ())
    if op.extra.get("description"):
        spec["description"] = op.extra["description"]
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": _json(_ref(op.body, components, "validation"))}
    if op.public:
        spec["security"] = []
    return spec


def build_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deploybot REST API",
            "version": "1",
            "description": "Trigger, follow, cancel and roll back deploys from scripts and CI. "
            "Authenticate with `Authorization: Bearer <token>` (tokens from DEPLOYBOT_API_TOKENS). "
            'Errors are `{"error": {"code": ..., "message": ...}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
