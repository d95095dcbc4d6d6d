"""What the console shows of Slack: each Web API call the bot makes, as the user would see it. Channel
messages and thread replies are numbered as they appear and redrawn in place when updated;
ephemeral answers, modals, App Home and shared files are shown too. Every button or menu gets a
number (`[3] 回滚`) that stays the same across updates of its message, so typing it presses it.

A Surface is one thing shown with buttons; the modals open right now are a stack of them, top last.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.console.driver import HttpReply
from bot.console.payloads import action_ts
from bot.console.render import (
    DIM,
    RED,
    RESET,
    Control,
    controls,
    option_label,
    render_message,
    render_view,
    strip_ansi,
)
from bot.console.terminal import Terminal
from bot.console.workspace import ApiCall, LocalSlack
from bot.i18n import t

# Web API methods that change nothing a user sees.
SILENT_METHODS = frozenset(
    {
        "auth.test",
        "users.info",
        "usergroups.users.list",
        "conversations.info",
        "files.getUploadURLExternal",
        "file_upload",
        "apps.connections.open",
    }
)
THREAD_INDENT = "      "


@dataclass
class Surface:
    """Something shown with buttons: a channel message, an ephemeral answer, a modal, App Home."""

    key: str
    kind: str  # "message" | "ephemeral" | "modal" | "home"
    number: int = 0  # messages are numbered in the order they appear
    channel: str | None = None
    ts: str | None = None
    text: str = ""
    blocks: list[dict] = field(default_factory=list)
    view: dict | None = None
    rendered: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Pressable:
    surface: str
    control: Control


ModalShown = Callable[[dict, bool], None]  # (view, updated): a modal is on top now


class Screen:
    """Renders what `local` records for `user`, writes it to `terminal`, and remembers what is
    shown: `surfaces` by key, the numbered buttons, `modals` (surface keys, top last)."""

    def __init__(
        self,
        local: LocalSlack,
        terminal: Terminal,
        *,
        user: str,
        channel: str,
        locale: str,
        files_dir: Path,
        on_modal: ModalShown,
    ) -> None:
        self.local = local
        self.terminal = terminal
        self.user = user
        self.channel = channel
        self.locale = locale
        self.files_dir = files_dir
        self.on_modal = on_modal
        self.surfaces: dict[str, Surface] = {}
        self.modals: list[str] = []
        self._message_numbers = itertools.count(1)
        self._button_numbers = itertools.count(1)
        self._button_keys: dict[tuple, int] = {}
        self._pressables: dict[int, Pressable] = {}
        self._origins: dict[str, str] = {}  # response_url -> key of the surface it answers

    # --- what the bot did in "Slack" ---------------------------------------------------------

    def show_call(self, call: ApiCall) -> None:
        """LocalSlack hook: render each Web API call the app made."""
        if call.method in SILENT_METHODS:
            return
        if not call.ok:
            error = call.response.get("error") if isinstance(call.response, dict) else call.response
            self.terminal.say(
                t(self.locale, "console.slack_error", method=call.method, error=error), style=RED
            )
            return
        show = {
            "chat.postMessage": self._posted,
            "chat.update": self._updated,
            "chat.postEphemeral": self._posted_ephemeral,
            "response_url": self._responded,
            "views.open": self._view_opened,
            "views.push": self._view_opened,
            "views.update": self._view_updated,
            "views.publish": self._home_published,
            "files.completeUploadExternal": self._files_shared,
        }.get(call.method)
        if show is not None:
            show(call)

    def show_ack(self, reply: HttpReply, response_url: str | None) -> None:
        """A message returned in the ack itself is an ephemeral answer (or a channel message)."""
        if reply.status >= 400:
            self.terminal.say(t(self.locale, "console.request_failed", status=reply.status), style=RED)
            return
        answer = reply.content()
        if isinstance(answer, str) and answer.strip():
            answer = {"text": answer}
        if not isinstance(answer, dict) or not (answer.get("text") or answer.get("blocks")):
            return
        surface = self._new_ephemeral(answer, ts=action_ts())
        if response_url is not None:
            self.answers_to(response_url, surface.key)

    def answers_to(self, response_url: str, surface_key: str) -> None:
        """What the bot posts to `response_url` answers (replaces, deletes) that surface."""
        self._origins[response_url] = surface_key

    def _posted(self, call: ApiCall) -> None:
        params, response = call.params, call.response
        channel, ts = response.get("channel"), response.get("ts")
        message = response.get("message") or params
        surface = self._surface(f"msg:{channel}:{ts}", "message", channel=channel, ts=ts)
        surface.text, surface.blocks = message.get("text") or "", message.get("blocks") or []
        parent_ts = params.get("thread_ts")
        if parent_ts:
            parent = self.surfaces.get(f"msg:{channel}:{parent_ts}")
            header = t(
                self.locale, "console.reply", n=surface.number, parent=parent.number if parent else "?"
            )
            if str(params.get("reply_broadcast")).lower() in ("true", "1"):
                header += t(self.locale, "console.broadcast")
            self._show_message(surface, "    ↳ " + header, indent=THREAD_INDENT)
        else:
            self._show_message(surface, self._message_header(surface, channel))

    def _updated(self, call: ApiCall) -> None:
        channel, ts = call.response.get("channel"), call.response.get("ts")
        surface = self.surfaces.get(f"msg:{channel}:{ts}")
        message = self.local.messages.get((channel, ts))
        if surface is None or message is None:
            return
        surface.text, surface.blocks = message.get("text") or "", message.get("blocks") or []
        indent = THREAD_INDENT if message.get("thread_ts") not in (None, ts) else "  "
        header = f"── {t(self.locale, 'console.updated', n=surface.number)} ──"
        self._show_message(surface, header, indent=indent, only_if_changed=True)

    def _posted_ephemeral(self, call: ApiCall) -> None:
        self._new_ephemeral(
            call.params, ts=call.response.get("message_ts"), channel=call.params.get("channel")
        )

    def _responded(self, call: ApiCall) -> None:
        body = {k: v for k, v in call.params.items() if k != "url"}
        url = call.params.get("url", "")
        origin = self.surfaces.get(self._origins.get(url) or "")
        if str(body.get("delete_original")).lower() in ("true", "1"):
            if origin is not None:
                self.terminal.say(t(self.locale, "console.deleted", n=origin.number), style=DIM)
                self._forget(origin.key)
            return
        if str(body.get("replace_original")).lower() in ("true", "1") and origin is not None:
            origin.text, origin.blocks = body.get("text") or "", body.get("blocks") or []
            header = f"── {t(self.locale, 'console.updated', n=origin.number)} ──"
            self._show_message(origin, header, only_if_changed=True)
            return
        if body.get("response_type") == "in_channel":
            ts = action_ts()
            surface = self._surface(f"msg:{self.channel}:{ts}", "message", channel=self.channel, ts=ts)
            surface.text, surface.blocks = body.get("text") or "", body.get("blocks") or []
            self._show_message(surface, self._message_header(surface, self.channel))
            return
        mine = [e for e in self.local.ephemeral.get(self.user, []) if e.get("via") == "response_url"]
        surface = self._new_ephemeral(body, ts=mine[-1]["ts"] if mine else action_ts())
        if origin is None:  # a later replace_original on this URL replaces this answer
            self.answers_to(url, surface.key)

    def _new_ephemeral(self, body: dict, *, ts: str | None, channel: str | None = None) -> Surface:
        key = f"eph:{ts or action_ts()}"
        surface = self._surface(key, "ephemeral", channel=channel or self.channel, ts=ts)
        surface.text, surface.blocks = body.get("text") or "", body.get("blocks") or []
        self._show_message(surface, f"── {t(self.locale, 'console.ephemeral', n=surface.number)} ──")
        return surface

    def _view_opened(self, call: ApiCall) -> None:
        view = call.response.get("view")
        if isinstance(view, dict):
            self.open_modal(view)

    def _view_updated(self, call: ApiCall) -> None:
        view = call.response.get("view")
        if not isinstance(view, dict):
            return
        if view.get("type") == "home":
            self._home_published(call)
            return
        self.open_modal(view, updated=True)

    def _home_published(self, call: ApiCall) -> None:
        view = call.response.get("view")
        if not isinstance(view, dict) or call.params.get("user_id") != self.user:
            return
        surface = self._surface(f"view:{view['id']}", "home")
        surface.view = view
        self.show_view(surface, updated=bool(surface.rendered), only_if_changed=True)

    def _files_shared(self, call: ApiCall) -> None:
        params = call.params
        parent = self.surfaces.get(f"msg:{params.get('channel_id')}:{params.get('thread_ts')}")
        indent = THREAD_INDENT if parent is not None else "  "
        for entry in params.get("files") or []:
            file = self.local.files.get(str(entry.get("id")))
            if file is None or file.data is None:
                continue
            path = self._save(file.name, file.data)
            title = file.title or file.name
            line = t(self.locale, "console.file_saved", title=title, path=path, size=len(file.data))
            self.terminal.show([indent + line])

    def _save(self, name: str, data: bytes) -> str:
        folder = self.files_dir
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.-]", "_", Path(name).name) or "file"
        path = folder / safe
        path.write_bytes(data)
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path.resolve())

    # --- modals ------------------------------------------------------------------------------

    def open_modal(self, view: dict, *, updated: bool = False) -> None:
        """Show a modal the bot opened, pushed or updated (or a submission answered with) on top."""
        surface = self._surface(f"view:{view['id']}", "modal")
        surface.view = view
        if surface.key not in self.modals:
            self.modals.append(surface.key)
        self.show_view(surface, updated=updated)
        self.on_modal(view, updated)

    def drop_modal(self, view_id: str) -> None:
        key = f"view:{view_id}"
        if key in self.modals:
            self.modals.remove(key)
        self._forget(key)

    def top_modal(self) -> Surface | None:
        return self.surfaces.get(self.modals[-1]) if self.modals else None

    def show_view(self, surface: Surface, *, updated: bool, only_if_changed: bool = False) -> None:
        assert surface.view is not None
        numbers = self._number(surface, surface.view.get("blocks") or [])
        color = self.terminal.color
        lines = render_view(surface.view, numbers, color=color, locale=self.locale, names=self._names())
        plain = [strip_ansi(line) for line in lines]
        if only_if_changed and plain == surface.rendered:
            return
        surface.rendered = plain
        head = [t(self.locale, "console.view_updated")] if updated else []
        self.terminal.show([*head, *lines])

    # --- surfaces and their buttons ----------------------------------------------------------

    def pressable(self, number: int) -> Pressable | None:
        """The button or menu shown with `number`, while its surface is still shown."""
        press = self._pressables.get(number)
        return press if press is not None and press.surface in self.surfaces else None

    def find_label(self, text: str) -> Pressable | None:
        """The newest button labelled `text`, else the newest whose label starts with it
        (`回滚` finds `回滚到 #41`)."""
        wanted = text.strip().strip("[]〔〕").lower()
        shown = [
            press
            for _, press in sorted(self._pressables.items(), reverse=True)
            if press.surface in self.surfaces
        ]
        exact = [press for press in shown if wanted in _labels(press.control)]
        prefixed = [press for press in shown if any(x.startswith(wanted) for x in _labels(press.control))]
        return (exact or prefixed or [None])[0]

    def _channel_name(self, channel: str | None) -> str:
        if (channel or "").startswith("D"):  # the app's DM with the user (modals opened from App Home)
            return t(self.locale, "console.dm")
        known = self.local.channels.get(channel or "")
        return known.name if known else (channel or "")

    def _surface(self, key: str, kind: str, *, channel: str | None = None, ts: str | None = None) -> Surface:
        surface = self.surfaces.get(key)
        if surface is None:
            number = next(self._message_numbers) if kind in ("message", "ephemeral") else 0
            surface = Surface(key, kind, number, channel, ts)
            self.surfaces[key] = surface
        return surface

    def _forget(self, key: str) -> None:
        surface = self.surfaces.pop(key, None)
        if surface is not None:
            for number in surface.numbers:
                self._pressables.pop(number, None)

    def _number(self, surface: Surface, blocks: list[dict]) -> list[int]:
        """Numbers for the controls of `blocks`: the same button keeps its number across
        updates of its message; buttons that disappeared can no longer be pressed."""
        for number in surface.numbers:
            self._pressables.pop(number, None)
        numbers = []
        seen: dict[tuple, int] = {}
        for control in controls(blocks):
            base = (surface.key, control.block_id, control.action_id, str(control.element.get("value")))
            seen[base] = seen.get(base, 0) + 1
            key = (*base, seen[base])
            if key not in self._button_keys:
                self._button_keys[key] = next(self._button_numbers)
            number = self._button_keys[key]
            self._pressables[number] = Pressable(surface.key, control)
            numbers.append(number)
        surface.numbers = numbers
        return numbers

    def _names(self) -> dict[str, str]:
        return {uid: user["name"] for uid, user in self.local.users.items()}

    def _message_header(self, surface: Surface, channel: str | None) -> str:
        name = self._channel_name(channel)
        return f"── {t(self.locale, 'console.message', n=surface.number, channel=name)} ──"

    def _show_message(
        self, surface: Surface, header: str, *, indent: str = "  ", only_if_changed: bool = False
    ) -> None:
        numbers = self._number(surface, surface.blocks)
        color = self.terminal.color
        lines = render_message(
            surface.text, surface.blocks, numbers, color=color, locale=self.locale, names=self._names()
        )
        plain = [strip_ansi(line) for line in lines]
        if only_if_changed and plain == surface.rendered:
            return
        surface.rendered = plain
        self.terminal.show([f"{DIM}{header}{RESET}" if color else header, *(indent + line for line in lines)])


def label(control: Control) -> str:
    """What the element shows: a button's text, a menu's chosen option or placeholder."""
    element = control.element
    chosen = element.get("initial_option")
    if chosen:
        return option_label(chosen)
    text = element.get("text") or element.get("placeholder") or {}
    return str(text.get("text", "")) if isinstance(text, dict) else ""


def _labels(control: Control) -> set[str]:
    """Every name `press` knows an element by, lower-cased."""
    placeholder = control.element.get("placeholder") or {}
    names = {label(control), placeholder.get("text", "") if isinstance(placeholder, dict) else ""}
    return {name.lower() for name in names if name}
