"""A deploy's log live over REST (DESIGN §10): `GET /api/v1/deploy/logs/{deploy_id}/stream` answers
Server-Sent Events, read from the database, so any process serves any deploy's stream.

Each piece of log stored becomes one event: its `id` is the byte offset the piece ends at (always
at a whole UTF-8 character), each line of the piece is a `data:` field. SSE ends a line at CR as
well as at LF, so a line's text is escaped: a backslash is written `\\\\` and a carriage return
`\\r` (nothing else changes); unescaping and joining the fields with "\\n" gives the log back
exactly. A `Last-Event-ID` header resumes after that offset. Once the deploy has finished and all
of its log was sent, an `end` event carries its status (as GET /status) and the stream closes.
Comment lines keep an idle connection alive. The operation's row is added to the table of
handlers/openapi.py, which builds the document and the router.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, Protocol

from aiohttp import web

from bot.deploy.logfollow import POLL_SECONDS, LogFollow
from bot.deploy.service import DeployService
from bot.errors import InvalidInput
from bot.i18n import Text
from handlers.schemas import API_PREFIX, MAX_OFFSET, DeployPath, Operation, StatusReport

KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"
OFFSET = re.compile(r"[0-9]{1,16}")
ESCAPES = str.maketrans({"\\": "\\\\", "\r": "\\r"})

DESCRIPTION = (
    "Server-Sent Events (`text/event-stream`), read from the database: any process serves any "
    "deploy. Each stored piece of log is one event whose `id` is the byte offset it ends at (always "
    "at a whole UTF-8 character) and whose `data:` fields are its lines (the text split at `\\n`; "
    "a piece that ends with a newline ends with an empty `data:` field). Because SSE also ends a "
    "line at a carriage return, each line is escaped: a backslash is sent as `\\\\` and a carriage "
    "return as `\\r`, nothing else changes; join the fields with `\\n` and undo the two escapes to "
    "get the log exactly. Send `Last-Event-ID` (a byte offset, e.g. the last `id` received) to "
    "resume after it; EventSource does this by itself on reconnect. `: keepalive` comment lines "
    "come every 15 s when there is nothing to send. Once the deploy has finished and all of its log "
    "was sent, an `event: end` whose `data` is the deploy's status (as getDeployStatus returns it) "
    "closes the stream, so following a finished deploy returns at once."
)
# One event, as OpenAPI 3.1 describes the items of an event stream.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["message", "end"], "description": "`end`: the last one."},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Byte offset the event ends at."},
        "data": {"type": "string", "description": "Log text (escaped), or the end's status JSON."},
    },
    "required": ["id", "data"],
}
LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "Byte offset to resume from (an event's `id`); the log's start when absent.",
    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
}


class _Call(Protocol):
    service: DeployService
    path: Any
    request: web.Request | None


def event(text: str, end: int) -> bytes:
    """One SSE event: `id` and a `data:` field per line, `\\` and CR escaped."""
    lines = text.translate(ESCAPES).split("\n")
    fields = [f"id: {end}", *(f"data: {line}" for line in lines)]
    return ("\n".join(fields) + "\n\n").encode()


def end_event(report: StatusReport, end: int) -> bytes:
    return f"event: end\nid: {end}\ndata: {report.model_dump_json()}\n\n".encode()


def resume_offset(header: str | None) -> int:
    if header is None or not header.strip():
        return 0
    value = header.strip()
    if not OFFSET.fullmatch(value) or int(value) > MAX_OFFSET:
        raise InvalidInput(detail=Text("api.stream.last_event_id", {"limit": MAX_OFFSET}))
    return int(value)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def handle_stream(call: _Call) -> web.StreamResponse:
    request = call.request
    assert request is not None
    offset = resume_offset(request.headers.get("Last-Event-ID"))
    deploy_id = call.path.deploy_id
    await call.service.get(deploy_id)  # 404 before the stream begins
    response = web.StreamResponse(headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    try:
        hint = functools.partial(call.service.announce_follow, deploy_id)
        with LogFollow(call.service, deploy_id, offset, hint=hint) as follow:
            while not _gone(request):
                text = await follow.next(wait=POLL_SECONDS)
                if text is None:
                    assert follow.deploy is not None
                    await response.write(end_event(StatusReport.of(follow.deploy), follow.offset))
                    break
                if text:
                    await response.write(event(text, follow.offset))
                    quiet_since = loop.time()
                elif loop.time() - quiet_since >= KEEPALIVE_SECONDS:
                    await response.write(KEEPALIVE)
                    quiet_since = loop.time()
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing more to send
    return response


STREAM_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "streamDeployLogs",
        "GET",
        f"{API_PREFIX}/deploy/logs/{{deploy_id}}/stream",
        "Follow a deploy's log live as Server-Sent Events, until an `end` event with its status",
        errors=(400, 404),
        path_params=DeployPath,
        extra={"event-stream": EVENT_SCHEMA, "description": DESCRIPTION, "header_params": (LAST_EVENT_ID,)},
    ),
)
STREAM_HANDLERS = {"streamDeployLogs": handle_stream}
