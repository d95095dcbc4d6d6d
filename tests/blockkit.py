"""Block Kit checks for every message and view the bot sends.

Each block goes through slack_sdk.models and back (`Block.parse(...).to_dict()`, `View(**view)`):
slack_sdk raises on most of Slack's limits, and a key it does not know comes back missing, which
is what Slack does with it too (or it refuses the whole payload). The limits slack_sdk leaves
alone (block counts, the message text, unique ids, empty texts...) are checked here. Every
problem raises AssertionError naming where it is and why.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_TEXT_OBJECT = 3000  # a section's text; no text object may be longer
MAX_MODAL_TEXT = 24  # modal title, submit and close
MAX_PRIVATE_METADATA = 3000
MAX_BUTTON_VALUE = 2000
MAX_ID = 255  # action_id, block_id, callback_id
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})


def validate_message(payload: dict) -> None:
    """A chat.postMessage / chat.update / chat.postEphemeral / response_url payload."""
    _require(isinstance(payload, dict), f"message payload is {type(payload).__name__}, not an object")
    text = payload.get("text")
    blocks = _blocks(payload.get("blocks"), "blocks")
    _require(text is None or isinstance(text, str), "text must be a string")
    _require(bool(text) or bool(blocks), "message has neither text nor blocks")
    if blocks:
        _require(bool(text and text.strip()), "blocks without a text fallback (notifications show nothing)")
    _require(
        len(text or "") <= MAX_MESSAGE_TEXT, f"text is {len(text or '')} characters (max {MAX_MESSAGE_TEXT})"
    )
    _require(
        len(blocks) <= MAX_MESSAGE_BLOCKS, f"{len(blocks)} blocks in a message (max {MAX_MESSAGE_BLOCKS})"
    )
    _check_blocks(blocks, "blocks")


def validate_view(view: dict) -> None:
    """The `view` of views.open / views.push / views.update / views.publish."""
    _require(isinstance(view, dict), f"view is {type(view).__name__}, not an object")
    kind = view.get("type")
    _require(kind in ("modal", "home"), f"view type {kind!r} is neither modal nor home")
    blocks = _blocks(view.get("blocks"), "view.blocks")
    _require(0 < len(blocks) <= MAX_VIEW_BLOCKS, f"{len(blocks)} blocks in a view (1 to {MAX_VIEW_BLOCKS})")
    if kind == "modal":
        _require(isinstance(view.get("title"), dict), "a modal needs a title")
        for key in ("title", "submit", "close"):
            label = (view.get(key) or {}).get("text", "")
            _require(len(label) <= MAX_MODAL_TEXT, f"view.{key} {label!r} is longer than {MAX_MODAL_TEXT}")
    else:
        _require(not view.get("submit") and not view.get("close"), "a home view has no submit or close")
    metadata = view.get("private_metadata") or ""
    _require(isinstance(metadata, str), "private_metadata must be a string")
    _require(len(metadata) <= MAX_PRIVATE_METADATA, f"private_metadata is {len(metadata)} characters")
    _require(len(view.get("callback_id") or "") <= MAX_ID, "callback_id is longer than 255")
    _check_blocks(blocks, "view.blocks")
    shell = {key: value for key, value in view.items() if key != "blocks"}
    _round_trip(shell | {"blocks": blocks}, lambda v: View(**v).to_dict(), "view")


# --- blocks ---------------------------------------------------------------------------------------


def _blocks(raw: Any, where: str) -> list[dict]:
    if raw is None:
        return []
    if isinstance(raw, str):  # form-encoded calls carry blocks as a JSON string
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AssertionError(f"{where} is a string but not JSON") from None
    _require(isinstance(raw, list), f"{where} must be a list")
    for index, block in enumerate(raw):
        _require(isinstance(block, dict), f"{where}[{index}] is not an object")
    return raw


def _check_blocks(blocks: list[dict], where: str) -> None:
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        path = f"{where}[{index}]"
        block_id = block.get("block_id")
        if block_id is not None:
            _require(block_id not in seen, f"{path}: block_id {block_id!r} is used twice")
            seen.add(block_id)
        _check_ids(block, path)
        _check_texts(block, path)
        _round_trip(block, _parse_block, f"{path} ({block.get('type')})")


def _parse_block(block: dict) -> dict:
    parsed = Block.parse(block)
    if parsed is None:
        raise AssertionError(f"unknown block type {block.get('type')!r}")
    return parsed.to_dict()


def _check_ids(block: dict, path: str) -> None:
    _require(len(block.get("block_id") or "") <= MAX_ID, f"{path}: block_id is longer than {MAX_ID}")
    action_ids: set[str] = set()
    for element in _elements(block):
        action_id = element.get("action_id")
        if action_id is None:
            continue
        _require(len(action_id) <= MAX_ID, f"{path}: action_id {action_id[:40]!r}… is longer than {MAX_ID}")
        _require(action_id not in action_ids, f"{path}: action_id {action_id!r} twice in one block")
        action_ids.add(action_id)
        if element.get("type") == "button":
            value = element.get("value") or ""
            _require(
                len(value) <= MAX_BUTTON_VALUE, f"{path}: button {action_id!r} value is {len(value)} chars"
            )


def _elements(block: dict) -> Iterator[dict]:
    """The interactive elements of a block (actions elements, a section's accessory, an input's element)."""
    for element in [*(block.get("elements") or []), block.get("accessory"), block.get("element")]:
        if isinstance(element, dict):
            yield element


def _check_texts(node: Any, path: str) -> None:
    """Every text object is non-empty (Slack refuses empty ones) and at most 3000 characters."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_texts(item, f"{path}[{index}]")
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in TEXT_TYPES and "text" in node:
        text = node["text"]
        _require(isinstance(text, str) and text != "", f"{path}: empty {node['type']} text")
        _require(
            len(text) <= MAX_TEXT_OBJECT, f"{path}: text is {len(text)} characters (max {MAX_TEXT_OBJECT})"
        )
        return
    for key, value in node.items():
        _check_texts(value, f"{path}.{key}")


# --- round trip -----------------------------------------------------------------------------------


def _round_trip(original: dict, convert, where: str) -> None:
    try:
        again = convert(copy.deepcopy(original))
    except SlackObjectFormationError as exc:
        raise AssertionError(f"{where}: slack_sdk refuses it: {exc}") from None
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise AssertionError(f"{where}: slack_sdk cannot read it: {type(exc).__name__}: {exc}") from None
    problems = list(_lost(original, again, ""))
    _require(not problems, f"{where}: changed by slack_sdk: " + "; ".join(problems[:5]))


def _lost(before: Any, after: Any, path: str) -> Iterator[str]:
    """What `before` had that `after` lost or changed. slack_sdk legitimately adds defaults and
    drops null values, empty strings and empty objects (Slack treats them as absent), so keys
    only in `after` and such keys are not differences. An empty list it drops is one: Slack
    refuses empty `elements` or `options`."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            if value is None or value == "" or value == {}:
                continue
            if key not in after:
                yield f"{path}/{key} dropped"
            else:
                yield from _lost(value, after[key], f"{path}/{key}")
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            yield f"{path} had {len(before)} items, now {len(after)}"
        for index, (one, other) in enumerate(zip(before, after, strict=False)):
            yield from _lost(one, other, f"{path}/{index}")
    elif before != after:
        yield f"{path}: {str(before)[:60]!r} became {str(after)[:60]!r}"


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise AssertionError(reason)
