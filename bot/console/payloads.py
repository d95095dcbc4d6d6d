"""What Slack sends to an app, built the way Slack builds it: slash command forms, block_actions,
view_submission and view_closed payloads, Events API envelopes and Socket Mode frames.

Each builder reads the message or view the user acted on, so a click carries the element's real
block_id, text, style and confirm, and `state.values` holds every input as Slack reports it.
driver.py sends them over HTTP or in-process; Socket Mode tests wrap them in `socket_envelope`.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

from bot.console.team import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
    new_id,
    new_view_hash,
)


def new_trigger_id() -> str:
    return f"{secrets.randbelow(9 * 10**12) + 10**12}.2201958763041.{secrets.token_hex(16)}"


def action_ts() -> str:
    return f"{time.time():.6f}"


def full_view(view: dict[str, Any]) -> dict[str, Any]:
    """A view object as Slack stores and echoes it: the app's fields plus Slack's own."""
    view_id = view.get("id") or new_id("V")
    base: dict[str, Any] = {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": view.get("type", "modal"),
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": new_view_hash(),
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
