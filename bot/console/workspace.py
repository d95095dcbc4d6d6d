"""A Slack workspace on 127.0.0.1: the Web API, response_url, file uploads and Socket Mode.

`deploybot console` runs the real Bolt app against it, and the tests subclass it (tests/fakeslack.py).
slack_sdk's AsyncWebClient talks to it unchanged through `base_url=local.api_url`; answers follow the
shapes Slack sends (ts values, message objects, full view objects, `ok: false` errors with HTTP 200,
`Retry-After` on 429). Every request is kept in `calls` and its effect in plain dicts that look like
Slack's own objects, so a test or the console can read the workspace the way a user would see it.

The second half builds what Slack sends to an app (slash command forms, interaction payloads, event
envelopes) and signs it the way Slack does.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import inspect
import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

TEAM_ID = "T0DEPLOY1"
TEAM_DOMAIN = "deployteam"
TEAM_NAME = "Deploy Team"
APP_ID = "A0DEPLOYB"
BOT_USER_ID = "U0DEPLOYB"
BOT_ID = "B0DEPLOYB"
BOT_NAME = "deploybot"
VERIFICATION_TOKEN = "Zx3cV7bN1mQ9wE5rT2yU8iO4"  # the legacy token Slack still puts in every payload
DEFAULT_CHANNEL = ("C0DEPLOY1", "deploys")
DEFAULT_USERS = {"U0ADMIN01": ("zhang.wei", "张伟", True), "U0GUEST01": ("li.na", "李娜", False)}
FORM = "application/x-www-form-urlencoded"

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
_BOT_PROFILE = {
    "id": BOT_ID,
    "deleted": False,
    "name": BOT_NAME,
    "updated": 1764300000,
    "app_id": APP_ID,
    "icons": {"image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png"},
    "team_id": TEAM_ID,
}


@dataclass(frozen=True)
class Call:
    """One request as it arrived, and what was answered."""

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


class SlackError(Exception):
    """A Web API refusal: HTTP 200 with `ok: false`, as Slack answers nearly every error."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def answer(self) -> Answer:
        return Answer(200, {"ok": False, "error": self.error, **self.extra})


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True  # False: chat.postMessage answers not_in_channel


@dataclass
class UploadedFile:
    id: str
    name: str
    length: int  # as announced to files.getUploadURLExternal
    title: str = ""
    data: bytes | None = None  # None until the bytes were POSTed to the upload URL
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    complete: bool = False


@dataclass
class _ResponseTarget:
    """What a response_url is tied to: where answers go and which message `replace_original` means."""

    url: str
    channel: str | None
    user: str | None
    message_ts: str | None
    ephemeral: bool


Handler = Callable[[dict[str, Any], str], dict[str, Any]]
CallHook = Callable[[Call], Awaitable[None] | None]


class LocalSlack:
    """The Slack Web API, response_url endpoints, file uploads and Socket Mode, served on 127.0.0.1.

    `async with LocalSlack() as local:` then point a client at `local.api_url`. State (all plain
    dicts shaped like Slack's objects): `calls`, `messages[(channel, ts)]` (current state after
    updates), `replies[(channel, parent_ts)]` (reply ts in order), `ephemeral[user]`, `views[id]`,
    `homes[user]` (view id), `files[id]`, `responses[url]` (bodies POSTed to each response_url).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, on_call: CallHook | None = None) -> None:
        self.host = host
        self.port = port
        self.on_call = on_call
        self.auto_channels = True  # an unknown channel id is a channel the bot is in
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.replies: dict[tuple[str, str], list[str]] = {}
        self.ephemeral: dict[str, list[dict[str, Any]]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.modal_history: list[str] = []  # view ids in the order they were opened, pushed or updated
        self.homes: dict[str, str] = {}
        self.files: dict[str, UploadedFile] = {}
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self.channels: dict[str, Channel] = {}
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0  # connections ever accepted
        self._targets: dict[str, _ResponseTarget] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._last_ts = 0
        self._runner: web.AppRunner | None = None
        self.methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update_message,
            "chat.postEphemeral": self._post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }
        for user_id, (name, real_name, admin) in DEFAULT_USERS.items():
            self.add_user(user_id, name, real_name=real_name, is_admin=admin)
        self.add_channel(*DEFAULT_CHANNEL)

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

    # ---- configuration

    def add_user(
        self, user_id: str, name: str, *, real_name: str | None = None, is_admin: bool = False
    ) -> dict[str, Any]:
        real_name = real_name or name
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Asia/Shanghai",
            "tz_label": "China Standard Time",
            "tz_offset": 28800,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": name,
                "display_name_normalized": name,
                "email": f"{name}@example.com",
                "team": TEAM_ID,
            },
            "is_admin": is_admin,
            "is_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": 1763000000,
        }
        return self.users[user_id]

    def set_group(self, group_id: str, user_ids: list[str]) -> None:
        self.groups[group_id] = list(user_ids)

    def add_channel(self, channel_id: str, name: str, *, member: bool = True) -> Channel:
        self.channels[channel_id] = Channel(channel_id, name, member)
        return self.channels[channel_id]

    # ---- reading the workspace

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies under a message, oldest first, each in its current state."""
        return [
            self.messages[(channel, r)]
            for r in self.replies.get((channel, ts), [])
            if (channel, r) in self.messages
        ]

    def channel_history(self, channel: str) -> list[dict[str, Any]]:
        """What the channel itself shows: top-level messages and broadcast replies, oldest first."""
        return [
            m
            for (c, ts), m in self.messages.items()
            if c == channel and (m.get("thread_ts") in (None, ts) or m.get("subtype") == "thread_broadcast")
        ]

    def home(self, user: str) -> dict[str, Any] | None:
        view_id = self.homes.get(user)
        return self.views.get(view_id) if view_id else None

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
        self._targets[token] = _ResponseTarget(url, channel, user, message_ts, ephemeral)
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

    # ---- HTTP plumbing

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params, token = await _read_params(request)
        except SlackError as exc:
            return await self._record(method, {}, exc.answer())
        answer = self.intercept(method, params) or self._run_method(method, params, token)
        return await self._record(method, params, answer)

    def _run_method(self, method: str, params: dict[str, Any], token: str | None) -> Answer:
        handler = self.methods.get(method)
        try:
            if handler is None:
                raise SlackError("unknown_method")
            if not token:
                raise SlackError("not_authed")
            if (method == "apps.connections.open") != token.startswith("xapp-"):
                raise SlackError("not_allowed_token_type")
            self._check_blocks(method, params)
            return Answer(200, handler(params, token))
        except SlackError as exc:
            return exc.answer()

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
        call = Call(method, params, time.time(), answer.status, answer.body)
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

    # ---- ids and shapes

    def _next_ts(self) -> str:
        """A Slack ts: wall-clock seconds.microseconds, unique and increasing across the workspace."""
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _bot_message(self, ts: str, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": params.get("text") or "",
            "team": TEAM_ID,
            "bot_profile": _BOT_PROFILE,
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        return message

    def _channel(self, channel_id: str | None) -> Channel:
        if not channel_id:
            raise SlackError("channel_not_found")
        if channel_id in self.users:  # posting to a user id goes to the app's DM with them
            channel_id = "D" + channel_id[1:]
            self.channels.setdefault(channel_id, Channel(channel_id, channel_id))
        if channel_id not in self.channels:
            if not self.auto_channels:
                raise SlackError("channel_not_found")
            self.add_channel(channel_id, channel_id.lower())
        return self.channels[channel_id]

    def _postable(self, channel_id: str | None) -> Channel:
        channel = self._channel(channel_id)
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel

    def _store_view(self, view: Any, view_id: str, previous: str | None, root: str | None) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackError("invalid_arguments")
        stored = full_view(
            {
                **view,
                "id": view_id,
                "hash": _new_hash(),
                "state": {"values": {}},
                "previous_view_id": previous,
                "root_view_id": root or view_id,
            }
        )
        self.views[view_id] = stored
        return copy.deepcopy(stored)

    # ---- Web API methods (each returns the `ok: true` body or raises SlackError)

    def _auth_test(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        channel = self._postable(params.get("channel"))
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackError("no_text")
        ts = self._next_ts()
        message = self._bot_message(ts, params)
        parent_ts = params.get("thread_ts")
        if parent_ts:
            parent = self.messages.get((channel.id, parent_ts))
            message["thread_ts"] = parent_ts
            message["parent_user_id"] = parent["user"] if parent else BOT_USER_ID
            if _flag(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
            self._add_reply(channel.id, parent_ts, ts)
        self.messages[(channel.id, ts)] = message
        return {"ok": True, "channel": channel.id, "ts": ts, "message": copy.deepcopy(message)}

    def _add_reply(self, channel: str, parent_ts: str, ts: str) -> None:
        replies = self.replies.setdefault((channel, parent_ts), [])
        replies.append(ts)
        parent = self.messages.get((channel, parent_ts))
        if parent is not None:
            parent.update(
                thread_ts=parent_ts,
                reply_count=len(replies),
                reply_users=[BOT_USER_ID],
                reply_users_count=1,
                latest_reply=ts,
            )

    def _update_message(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        ts = params.get("ts") or ""
        message = self.messages.get((channel.id, ts))
        if message is None:
            raise SlackError("message_not_found")
        if "text" in params:
            message["text"] = params["text"] or ""
        # Slack keeps the previous blocks when `blocks` is omitted; an empty list removes them.
        if params.get("blocks"):
            message["blocks"] = params["blocks"]
        elif "blocks" in params:
            message.pop("blocks", None)
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
        message["edited"] = {"user": BOT_ID, "ts": self._next_ts()}
        shown = {k: v for k, v in message.items() if k != "ts"}
        return {"ok": True, "channel": channel.id, "ts": ts, "text": message["text"], "message": shown}

    def _post_ephemeral(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        channel = self._postable(params.get("channel"))
        user = params.get("user")
        if not user:
            raise SlackError("user_not_in_channel")
        if not (params.get("text") or params.get("blocks")):
            raise SlackError("no_text")
        ts = self._next_ts()
        self._add_ephemeral(channel.id, user, ts, params, via="chat.postEphemeral")
        return {"ok": True, "message_ts": ts}

    def _add_ephemeral(self, channel: str | None, user: str, ts: str, body: dict[str, Any], via: str) -> None:
        self.ephemeral.setdefault(user, []).append(
            {
                "channel": channel,
                "user": user,
                "ts": ts,
                "text": body.get("text") or "",
                "blocks": body.get("blocks") or [],
                "thread_ts": body.get("thread_ts"),
                "via": via,
            }
        )

    def _views_open(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        if not params.get("trigger_id"):
            raise SlackError("invalid_arguments")
        view = self._store_view(params.get("view"), _new_id("V"), None, None)
        self.modal_history.append(view["id"])
        return {"ok": True, "view": view}

    def _views_push(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        if not params.get("trigger_id") or not self.modal_history:
            raise SlackError("invalid_arguments")
        below = self.views[self.modal_history[-1]]
        view = self._store_view(params.get("view"), _new_id("V"), below["id"], below["root_view_id"])
        self.modal_history.append(view["id"])
        return {"ok": True, "view": view}

    def _views_update(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        view_id = params.get("view_id") or next(
            (
                v["id"]
                for v in self.views.values()
                if params.get("external_id") and v["external_id"] == params["external_id"]
            ),
            None,
        )
        current = self.views.get(view_id or "")
        if current is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view = self._store_view(
            params.get("view"), current["id"], current["previous_view_id"], current["root_view_id"]
        )
        if view["type"] == "modal":
            self.modal_history.append(view["id"])
        return {"ok": True, "view": view}

    def _views_publish(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        user = params.get("user_id")
        if not user:
            raise SlackError("invalid_arguments")
        if isinstance(params.get("view"), dict) and params["view"].get("type") != "home":
            raise SlackError("invalid_arguments")
        current = self.home(user)
        if current and params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view_id = current["id"] if current else _new_id("V")
        view = self._store_view(params.get("view"), view_id, None, None)
        self.homes[user] = view_id
        return {"ok": True, "view": view}

    def _users_info(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        user = self.users.get(params.get("user") or "")
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": copy.deepcopy(user)}

    def _usergroup_users(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        users = self.groups.get(params.get("usergroup") or "")
        if users is None:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _conversations_info(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        return {
            "ok": True,
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "is_channel": channel.id.startswith("C"),
                "is_im": channel.id.startswith("D"),
                "is_private": False,
                "is_archived": False,
                "is_member": channel.member,
            },
        }

    def _upload_url(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        name, length = params.get("filename"), str(params.get("length", ""))
        if not name or not length.isdigit():
            raise SlackError("invalid_arguments")
        file = UploadedFile(id=_new_id("F"), name=name, length=int(length), title=name)
        self.files[file.id] = file
        return {"ok": True, "upload_url": f"{self.url}upload/v1/{file.id}", "file_id": file.id}

    def _complete_upload(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        ids = [str(entry.get("id")) for entry in entries]
        if any(self.files.get(i) is None or self.files[i].data is None for i in ids):
            raise SlackError("file_not_found")
        files = [self.files[i] for i in ids]
        channel_id = params.get("channel_id") or (params.get("channels") or "").split(",")[0]
        channel = self._postable(channel_id) if channel_id else None
        for file, entry in zip(files, entries, strict=True):
            file.title = entry.get("title") or file.name
            file.channel = channel.id if channel else None
            file.thread_ts = params.get("thread_ts")
            file.initial_comment = params.get("initial_comment")
            file.complete = True
        if channel is not None:
            self._share_files(channel.id, files, params)
        return {"ok": True, "files": [{"id": f.id, "title": f.title} for f in files]}

    def _share_files(self, channel: str, files: list[UploadedFile], params: dict[str, Any]) -> None:
        """Shared files show up as a message from the bot (in the thread when thread_ts is given)."""
        ts = self._next_ts()
        message = self._bot_message(ts, {"text": params.get("initial_comment") or ""})
        message["files"] = [
            {"id": f.id, "name": f.name, "title": f.title, "size": len(f.data or b"")} for f in files
        ]
        message["upload"] = True
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
            message["parent_user_id"] = BOT_USER_ID
            self._add_reply(channel, params["thread_ts"], ts)
        self.messages[(channel, ts)] = message

    def _connections_open(self, params: dict[str, Any], token: str) -> dict[str, Any]:
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

    def _respond(self, target: _ResponseTarget | None, body: Any) -> Answer:
        if target is None:
            return Answer(404, "no_service")
        if not isinstance(body, dict):
            return Answer(400, "invalid_payload")
        if not _flag(body.get("delete_original")):
            if not (body.get("text") or body.get("blocks")):
                return Answer(400, "no_text")
            if self.block_problems("response_url", body):
                return Answer(400, "invalid_blocks")
        self.responses[target.url].append(body)
        self._apply_response(target, body)
        return Answer(200, "ok")

    def _apply_response(self, target: _ResponseTarget, body: dict[str, Any]) -> None:
        """What Slack does with an answer posted to a response_url."""
        original = target.message_ts
        if _flag(body.get("delete_original")):
            if target.ephemeral:
                mine = self.ephemeral.get(target.user or "", [])
                mine[:] = [e for e in mine if e["ts"] != original]
            else:
                self.messages.pop((target.channel or "", original or ""), None)
            return
        if _flag(body.get("replace_original")) and original:
            if target.ephemeral:
                for entry in self.ephemeral.get(target.user or "", []):
                    if entry["ts"] == original:
                        entry.update(
                            text=body.get("text") or "", blocks=body.get("blocks") or [], via="response_url"
                        )
            elif (target.channel or "", original) in self.messages:
                message = self.messages[(target.channel or "", original)]
                message.update(text=body.get("text") or "", blocks=body.get("blocks") or [])
                message["edited"] = {"user": BOT_ID, "ts": self._next_ts()}
            return
        ts = self._next_ts()
        if body.get("response_type") == "in_channel" and target.channel:
            self.messages[(target.channel, ts)] = self._bot_message(ts, body)
            if body.get("thread_ts"):
                self.messages[(target.channel, ts)]["thread_ts"] = body["thread_ts"]
                self._add_reply(target.channel, body["thread_ts"], ts)
            return
        self._add_ephemeral(target.channel, target.user or "", ts, body, via="response_url")
        if original is None:  # a later replace_original on this URL replaces this answer
            target.message_ts, target.ephemeral = ts, True

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


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _new_id(prefix: str) -> str:
    return prefix + "0" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))


def _new_hash() -> str:
    return f"{int(time.time())}.{''.join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))}"


def _hello(connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": connections,
        "debug_info": {"host": "applink-local", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID},
    }


# ---- what Slack sends to the app


def new_trigger_id() -> str:
    return f"{secrets.randbelow(9 * 10**12) + 10**12}.2201958763041.{secrets.token_hex(16)}"


def action_ts() -> str:
    return f"{time.time():.6f}"


def full_view(view: dict[str, Any]) -> dict[str, Any]:
    """A view object as Slack stores and echoes it: the app's fields plus Slack's own."""
    view_id = view.get("id") or _new_id("V")
    base: dict[str, Any] = {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": view.get("type", "modal"),
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": _new_hash(),
        "title": None,
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }
    merged = {**base, **copy.deepcopy(view)}
    if merged["title"] is None:  # Home views have no title
        del merged["title"]
    return merged


def slash_command_form(
    text: str,
    *,
    user_id: str,
    user_name: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
    trigger_id: str,
    team_id: str = TEAM_ID,
    command: str = "/deploy",
) -> dict[str, str]:
    """The form fields of a slash command, in the order Slack sends them."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def block_actions_payload(
    action_id: str,
    value: str | None,
    *,
    user_id: str,
    user_name: str,
    trigger_id: str,
    channel_id: str | None = None,
    channel_name: str | None = None,
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    response_url: str | None = None,
    block_id: str | None = None,
    action_type: str = "button",
    selected_option: str | dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A click (or a select) on a message, an ephemeral message (no `message` object) or a view.

    The element is looked up by `action_id` (and `value`, when several share one) in the message's
    or view's blocks, so the action carries its real block_id, text, style and confirm; the
    payload's `state` holds every input's initial value, with the clicked select changed.
    """
    blocks = (view or message or {}).get("blocks") or []
    found_block, element = find_element(blocks, action_id, value)
    element = element or {"type": action_type, "action_id": action_id}
    block_id = block_id or found_block or "actions"
    action = _action(element, block_id, value, selected_option)
    changed = {(block_id, action_id): action["selected_option"]} if "selected_option" in action else {}
    state = _state(blocks, changed)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
    }
    if view is not None:
        shown = full_view(view)
        shown["state"] = {"values": state}
        payload["container"] = {"type": "view", "view_id": shown["id"]}
    else:
        message_ts = (message or {}).get("ts")
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
    payload.update(
        trigger_id=trigger_id,
        team={"id": team_id, "domain": TEAM_DOMAIN},
        enterprise=None,
        is_enterprise_install=False,
    )
    if view is not None:
        payload["view"] = shown
    else:
        if channel_id:
            payload["channel"] = {"id": channel_id, "name": channel_name or channel_id.lower()}
        if message is not None and not is_ephemeral:
            payload["message"] = copy.deepcopy(message)
        payload["state"] = {"values": state}
        if response_url:
            payload["response_url"] = response_url
    payload["actions"] = [action]
    return payload


def view_submission_payload(
    view: dict[str, Any],
    values: Mapping[str, Any],
    *,
    user_id: str,
    user_name: str,
    trigger_id: str,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A modal submitted with `values` (block_id -> what the user entered).

    static_select: the option value (str); plain_text_input: str or None; checkboxes: list of option
    values. Blocks not named keep their initial value, as Slack reports them.
    """
    shown = full_view(view)
    known = {block_id for block_id, _ in _elements(shown["blocks"])}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"no input block {sorted(unknown)} in the view")
    shown["state"] = {"values": _state(shown["blocks"], values)}
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": shown,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_closed_payload(
    view: dict[str, Any], *, user_id: str, user_name: str, team_id: str = TEAM_ID
) -> dict[str, Any]:
    """The user pressed the modal's close button (sent only when `notify_on_close` is true)."""
    shown = full_view(view)
    shown["state"] = {"values": _state(shown["blocks"], {})}
    return {
        "type": "view_closed",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "view": shown,
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(event: dict[str, Any], event_id: str, *, team_id: str = TEAM_ID) -> dict[str, Any]:
    """The Events API envelope around `event` (JSON body over HTTP, `payload` over Socket Mode)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def app_home_opened_event(
    user_id: str, channel_id: str, *, tab: str = "home", view: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`view` is present only once a Home view was published for the user."""
    event: dict[str, Any] = {"type": "app_home_opened", "user": user_id, "channel": channel_id, "tab": tab}
    if view is not None:
        event["view"] = copy.deepcopy(view)
    event["event_ts"] = action_ts()
    return event


def socket_envelope(
    payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = ""
) -> dict[str, Any]:
    """The Socket Mode frame Slack wraps around a slash command form, an interaction or an event."""
    kind = payload.get("type")
    if "command" in payload:
        return {"payload": payload, "type": "slash_commands", "accepts_response_payload": True}
    if kind == "event_callback":
        return {
            "payload": payload,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
    return {"payload": payload, "type": "interactive", "accepts_response_payload": kind == "view_submission"}


def encode_form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


def encode_interaction(payload: dict[str, Any]) -> bytes:
    """Interactivity bodies are a form with one field holding the JSON payload."""
    return ("payload=" + quote(json.dumps(payload))).encode()


def signature(body: bytes, secret: str, timestamp: int) -> str:
    basestring = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes, secret: str, timestamp: int | None = None, content_type: str = FORM
) -> dict[str, str]:
    """The headers that make `body` a request from Slack (X-Slack-Signature v0)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(body, secret, timestamp),
    }


sign = signed_headers  # the name the Slack surface contract uses


def find_element(
    blocks: list[dict[str, Any]], action_id: str, value: str | None = None
) -> tuple[str | None, dict[str, Any] | None]:
    """(block_id, element) of the interactive element with `action_id`, preferring one with `value`."""
    matches = [(b, e) for b, e in _elements(blocks) if e.get("action_id") == action_id]
    for block_id, element in matches:
        if value is None or element.get("value") in (None, value):
            return block_id, element
    return matches[0] if matches else (None, None)


def _elements(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every interactive element with the id of its block (Slack invents ids for blocks without one)."""
    for index, block in enumerate(blocks):
        block_id = block.get("block_id") or str(index)
        candidates = block.get("elements", []) if block.get("type") == "actions" else []
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in candidates:
            if element.get("action_id"):
                yield block_id, element


_MISSING = object()


def _state(blocks: list[dict[str, Any]], values: Mapping[Any, Any]) -> dict[str, Any]:
    """`state.values` as Slack reports it: every input element, initial unless `values` names it.

    Keys of `values` are a block_id, or (block_id, action_id) for one element of an actions block.
    """
    state: dict[str, Any] = {}
    for block_id, element in _elements(blocks):
        value = values.get((block_id, element["action_id"]), values.get(block_id, _MISSING))
        entry = _state_entry(element, value)
        if entry is not None:
            state.setdefault(block_id, {})[element["action_id"]] = entry
    return state


def _state_entry(element: dict[str, Any], value: Any) -> dict[str, Any] | None:
    kind = element.get("type")
    if kind in ("static_select", "radio_buttons", "external_select"):
        option = element.get("initial_option") if value is _MISSING else _option(element, value)
        return {"type": kind, "selected_option": option}
    if kind == "plain_text_input":
        return {"type": kind, "value": element.get("initial_value") if value is _MISSING else value}
    if kind == "checkboxes":
        chosen = (
            element.get("initial_options", []) if value is _MISSING else [_option(element, v) for v in value]
        )
        return {"type": kind, "selected_options": chosen}
    return None if value is _MISSING else {"type": kind, "value": value}


def _option(element: dict[str, Any], value: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options += group.get("options", [])
    for option in options:
        if option.get("value") == value:
            return {"text": option["text"], "value": value}
    if options:
        raise ValueError(f"{value!r} is not an option of {element.get('action_id')}")
    return {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}


def _action(
    element: dict[str, Any], block_id: str, value: str | None, selected: str | dict[str, Any] | None
) -> dict[str, Any]:
    kind = element.get("type", "button")
    action: dict[str, Any] = {"action_id": element["action_id"], "block_id": block_id}
    if kind == "button":
        action["text"] = element.get(
            "text", {"type": "plain_text", "text": element["action_id"], "emoji": True}
        )
        action["value"] = value if value is not None else element.get("value")
        action.update({k: element[k] for k in ("style", "confirm") if k in element})
    elif kind in ("static_select", "radio_buttons", "overflow", "external_select"):
        action["selected_option"] = _option(element, selected if selected is not None else value)
        if "placeholder" in element:
            action["placeholder"] = element["placeholder"]
    else:
        action["value"] = value
    action["type"] = kind
    action["action_ts"] = action_ts()
    return action


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}
