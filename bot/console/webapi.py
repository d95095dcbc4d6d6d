"""The Slack Web API methods the bot calls, and what an answer posted to a response_url does, as
changes to a WorkspaceState (state.py). Each method takes the request's parameters and returns
the `ok: true` body Slack would answer, or raises SlackError; reading the request and recording it
is the server's job (workspace.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bot.console.state import ResponseTarget, SlackError, UploadedFile, WorkspaceState, flag
from bot.console.team import BOT_ID, BOT_NAME, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, TEAM_NAME, new_id

Method = Callable[[WorkspaceState, dict[str, Any]], dict[str, Any]]


def auth_test(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
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


# ---- chat.*


def post_message(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    channel = ws.postable(params.get("channel"))
    if not (params.get("text") or params.get("blocks") or params.get("attachments")):
        raise SlackError("no_text")
    ts = ws.next_ts()
    message = ws.bot_message(ts, params)
    parent_ts = params.get("thread_ts")
    if parent_ts:
        parent = ws.messages.get((channel.id, parent_ts))
        message["thread_ts"] = parent_ts
        message["parent_user_id"] = parent["user"] if parent else BOT_USER_ID
        if flag(params.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        ws.add_reply(channel.id, parent_ts, ts)
    ws.messages[(channel.id, ts)] = message
    return {"ok": True, "channel": channel.id, "ts": ts, "message": copy.deepcopy(message)}


def update_message(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    channel = ws.channel(params.get("channel"))
    ts = params.get("ts") or ""
    message = ws.messages.get((channel.id, ts))
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
    message["edited"] = {"user": BOT_ID, "ts": ws.next_ts()}
    shown = {k: v for k, v in message.items() if k != "ts"}
    return {"ok": True, "channel": channel.id, "ts": ts, "text": message["text"], "message": shown}


def post_ephemeral(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    channel = ws.postable(params.get("channel"))
    user = params.get("user")
    if not user:
        raise SlackError("user_not_in_channel")
    if not (params.get("text") or params.get("blocks")):
        raise SlackError("no_text")
    ts = ws.next_ts()
    ws.add_ephemeral(channel.id, user, ts, params, via="chat.postEphemeral")
    return {"ok": True, "message_ts": ts}


# ---- views.*


def views_open(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("trigger_id"):
        raise SlackError("invalid_arguments")
    view = ws.store_view(params.get("view"), new_id("V"), None, None)
    ws.modal_history.append(view["id"])
    return {"ok": True, "view": view}


def views_push(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("trigger_id") or not ws.modal_history:
        raise SlackError("invalid_arguments")
    below = ws.views[ws.modal_history[-1]]
    view = ws.store_view(params.get("view"), new_id("V"), below["id"], below["root_view_id"])
    ws.modal_history.append(view["id"])
    return {"ok": True, "view": view}


def views_update(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    view_id = params.get("view_id") or next(
        (
            v["id"]
            for v in ws.views.values()
            if params.get("external_id") and v["external_id"] == params["external_id"]
        ),
        None,
    )
    current = ws.views.get(view_id or "")
    if current is None:
        raise SlackError("not_found")
    if params.get("hash") and params["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    view = ws.store_view(
        params.get("view"), current["id"], current["previous_view_id"], current["root_view_id"]
    )
    if view["type"] == "modal":
        ws.modal_history.append(view["id"])
    return {"ok": True, "view": view}


def views_publish(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    user = params.get("user_id")
    if not user:
        raise SlackError("invalid_arguments")
    if isinstance(params.get("view"), dict) and params["view"].get("type") != "home":
        raise SlackError("invalid_arguments")
    current = ws.home(user)
    if current and params.get("hash") and params["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    view_id = current["id"] if current else new_id("V")
    view = ws.store_view(params.get("view"), view_id, None, None)
    ws.homes[user] = view_id
    return {"ok": True, "view": view}


# ---- users, groups, channels


def users_info(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    user = ws.users.get(params.get("user") or "")
    if user is None:
        raise SlackError("user_not_found")
    return {"ok": True, "user": copy.deepcopy(user)}


def usergroup_users(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    users = ws.groups.get(params.get("usergroup") or "")
    if users is None:
        raise SlackError("no_such_subteam")
    return {"ok": True, "users": list(users)}


def conversations_info(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    channel = ws.channel(params.get("channel"))
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


# ---- files (getUploadURLExternal hands out the server's own address: workspace.py answers it)


def complete_upload(ws: WorkspaceState, params: dict[str, Any]) -> dict[str, Any]:
    entries = params.get("files")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments")
    ids = [str(entry.get("id")) for entry in entries]
    if any(ws.files.get(i) is None or ws.files[i].data is None for i in ids):
        raise SlackError("file_not_found")
    files = [ws.files[i] for i in ids]
    channel_id = params.get("channel_id") or (params.get("channels") or "").split(",")[0]
    channel = ws.postable(channel_id) if channel_id else None
    for file, entry in zip(files, entries, strict=True):
        file.title = entry.get("title") or file.name
        file.channel = channel.id if channel else None
        file.thread_ts = params.get("thread_ts")
        file.initial_comment = params.get("initial_comment")
        file.complete = True
    if channel is not None:
        _share_files(ws, channel.id, files, params)
    return {"ok": True, "files": [{"id": f.id, "title": f.title} for f in files]}


def _share_files(ws: WorkspaceState, channel: str, files: list[UploadedFile], params: dict[str, Any]) -> None:
    """Shared files show up as a message from the bot (in the thread when thread_ts is given)."""
    ts = ws.next_ts()
    message = ws.bot_message(ts, {"text": params.get("initial_comment") or ""})
    message["files"] = [
        {"id": f.id, "name": f.name, "title": f.title, "size": len(f.data or b"")} for f in files
    ]
    message["upload"] = True
    if params.get("thread_ts"):
        message["thread_ts"] = params["thread_ts"]
        message["parent_user_id"] = BOT_USER_ID
        ws.add_reply(channel, params["thread_ts"], ts)
    ws.messages[(channel, ts)] = message


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": post_message,
    "chat.update": update_message,
    "chat.postEphemeral": post_ephemeral,
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
    "users.info": users_info,
    "usergroups.users.list": usergroup_users,
    "conversations.info": conversations_info,
    "files.completeUploadExternal": complete_upload,
}


# ---- response_url


def apply_response(ws: WorkspaceState, target: ResponseTarget, body: dict[str, Any]) -> None:
    """What Slack does with an answer posted to a response_url."""
    original = target.message_ts
    if flag(body.get("delete_original")):
        if target.ephemeral:
            mine = ws.ephemeral.get(target.user or "", [])
            mine[:] = [e for e in mine if e["ts"] != original]
        else:
            ws.messages.pop((target.channel or "", original or ""), None)
        return
    if flag(body.get("replace_original")) and original:
        if target.ephemeral:
            for entry in ws.ephemeral.get(target.user or "", []):
                if entry["ts"] == original:
                    entry.update(
                        text=body.get("text") or "", blocks=body.get("blocks") or [], via="response_url"
                    )
        elif (target.channel or "", original) in ws.messages:
            message = ws.messages[(target.channel or "", original)]
            message.update(text=body.get("text") or "", blocks=body.get("blocks") or [])
            message["edited"] = {"user": BOT_ID, "ts": ws.next_ts()}
        return
    ts = ws.next_ts()
    if body.get("response_type") == "in_channel" and target.channel:
        ws.messages[(target.channel, ts)] = ws.bot_message(ts, body)
        if body.get("thread_ts"):
            ws.messages[(target.channel, ts)]["thread_ts"] = body["thread_ts"]
            ws.add_reply(target.channel, body["thread_ts"], ts)
        return
    ws.add_ephemeral(target.channel, target.user or "", ts, body, via="response_url")
    if original is None:  # a later replace_original on this URL replaces this answer
        target.message_ts, target.ephemeral = ts, True
