"""LocalSlack: a Slack workspace on 127.0.0.1 serving the Web API, response_urls, file uploads and
Socket Mode.

`deploybot console` runs the real Bolt app against it, and the tests subclass it (tests/fakeslack.py).
slack_sdk's AsyncWebClient talks to it unchanged through `base_url=local.api_url`; answers follow the
shapes Slack sends (ts values, message objects, full view objects, `ok: false` errors with HTTP 200,
`Retry-After` on 429). Every request is kept in `calls` as an ApiCall, and its effect in the state
of state.py, so a test or the console can read the workspace the way a user would see it. What each
Web API method does is webapi.py; this module reads requests, checks them, and records them. With
`rate_limits` (ratelimits.py's SLACK_LIMITS) it also answers 429 where Slack would.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot.console import webapi
from bot.console.ratelimits import RateLimit, RateLimiter
from bot.console.state import ResponseTarget, SlackError, UploadedFile, WorkspaceState, flag
from bot.console.team import APP_ID, TEAM_ID, new_id

log = logging.getLogger(__name__)

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
# slack_sdk sends these as JSON strings when a method is called with form or query parameters.
JSON_PARAMS = ("blocks", "attachments", "view", "files", "metadata")
# Which part of a request carries Block Kit, per method (checked before the method runs).
BLOCK_CARRIERS = {
    "chat.postMessage": "message",
    "chat.update": "message",
    "chat.postEphemeral": "message",
    "response_url": "message",
    "views.open": "view",
    "views.update": "view",
    "views.push": "view",
    "views.publish": "view",
}


@dataclass(frozen=True)
class ApiCall:
    """One request the app made to the workspace, as it arrived, and what was answered."""

    method: str  # a Web API method, or "response_url" / "file_upload"
    params: dict[str, Any]
    time: float
    status: int = 200
    response: Any = None  # the JSON body answered (text for uploads and response_url)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not (isinstance(self.response, dict) and not self.response.get("ok"))


@dataclass(frozen=True)
class Answer:
    """An HTTP answer before it is sent: JSON when `body` is a dict, text otherwise."""

    status: int
    body: dict[str, Any] | str
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"

    def to_response(self) -> web.Response:
        if isinstance(self.body, dict):
            return web.json_response(self.body, status=self.status, headers=dict(self.headers))
        return web.Response(
            text=self.body, status=self.status, headers=dict(self.headers), content_type=self.content_type
        )


CallHook = Callable[[ApiCall], Awaitable[None] | None]


class LocalSlack(WorkspaceState):
    """The Slack Web API, response_url endpoints, file uploads and Socket Mode, served on 127.0.0.1.

    `async with LocalSlack() as local:` then point a client at `local.api_url`. Besides the state
    (WorkspaceState): `calls` (every ApiCall in order), `socket_acks`, `socket_connections`.
    `rate_limits=SLACK_LIMITS` (ratelimits.py) answers 429 where Slack would; off by default.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: CallHook | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.on_call = on_call
        self.limiter = RateLimiter(rate_limits) if rate_limits else None
        self.calls: list[ApiCall] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0  # connections ever accepted
        self._targets: dict[str, ResponseTarget] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            **{name: functools.partial(method, self) for name, method in webapi.METHODS.items()},
            # these two hand out addresses of this server
            "files.getUploadURLExternal": self._upload_url,
            "apps.connections.open": self._connections_open,
        }

    # ---- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"{self.url}api/"

    async def start(self) -> LocalSlack:
        if self._runner is not None:  # already listening
            return self
        app = web.Application(client_max_size=64 * 1024 * 1024)  # whole deploy logs are uploaded
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_post("/{kind:commands|actions}/{team}/{serial}/{token}", self._response_url)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        for future in self._pending.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- what an interaction hands the app

    def response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
        kind: str = "actions",
    ) -> str:
        """A fresh response_url, tied to the channel, user and message an interaction came from.

        `kind` is "commands" for a slash command, "actions" for a click.
        """
        token = secrets.token_urlsafe(18)
        url = f"{self.url}{kind}/{TEAM_ID}/{secrets.randbelow(9 * 10**12) + 10**12}/{token}"
        self._targets[token] = ResponseTarget(url, channel, user, message_ts, ephemeral)
        self.responses[url] = []
        return url

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every call and connection)."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # ---- checks a subclass can extend

    def intercept(self, method: str, params: dict[str, Any]) -> Answer | None:
        """An answer to send instead of running the method (tests inject failures here)."""
        return None

    def block_problems(self, method: str, payload: dict[str, Any]) -> list[str]:
        """Why Slack would refuse the Block Kit in `payload` (`kind` per BLOCK_CARRIERS)."""
        if BLOCK_CARRIERS.get(method) == "view":
            blocks = (
                payload.get("view", {}).get("blocks", []) if isinstance(payload.get("view"), dict) else []
            )
            limit = VIEW_BLOCK_LIMIT
        else:
            blocks, limit = payload.get("blocks") or [], MESSAGE_BLOCK_LIMIT
        if len(blocks) > limit:
            return [f"no more than {limit} items allowed [json-pointer:/blocks]"]
        return []

    # ---- the Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params, token = await _read_params(request)
        except SlackError as exc:
            return await self._record(method, {}, Answer(200, exc.body()))
        answer = (
            self.intercept(method, params)
            or self._rate_limited(method, params)
            or self._run_method(method, params, token)
        )
        return await self._record(method, params, answer)

    def _rate_limited(self, method: str, params: dict[str, Any]) -> Answer | None:
        wait = self.limiter.retry_after(method, params) if self.limiter else None
        if wait is None:
            return None
        return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)})

    def _run_method(self, method: str, params: dict[str, Any], token: str | None) -> Answer:
        run = self._methods.get(method)
        try:
            if run is None:
                raise SlackError("unknown_method")
            if not token:
                raise SlackError("not_authed")
            if (method == "apps.connections.open") != token.startswith("xapp-"):
                raise SlackError("not_allowed_token_type")
            self._check_blocks(method, params)
            return Answer(200, run(params))
        except SlackError as exc:
            return Answer(200, exc.body())

    def _check_blocks(self, method: str, params: dict[str, Any]) -> None:
        if method not in BLOCK_CARRIERS:
            return
        problems = self.block_problems(method, params)
        if not problems:
            return
        messages = [f"[ERROR] {p}" for p in problems]
        if BLOCK_CARRIERS[method] == "view":  # views.* report Block Kit errors this way
            raise SlackError("invalid_arguments", response_metadata={"messages": messages})
        raise SlackError("invalid_blocks", errors=problems, response_metadata={"messages": messages})

    async def _record(self, method: str, params: dict[str, Any], answer: Answer) -> web.Response:
        call = ApiCall(method, params, time.time(), answer.status, answer.body)
        self.calls.append(call)
        if self.on_call is not None:
            try:
                result = self.on_call(call)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_call hook failed for %s", method)
        await self._notify()
        return answer.to_response()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        name, length = params.get("filename"), str(params.get("length", ""))
        if not name or not length.isdigit():
            raise SlackError("invalid_arguments")
        file = UploadedFile(id=new_id("F"), name=name, length=int(length), title=name)
        self.files[file.id] = file
        return {"ok": True, "upload_url": f"{self.url}upload/v1/{file.id}", "file_id": file.id}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"}

    # ---- file upload URL and response_url

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        file = self.files.get(request.match_info["file_id"])
        data = await _read_upload(request)
        if file is None or file.complete:
            return await self._record("file_upload", {"length": len(data)}, Answer(404, "not_found"))
        file.data = data
        params = {"file_id": file.id, "filename": file.name, "length": len(data)}
        return await self._record("file_upload", params, Answer(200, f"OK - {len(data)}"))

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        target = self._targets.get(request.match_info["token"])
        url = target.url if target else str(request.url)
        try:
            body = await request.json()
        except ValueError:
            body = None
        params = {"url": url, **body} if isinstance(body, dict) else {"url": url}
        answer = self.intercept("response_url", params) or self._respond(target, body)
        return await self._record("response_url", params, answer)

    def _respond(self, target: ResponseTarget | None, body: Any) -> Answer:
        if target is None:
            return Answer(404, "no_service")
        if not isinstance(body, dict):
            return Answer(400, "invalid_payload")
        if not flag(body.get("delete_original")):
            if not (body.get("text") or body.get("blocks")):
                return Answer(400, "no_text")
            if self.block_problems("response_url", body):
                return Answer(400, "invalid_blocks")
        self.responses[target.url].append(body)
        webapi.apply_response(self, target, body)
        return Answer(200, "ok")

    # ---- Socket Mode

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)  # tickets are single use
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_str(json.dumps(_hello(len(self._sockets))))
        await self._notify()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_ack(json.loads(frame.data))
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws

    def _on_ack(self, ack: dict[str, Any]) -> None:
        self.socket_acks.append(ack)
        future = self._pending.pop(str(ack.get("envelope_id")), None)
        if future is not None and not future.done():
            future.set_result(ack)

    async def wait_socket(self, connections: int = 1, timeout: float = 10.0) -> None:
        """Wait until `connections` Socket Mode connections were ever accepted and one is open."""
        await self.wait_until(lambda: self.socket_connections >= connections and self._sockets, timeout)

    async def send_envelope(self, envelope: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
        """Send an envelope on the newest connection; return the app's ack (with its `payload`, if any)."""
        envelope = {"envelope_id": str(uuid.uuid4()), **envelope}
        await self.wait_socket(timeout=timeout)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = future
        try:
            await self._sockets[-1].send_str(json.dumps(envelope))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(envelope["envelope_id"], None)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected app to reconnect, as Slack does every few hours."""
        if self._sockets:
            frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-local"}}
            await self._sockets[-1].send_str(json.dumps(frame))


async def _read_params(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Query string plus JSON or form body, JSON-valued fields decoded; the token from Authorization."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            params.update(body)
        else:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in JSON_PARAMS:
        if isinstance(params.get(key), str) and params[key]:
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                raise SlackError("invalid_arguments") from None
    token = params.pop("token", None)
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ")
    return params, token


async def _read_upload(request: web.Request) -> bytes:
    """Upload URLs take the raw bytes, or a multipart form with one file."""
    if request.content_type != "multipart/form-data":
        return await request.read()
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "filename", None):
            return bytes(await part.read())  # type: ignore[union-attr]
    return b""


def _hello(connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": connections,
        "debug_info": {"host": "applink-local", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID},
    }
