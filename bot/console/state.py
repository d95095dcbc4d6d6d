"""What the local Slack workspace holds, as plain dicts shaped like Slack's own objects: users and
user groups, channels, messages with their threads, ephemeral messages, views and App Homes,
uploaded files. Also the rules every way of changing it shares: how a ts is made, what a bot message
looks like, which channel a post lands in, how a reply joins its thread, how a view is stored.

The Web API methods (webapi.py) and the server around them (workspace.py) change this state;
tests and the console read it the way a user would see Slack.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from bot.console.payloads import full_view
from bot.console.team import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    DEFAULT_CHANNEL,
    DEFAULT_USERS,
    TEAM_ID,
    new_view_hash,
)

BOT_PROFILE = {
    "id": BOT_ID,
    "deleted": False,
    "name": BOT_NAME,
    "updated": 1764300000,
    "app_id": APP_ID,
    "icons": {"image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png"},
    "team_id": TEAM_ID,
}


class SlackError(Exception):
    """A Web API refusal: HTTP 200 with `ok: false`, as Slack answers nearly every error."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **self.extra}


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
class ResponseTarget:
    """What a response_url is tied to: where answers go and which message `replace_original` means."""

    url: str
    channel: str | None
    user: str | None
    message_ts: str | None
    ephemeral: bool


def flag(value: Any) -> bool:
    """A boolean parameter as Slack reads it, whether it came as JSON or as a form field."""
    return value in (True, 1, "1", "true", "True")


class WorkspaceState:
    """`messages[(channel, ts)]` (current state after updates), `replies[(channel, parent_ts)]` (reply
    ts in order), `ephemeral[user]`, `views[id]`, `modal_history`, `homes[user]` (view id),
    `files[id]`, `responses[url]` (bodies POSTed to each response_url), `users`, `groups`, `channels`.
    """

    def __init__(self) -> None:
        self.auto_channels = True  # an unknown channel id is a channel the bot is in
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
        self._last_ts = 0
        for user_id, (name, real_name, admin) in DEFAULT_USERS.items():
            self.add_user(user_id, name, real_name=real_name, is_admin=admin)
        self.add_channel(*DEFAULT_CHANNEL)

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

    def last_view(self) -> dict[str, Any]:
        """The modal most recently opened, pushed or updated, in its current state."""
        if not self.modal_history:
            raise LookupError("no modal was opened")
        return self.views[self.modal_history[-1]]

    # ---- the rules the Web API methods share

    def next_ts(self) -> str:
        """A Slack ts: wall-clock seconds.microseconds, unique and increasing across the workspace."""
        micros = max(time.time_ns() // 1000, self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def bot_message(self, ts: str, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": params.get("text") or "",
            "team": TEAM_ID,
            "bot_profile": BOT_PROFILE,
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        return message

    def channel(self, channel_id: str | None) -> Channel:
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

    def postable(self, channel_id: str | None) -> Channel:
        channel = self.channel(channel_id)
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel

    def add_reply(self, channel: str, parent_ts: str, ts: str) -> None:
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

    def add_ephemeral(self, channel: str | None, user: str, ts: str, body: dict[str, Any], via: str) -> None:
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

    def store_view(self, view: Any, view_id: str, previous: str | None, root: str | None) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackError("invalid_arguments")
        stored = full_view(
            {
                **view,
                "id": view_id,
                "hash": new_view_hash(),
                "state": {"values": {}},
                "previous_view_id": previous,
                "root_view_id": root or view_id,
            }
        )
        self.views[view_id] = stored
        return copy.deepcopy(stored)
