"""Block Kit as terminal text, for `deploybot console`.

Pure functions: blocks and views in, lines of text out. Every interactive element (button, select)
is shown with the number the console assigned to it, so the user can press it by typing that
number. With `color=True` the lines carry ANSI styles; `strip_ansi` gives the plain transcript.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.i18n import t

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

RULE = "─" * 44
INTERACTIVE = frozenset({"button", "static_select", "overflow", "checkboxes", "radio_buttons"})

# Slack shortcodes the bot's messages use, and a few common neighbours; others stay `:name:`.
EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "warning": "⚠️",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "rocket": "🚀",
    "leftwards_arrow_with_hook": "↩️",
    "rewind": "⏪",
    "arrows_counterclockwise": "🔄",
    "stopwatch": "⏱️",
    "octagonal_sign": "🛑",
    "stop_sign": "🛑",
    "page_facing_up": "📄",
    "scroll": "📜",
    "memo": "📝",
    "gear": "⚙️",
    "house": "🏠",
    "link": "🔗",
    "mag": "🔍",
    "clipboard": "📋",
    "information_source": "ℹ️",
    "bust_in_silhouette": "👤",
    "large_green_circle": "🟢",
    "green_circle": "🟢",
    "red_circle": "🔴",
    "large_yellow_circle": "🟡",
    "yellow_circle": "🟡",
    "white_circle": "⚪",
    "black_circle": "⚫",
    "large_blue_circle": "🔵",
    "blue_circle": "🔵",
    "package": "📦",
    "construction": "🚧",
    "tada": "🎉",
    "lock": "🔒",
    "question": "❓",
    "point_right": "👉",
    "arrow_right": "➡️",
    "arrow_left": "⬅️",
    "calendar": "📅",
    "clock3": "🕒",
    "zap": "⚡",
}


@dataclass(frozen=True)
class Control:
    """An interactive element of a message or view, in display order."""

    block_id: str
    element: dict

    @property
    def action_id(self) -> str:
        return self.element.get("action_id", "")

    @property
    def kind(self) -> str:
        return self.element.get("type", "")


def _style(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color and text else text


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


# --- mrkdwn ---------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(.*?)```", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"<([^<>\n]+)>")
# Slack needs no space around emphasis next to CJK text, so only ASCII word characters block it.
_BOLD = re.compile(r"(?<![A-Za-z0-9*])\*([^*\n]+)\*(?![A-Za-z0-9*])")
_ITALIC = re.compile(r"(?<![A-Za-z0-9_])_([^_\n]+)_(?![A-Za-z0-9_])")
_SHORTCODE = re.compile(r":([a-z0-9_+\-]+):")


def _link(match: re.Match, names: Mapping[str, str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return "@" + (label or names.get(user) or user)
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        return "@" + (label or target[1:].split("^")[0])
    if label:
        return f"{label} ({target})"
    return target


def _inline(text: str, color: bool, names: Mapping[str, str]) -> str:
    """One stretch of mrkdwn without code fences: links, emphasis, inline code, emoji."""
    pieces = []
    last = 0
    for match in _INLINE_CODE.finditer(text):
        pieces.append(_prose(text[last : match.start()], color, names))
        pieces.append(_style(html.unescape(match.group(1)), CYAN, color))
        last = match.end()
    pieces.append(_prose(text[last:], color, names))
    return "".join(pieces)


def _prose(text: str, color: bool, names: Mapping[str, str]) -> str:
    text = _LINK.sub(lambda m: _link(m, names), text)
    text = _BOLD.sub(lambda m: _style(m.group(1), BOLD, color), text)
    text = _ITALIC.sub(lambda m: m.group(1), text)
    text = _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    return html.unescape(text)


def mrkdwn(text: str, *, color: bool = False, names: Mapping[str, str] | None = None) -> list[str]:
    """Slack mrkdwn as terminal lines; code blocks become indented `│ ` lines."""
    names = names or {}
    lines: list[str] = []
    last = 0
    for match in _FENCE.finditer(text):
        lines.extend(_inline_lines(text[last : match.start()], color, names))
        body = html.unescape(match.group(1).strip("\n"))
        lines.extend(_style("  │ " + line, DIM, color) for line in body.split("\n"))
        last = match.end()
    lines.extend(_inline_lines(text[last:], color, names))
    return lines


def _inline_lines(text: str, color: bool, names: Mapping[str, str]) -> list[str]:
    text = text.strip("\n")
    if not text.strip():
        return []
    return [_inline(line, color, names) for line in text.split("\n")]


def _text(obj: dict | None, color: bool, names: Mapping[str, str]) -> list[str]:
    """A text object (mrkdwn or plain_text) as lines."""
    if not obj:
        return []
    if obj.get("type") == "plain_text":
        plain = _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), obj.get("text", ""))
        return plain.split("\n")
    return mrkdwn(obj.get("text", ""), color=color, names=names)


def _plain(obj: dict | None) -> str:
    return " ".join(_text(obj, False, {})) if obj else ""


# --- controls -------------------------------------------------------------------------------------


def controls(blocks: Sequence[dict]) -> list[Control]:
    """The pressable elements of `blocks` in the order they are shown (and numbered)."""
    found: list[Control] = []
    for block in blocks:
        block_id = block.get("block_id", "")
        if block.get("type") == "actions":
            found.extend(
                Control(block_id, el) for el in block.get("elements", []) if el.get("type") in INTERACTIVE
            )
        elif block.get("type") == "section":
            accessory = block.get("accessory") or {}
            if accessory.get("type") in INTERACTIVE:
                found.append(Control(block_id, accessory))
    return found


def option_label(option: dict) -> str:
    return _plain(option.get("text"))


def _control(element: dict, number: int | None, color: bool) -> str:
    tag = f"[{number}]" if number is not None else "[·]"
    kind = element.get("type")
    if kind == "button":
        label = f"{tag} {_plain(element.get('text'))}"
        style = {"danger": RED, "primary": GREEN}.get(element.get("style", ""), BOLD)
        return _style(label, style, color)
    if kind == "static_select":
        chosen = element.get("initial_option")
        shown = option_label(chosen) if chosen else _plain(element.get("placeholder"))
        return _style(f"{tag} {shown} ▾", BOLD, color)
    if kind == "overflow":
        return _style(f"{tag} ⋯", BOLD, color)
    return _style(f"{tag} {kind}", BOLD, color)


# --- blocks ---------------------------------------------------------------------------------------


def render_blocks(
    blocks: Sequence[dict],
    numbers: Sequence[int] = (),
    *,
    color: bool = False,
    locale: str = "zh",
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """`blocks` as lines; `numbers[i]` is shown on the i-th element of `controls(blocks)`."""
    names = names or {}
    numbering = iter(numbers)

    def number() -> int | None:
        return next(numbering, None)

    lines: list[str] = []
    for block in blocks:
        lines.extend(_block(block, number, color, locale, names))
    return lines


def _block(block: dict, number, color: bool, locale: str, names: Mapping[str, str]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return [_style(f"■ {_plain(block.get('text'))}", BOLD, color)]
    if kind == "divider":
        return [_style(RULE, DIM, color)]
    if kind == "section":
        return _section(block, number, color, names)
    if kind == "context":
        parts = []
        for element in block.get("elements", []):
            if element.get("type") == "image":
                parts.append(f"[{element.get('alt_text', 'image')}]")
            else:
                parts.append(" ".join(_text(element, color, names)))
        return [_style("  ".join(parts), DIM, color)]
    if kind == "actions":
        shown = [
            _control(el, number(), color) for el in block.get("elements", []) if el.get("type") in INTERACTIVE
        ]
        return ["  ".join(shown)] if shown else []
    if kind == "input":
        return _input(block, color, locale, names)
    if kind == "image":
        return [f"[{block.get('alt_text') or _plain(block.get('title')) or 'image'}]"]
    if kind == "rich_text":
        return _rich_text(block)
    if kind == "file":
        return [f"[file {block.get('external_id', '')}]"]
    return [f"[{kind}]"]


def _section(block: dict, number, color: bool, names: Mapping[str, str]) -> list[str]:
    lines = _text(block.get("text"), color, names)
    fields = [_field(field, color, names) for field in block.get("fields", [])]
    for i in range(0, len(fields), 2):
        lines.append("   ".join(fields[i : i + 2]))
    accessory = block.get("accessory") or {}
    if accessory.get("type") in INTERACTIVE:
        shown = _control(accessory, number(), color)
        if lines:
            lines[-1] = f"{lines[-1]}  {shown}"
        else:
            lines.append(shown)
    return lines


def _field(field: dict, color: bool, names: Mapping[str, str]) -> str:
    """A field is usually `*label*\\nvalue`: shown as `label: value`."""
    parts = _text(field, color, names)
    if len(parts) >= 2:
        return f"{parts[0]}: {' '.join(parts[1:])}"
    return " ".join(parts)


def _rich_text(block: dict) -> list[str]:
    def walk(element: dict) -> str:
        if "text" in element and isinstance(element["text"], str):
            return element["text"]
        if element.get("type") == "user":
            return "@" + element.get("user_id", "")
        if element.get("type") == "link":
            return element.get("text") or element.get("url", "")
        if element.get("type") == "emoji":
            return EMOJI.get(element.get("name", ""), f":{element.get('name', '')}:")
        return "".join(walk(child) for child in element.get("elements", []))

    return walk(block).split("\n")


# --- inputs and views -----------------------------------------------------------------------------


def input_value(element: dict) -> str:
    """What an input element holds before the user touches it, as text."""
    kind = element.get("type")
    if kind == "static_select":
        chosen = element.get("initial_option")
        return f"{option_label(chosen)} ({chosen.get('value')})" if chosen else ""
    if kind in ("checkboxes", "radio_buttons"):
        picked = {o.get("value") for o in element.get("initial_options", [])}
        if kind == "radio_buttons" and element.get("initial_option"):
            picked = {element["initial_option"].get("value")}
        return "  ".join(
            f"[{'x' if o.get('value') in picked else ' '}] {option_label(o)} ({o.get('value')})"
            for o in element.get("options", [])
        )
    return element.get("initial_value") or ""


def _input(block: dict, color: bool, locale: str, names: Mapping[str, str]) -> list[str]:
    element = block.get("element") or {}
    label = _plain(block.get("label"))
    if block.get("optional"):
        label += t(locale, "console.optional")
    lines = [f"{_style(label, BOLD, color)}: {input_value(element)}"]
    if element.get("type") == "static_select":
        choices = " | ".join(f"{o.get('value')}={option_label(o)}" for o in element.get("options", []))
        lines.append(_style(f"    {t(locale, 'console.choices')}: {choices}", DIM, color))
    hint = block.get("hint")
    if hint:
        lines.append(_style("    " + _plain(hint), DIM, color))
    return lines


def render_view(
    view: dict,
    numbers: Sequence[int] = (),
    *,
    color: bool = False,
    locale: str = "zh",
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """A modal or Home tab: a framed title, its blocks, then its submit/close buttons."""
    title = t(locale, "console.app_home") if view.get("type") == "home" else _plain(view.get("title"))
    body = render_blocks(view.get("blocks", []), numbers, color=color, locale=locale, names=names)
    lines = [_style(f"┌─ {title}", BOLD, color)]
    lines.extend("│ " + line for line in body)
    footer = [_plain(view.get(key)) for key in ("submit", "close") if view.get(key)]
    lines.append("└─" + (" " + " / ".join(f"〔{label}〕" for label in footer) if footer else ""))
    return lines


def render_errors(errors: Mapping[str, str], view: dict) -> list[str]:
    """The field errors of a `response_action: errors` answer, named by their labels."""
    labels = {b.get("block_id"): _plain(b.get("label")) for b in view.get("blocks", [])}
    return [f"✖ {labels.get(block_id) or block_id}: {message}" for block_id, message in errors.items()]


def render_confirm(confirm: dict, *, color: bool = False) -> list[str]:
    """A button's confirm dialog, ending with the y/n question."""
    lines = [_style(_plain(confirm.get("title")), BOLD, color)]
    lines.extend(_text(confirm.get("text"), color, {}))
    yes = _plain(confirm.get("confirm")) or "OK"
    no = _plain(confirm.get("deny")) or "Cancel"
    lines.append(f"y = {yes} / n = {no}")
    return lines


def render_message(
    text: str,
    blocks: Sequence[dict] | None,
    numbers: Sequence[int] = (),
    *,
    color: bool = False,
    locale: str = "zh",
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """A chat message: its blocks, or its text when it has none."""
    if blocks:
        return render_blocks(blocks, numbers, color=color, locale=locale, names=names)
    return mrkdwn(text or "", color=color, names=names)
