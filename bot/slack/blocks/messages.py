"""The `Message` every chat surface returns (text fallback plus blocks), and the short answers
that are not about one deploy: one-line notices, usage errors, `/deploy help`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import DeployError
from bot.i18n import Text, t
from bot.slack.blocks.elements import (
    MAX_BLOCKS,
    MAX_SECTION,
    MAX_TEXT,
    button,
    context,
    header,
    pack_lines,
    section,
)
from bot.slack.blocks.mrkdwn import clip, escape, escape_prose, inline_code_text


@dataclass(frozen=True)
class Message:
    """A chat message: always a text fallback (notifications, screen readers) plus blocks."""

    text: str
    blocks: list[dict]

    def as_kwargs(self) -> dict:
        return {"text": self.text, "blocks": self.blocks}


def help_message(rows: Sequence[tuple[str, str]], locale: str) -> Message:
    """`/deploy help`: one line per form of the command, and the 一键部署 button."""
    lines = [f"`{inline_code_text(syntax)}` — {escape(text)}" for syntax, text in rows]
    title = t(locale, "ui.help.title")
    blocks = [header(title, "help_title")]
    blocks += [section(text, f"help_{i}") for i, text in enumerate(pack_lines(lines, MAX_BLOCKS - 2), 1)]
    deploy = button(t(locale, "ui.button.deploy"), "open_deploy_modal", "open", style="primary")
    blocks.append({"type": "actions", "block_id": "help_actions", "elements": [deploy]})
    fallback = title + "\n" + "\n".join(escape(f"{syntax} — {text}") for syntax, text in rows)
    return Message(clip(fallback, MAX_TEXT), blocks)


def notice(text: str) -> Message:
    """A one-line (ephemeral) answer. The text comes from the catalogue but may quote what a
    user typed, so only the links the bot writes itself stay links."""
    safe = escape_prose(text) or "—"
    return Message(clip(safe, MAX_TEXT), [section(clip(safe, MAX_SECTION), "notice")])


def error_notice(error: DeployError, locale: str) -> Message:
    """A refusal as a notice."""
    return notice(error_text(error.key, error.params, locale))


def error_text(key: str, params: dict, locale: str) -> str:
    """A catalogue message whose parameters are what users, scripts and git wrote (a branch, a
    reason, git's stderr): escaped, so a `<https://…|label>` or `<@U…>` in them stays text."""
    return t(locale, key, **_escaped(params))


def _escaped(params: dict) -> dict:
    return {
        name: Text(value.key, _escaped(value.params)) if isinstance(value, Text) else escape(str(value))
        for name, value in params.items()
    }


def usage_error(message: str, usage: str, locale: str) -> Message:
    """What was wrong, and the syntax that works. The usage is preformatted rich text: shown
    literally, so `<id>` needs no escaping and reads as written."""
    safe = escape_prose(message) or "—"
    blocks = [section(clip(f":warning: {safe}", MAX_SECTION), "usage_error")]
    if usage.strip():
        blocks.append(context(t(locale, "ui.usage.label"), "usage_label"))
        preformatted = {
            "type": "rich_text_preformatted",
            "elements": [{"type": "text", "text": clip(usage, MAX_SECTION)}],
        }
        blocks.append({"type": "rich_text", "block_id": "usage", "elements": [preformatted]})
    fallback = f"{safe}\n{t(locale, 'ui.usage.label')}: {escape(usage)}" if usage.strip() else safe
    return Message(clip(fallback, MAX_TEXT), blocks)
