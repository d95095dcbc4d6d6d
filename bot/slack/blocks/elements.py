"""Block Kit's building blocks as every surface writes them: text objects, sections, contexts,
headers, buttons with their confirm dialogs, select options, and Slack's size limits.

Each builder clips its text to the limit Slack sets for that place, so no caller has to.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import t
from bot.slack.blocks.mrkdwn import clip

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_TEXT = 4000  # top-level fallback text: Slack allows 40,000, a notification needs far less
MAX_BUTTON = 75
MAX_OPTION = 75
MAX_OPTIONS = 100


def plain_text(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn_text(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def section(text: str, block_id: str) -> dict:
    return {"type": "section", "block_id": block_id, "text": mrkdwn_text(clip(text, MAX_SECTION))}


def context(text: str, block_id: str) -> dict:
    return {"type": "context", "block_id": block_id, "elements": [mrkdwn_text(clip(text, MAX_SECTION))]}


def header(text: str, block_id: str) -> dict:
    return {"type": "header", "block_id": block_id, "text": plain_text(clip(text, 150))}


def option(label: str, value: str) -> dict:
    return {"text": plain_text(clip(label, MAX_OPTION)), "value": value}


def button(
    text: str, action_id: str, value: object, *, style: str | None = None, confirm: dict | None = None
) -> dict:
    element = {
        "type": "button",
        "action_id": action_id,
        "text": plain_text(clip(text, MAX_BUTTON)),
        "value": str(value),
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(locale: str, kind: str, text: str) -> dict:
    return {
        "title": plain_text(clip(t(locale, f"ui.confirm.{kind}.title"), 100)),
        "text": mrkdwn_text(clip(text, 300)),
        "confirm": plain_text(clip(t(locale, f"ui.confirm.{kind}.confirm"), 30)),
        "deny": plain_text(clip(t(locale, f"ui.confirm.{kind}.deny"), 30)),
        "style": "danger",
    }


def pack_lines(lines: Sequence[str], max_sections: int) -> list[str]:
    """Lines joined into as few section texts as fit, at most `max_sections` (later lines go)."""
    texts: list[str] = []
    for line in lines:
        line = clip(line, MAX_SECTION)
        if texts and len(texts[-1]) + 1 + len(line) <= MAX_SECTION:
            texts[-1] += "\n" + line
        elif len(texts) < max_sections:
            texts.append(line)
    return texts
