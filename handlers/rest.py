"""The REST API (DESIGN §7) and /healthz on the aiohttp server that also serves Slack.

Each endpoint authenticates, validates its input with the models of handlers/schemas.py, calls the
deploy service and renders the answer. Whatever goes wrong becomes `{"error": {"code", "message"}}`
in one middleware: a `DeployError` with the status from `ERROR_STATUS`, an HTTP error (unknown
route, wrong method, body too large) with its own status, anything else as a logged 500.
"""

from __future__ import annotations

import asyncio
import codecs
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from bot.config import Config
from bot.deploy.queries import LogView
from bot.deploy.service import DeployService
from bot.errors import (
    AlreadyFinished,
    BranchNotAllowed,
    CommitMissing,
    DeployError,
    DeployNotFound,
    DescriptionTooLong,
    EnvironmentBusy,
    EnvironmentFrozen,
    EnvironmentLocked,
    GateAlreadyAnswered,
    GateAnswerInvalid,
    GateNotOpen,
    InvalidBranch,
    InvalidInput,
    LockedByOther,
    NoRunner,
    NotAwaitingApproval,
    NotLocked,
    NotPermitted,
    QueueFull,
    RepoUnavailable,
    RollbackNotEligible,
    SelfApproval,
    UnknownBranch,
    UnknownEnvironment,
)
from bot.i18n import CATALOGUES, Text, t
from handlers import openapi, schemas
from handlers.rest_approvals import APPROVAL_HANDLERS
from handlers.rest_audit import handle_audit
from handlers.rest_locks import LOCK_HANDLERS
from handlers.rest_stream import STREAM_HANDLERS
from handlers.schemas import (
    DeployRecord,
    ErrorDetail,
    ErrorResponse,
    Health,
    HistoryPage,
    LogText,
    Operation,
    RunnerList,
    RunnerRecord,
    StatusReport,
)
from storage.models import Status

log = logging.getLogger(__name__)

# The one place a refusal becomes an HTTP status.
ERROR_STATUS: dict[type[DeployError], int] = {
    InvalidInput: 400,
    UnknownEnvironment: 400,
    InvalidBranch: 400,
    UnknownBranch: 400,
    DescriptionTooLong: 400,
    DeployNotFound: 404,
    EnvironmentBusy: 409,
    AlreadyFinished: 409,
    NoRunner: 409,
    EnvironmentFrozen: 409,
    EnvironmentLocked: 409,
    QueueFull: 409,
    BranchNotAllowed: 409,
    NotLocked: 404,
    LockedByOther: 403,
    NotPermitted: 403,
    SelfApproval: 403,
    NotAwaitingApproval: 409,
    GateAnswerInvalid: 400,
    GateNotOpen: 409,
    GateAlreadyAnswered: 409,
    RollbackNotEligible: 422,
    CommitMissing: 422,
    RepoUnavailable: 502,
}

# Errors aiohttp raises before or around a handler, by status: (code, catalogue key).
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    401: ("unauthorized", "api.error.unauthorized"),
    404: ("not_found", "api.error.not_found"),
    405: ("method_not_allowed", "api.error.method_not_allowed"),
    413: ("payload_too_large", "api.error.too_large"),
}

# pydantic's error types -> what the client is told about the field
FIELD_PROBLEMS: dict[str, str] = {
    "missing": "api.field.missing",
    "extra_forbidden": "api.field.unknown",
    "int_type": "api.field.integer",
    "int_parsing": "api.field.integer",
    "int_from_float": "api.field.integer",
    "bool_type": "api.field.boolean",
    "bool_parsing": "api.field.boolean",
    "string_type": "api.field.string",
    "greater_than_equal": "api.field.min",
    "less_than_equal": "api.field.max",
    "string_pattern_mismatch": "api.field.characters",
    "literal_error": "api.field.choice",
    "enum": "api.field.choice",
}

SERVED_PATHS = (schemas.API_PREFIX + "/", "/healthz")
HEALTH_TIMEOUT = 5.0
HEALTH_CACHE_SECONDS = 1.0
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="deploybot"'}


@dataclass(frozen=True)
class ApiRequest:
    """One authenticated, validated request."""

    service: DeployService
    user: str
    path: Any
    query: Any
    body: Any
    request: web.Request | None = None  # for a handler that streams or reads headers


Handler = Callable[[ApiRequest], Awaitable[web.StreamResponse]]


def register_routes(app: web.Application, service: DeployService, config: Config) -> None:
    """Add the REST API, /healthz and /api/v1/openapi.json to `app`."""
    document = openapi.build_document()

    async def serve_document(call: ApiRequest) -> web.Response:
        return web.json_response(document)

    handlers: dict[str, Handler] = {
        "triggerDeploy": handle_trigger,
        "getDeployStatus": handle_status,
        "getDeployLogs": handle_logs,
        "listDeployHistory": handle_history,
        "getDeployRecord": handle_record,
        "cancelDeploy": handle_cancel,
        "rollbackDeploy": handle_rollback,
        "listRunners": handle_runners,
        "listAudit": handle_audit,
        **LOCK_HANDLERS,
        **APPROVAL_HANDLERS,
        **STREAM_HANDLERS,
        "getHealth": HealthProbe().handle,
        "getOpenApiDocument": serve_document,
    }
    if not config.secrets.api_tokens:
        log.warning("DEPLOYBOT_API_TOKENS is empty: every REST API request will be refused")
    app.middlewares.append(_json_errors(config.locale))
    for op in openapi.OPERATIONS:
        app.router.add_route(op.method, op.path, _endpoint(op, handlers[op.operation_id], service, config))


# --- the endpoints -------------------------------------------------------------------------------


async def handle_trigger(call: ApiRequest) -> web.Response:
    body: schemas.TriggerRequest = call.body
    deploy = await call.service.trigger(
        body.environment,
        body.branch,
        user=call.user,
        description=body.description,
        skip_build=body.skip_build,
        skip_migrations=body.skip_migrations,
        source="api",
        queue=body.queue,
        force=body.force,
        at=body.at,
    )
    waiting = deploy.state in (Status.QUEUED, Status.SCHEDULED)
    return _respond(DeployRecord.of(deploy), 202 if waiting else 201)


async def handle_status(call: ApiRequest) -> web.Response:
    return _respond(StatusReport.of(await call.service.get(call.path.deploy_id)))


async def handle_logs(call: ApiRequest) -> web.Response:
    view = await call.service.logs(call.path.deploy_id, call.query.offset)
    if call.query.output == "raw":
        return web.Response(
            body=view.data,
            content_type="text/plain",
            charset="utf-8",
            headers=_log_headers(view.next_offset, view.complete),
        )
    text, next_offset = whole_characters(view)
    page = LogText(
        deploy_id=view.deploy.id,
        status=view.deploy.state,
        offset=view.offset,
        next_offset=next_offset,
        complete=view.complete,
        text=text,
    )
    return _respond(page, headers=_log_headers(next_offset, view.complete))


async def handle_history(call: ApiRequest) -> web.Response:
    query: schemas.HistoryQuery = call.query
    page = await call.service.history(
        query.environment, query.status.value if query.status else None, query.page, query.page_size
    )
    if query.page > page.pages:
        raise InvalidInput(detail=Text("api.page_out_of_range", {"page": query.page, "pages": page.pages}))
    items = [DeployRecord.of(deploy) for deploy in page.items]
    return _respond(
        HistoryPage(items=items, total=page.total, page=page.page, page_size=page.page_size, pages=page.pages)
    )


async def handle_record(call: ApiRequest) -> web.Response:
    return _respond(DeployRecord.of(await call.service.get(call.path.deploy_id)))


async def handle_cancel(call: ApiRequest) -> web.Response:
    return _respond(DeployRecord.of(await call.service.cancel(call.path.deploy_id, user=call.user)), 202)


async def handle_rollback(call: ApiRequest) -> web.Response:
    body: schemas.RollbackRequest = call.body
    deploy = await call.service.rollback(
        body.deploy_id, user=call.user, reason=body.description, source="api"
    )
    return _respond(DeployRecord.of(deploy), 201)


async def handle_runners(call: ApiRequest) -> web.Response:
    runners = await call.service.runners()
    return _respond(RunnerList(runners=[RunnerRecord.of(r, call.service.runner_id) for r in runners]))


class HealthProbe:
    """/healthz needs no token, so anyone may call it as often as they like: the database is asked
    at most once a second (concurrent callers share that one question) and the answer reused."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._answer: tuple[float, bool] | None = None

    async def handle(self, call: ApiRequest) -> web.Response:
        if await self.reachable(call.service):
            return _respond(Health(status="ok", database="ok"))
        return _respond(Health(status="unavailable", database="unreachable"), 503)

    async def reachable(self, service: DeployService) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= HEALTH_CACHE_SECONDS:
                self._answer = (now, await _ping(service))
            return self._answer[1]


async def _ping(service: DeployService) -> bool:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            return await service.db.ping()
    except TimeoutError:
        return False


# --- rendering -----------------------------------------------------------------------------------


def whole_characters(view: LogView) -> tuple[str, int]:
    """The log bytes as text, holding back a UTF-8 character the read cut in two so the next
    read starts at its first byte. Once the log is complete nothing is held back (a character
    the script itself left unfinished becomes U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(view.data, final=view.complete)
    pending = len(decoder.getstate()[0])
    return text, view.next_offset - pending


def _log_headers(next_offset: int, complete: bool) -> dict[str, str]:
    return {"X-Next-Offset": str(next_offset), "X-Log-Complete": "true" if complete else "false"}


def _respond(model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _respond(ErrorResponse(error=ErrorDetail(code=code, message=message)), status, headers)


def status_of(exc: DeployError) -> int:
    for kind in type(exc).__mro__:
        if kind in ERROR_STATUS:
            return ERROR_STATUS[kind]
    return 400  # a refusal the table does not know yet is still the client's input


# --- the request pipeline ------------------------------------------------------------------------


def _endpoint(op: Operation, handler: Handler, service: DeployService, config: Config) -> AiohttpHandler:
    tokens = config.secrets.api_tokens

    async def endpoint(request: web.Request) -> web.StreamResponse:
        user = ""
        if not op.public:
            name = token_name(request.headers.get("Authorization"), tokens)
            if name is None:
                raise web.HTTPUnauthorized(headers=WWW_AUTHENTICATE)
            user = f"api:{name}"
        path = _parse(op.path_params, dict(request.match_info))
        query = _parse(op.query, {key: request.query[key] for key in request.query})
        body = await _read_body(op.body, request)
        return await handler(ApiRequest(service, user, path, query, body, request))

    endpoint.__name__ = op.operation_id
    return endpoint


def token_name(header: str | None, tokens: Mapping[str, str]) -> str | None:
    """The name of the token in `Authorization: Bearer <token>`, compared in constant time
    against every configured token (no early exit)."""
    scheme, _, given = (header or "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return None
    offered = given.encode("utf-8", "replace")
    found = None
    for token, name in tokens.items():
        if hmac.compare_digest(offered, token.encode("utf-8")):
            found = name
    return found


def _parse(model: type[BaseModel] | None, values: dict[str, str]) -> BaseModel | None:
    if model is None:
        return None
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid_input(exc) from None


async def _read_body(model: type[BaseModel] | None, request: web.Request) -> BaseModel | None:
    if model is None:
        return None
    raw = await request.read()  # over client_max_size: 413
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_input(exc) from None


def invalid_input(exc: ValidationError) -> InvalidInput:
    """The first problem pydantic found, as the service's InvalidInput in the catalogue's words."""
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return InvalidInput(detail=Text("api.body.not_json"))
    if not error["loc"]:
        return InvalidInput(detail=Text("api.body.not_object"))
    context = error.get("ctx") or {}
    params = {
        "field": ".".join(str(part) for part in error["loc"])[:64],
        "limit": context.get("ge", context.get("le", "")),
        "choices": str(context.get("expected", "")).replace(" or ", ", "),
    }
    return InvalidInput(detail=Text(FIELD_PROBLEMS.get(error["type"], "api.field.invalid"), params))


def request_locale(request: web.Request, default: str) -> str:
    """The best language of Accept-Language that the catalogue has, else the server's."""
    best, best_q = default, 0.0
    for part in request.headers.get("Accept-Language", "").split(","):
        tag, *params = part.strip().split(";")
        language = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if language in CATALOGUES and q > best_q:
            best, best_q = language, q
    return best


def _json_errors(default_locale: str) -> Middleware:
    @web.middleware
    async def json_errors(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        if not request.path.startswith(SERVED_PATHS):
            return await handler(request)  # Slack's endpoint answers in its own way
        try:
            return await handler(request)
        except DeployError as exc:
            locale = request_locale(request, default_locale)
            return _error(status_of(exc), exc.code, exc.message(locale))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            locale = request_locale(request, default_locale)
            code, key = HTTP_ERRORS.get(exc.status, ("http_error", "api.error.http"))
            headers = {
                k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")
            }
            return _error(exc.status, code, t(locale, key, status=exc.status), headers)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            locale = request_locale(request, default_locale)
            return _error(500, "internal_error", t(locale, "api.error.internal"))

    return json_errors
