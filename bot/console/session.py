"""`deploybot console`: the whole bot in a terminal, without Slack.

The console runs what `deploybot serve` runs (the runtime, the real Bolt app with its listeners,
the notifier) against a LocalSlack on 127.0.0.1. Each line typed becomes the request Slack would
send (a slash command, a button click, a modal submission), signed and dispatched through the Bolt
app; every Web API call the app makes is rendered here instead of in Slack: channel messages,
in-place card updates, thread replies, ephemeral answers, modals, App Home and uploaded files.

Buttons are shown numbered (`[3] 回滚`); typing the number presses it. A modal is filled field by
field, or in one line (`env=staging branch=main skip_build=yes`). `Console` is usable in-process
(`await console.feed(line)`, `console.transcript`); `run_console` is the CLI entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import itertools
import json
import re
import secrets
import shlex
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app.runtime import Runtime, build_runtime
from bot.config import Config
from bot.console.render import (
    BOLD,
    DIM,
    RED,
    Control,
    controls,
    option_label,
    render_confirm,
    render_errors,
    render_message,
    render_view,
    strip_ansi,
)
from bot.i18n import t
from bot.app.slack_app import SlackBot, create_client, create_slack_bot
from bot.console.workspace import (
    DEFAULT_CHANNEL,
    Call,
    LocalSlack,
    action_ts,
    app_home_opened_event,
    block_actions_payload,
    encode_form,
    encode_interaction,
    event_callback,
    new_trigger_id,
    signed_headers,
    slash_command_form,
    view_closed_payload,
    view_submission_payload,
)

RESET = "\x1b[0m"
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
BUTTON = re.compile(r"^(\d{1,6})(?:\s+(.+))?$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.-]*=")
YES = frozenset({"y", "yes", "true", "1", "on", "是", "确认"})
NO = frozenset({"n", "no", "false", "0", "off", "否", "取消"})
HTTP_BODY_LINES = 40
HTTP_BODY_CHARS = 4000
DEFAULT_FILES_DIR = Path(".state") / "console-files"
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


@dataclass(frozen=True)
class Identity:
    id: str
    name: str


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


@dataclass
class FormField:
    """One question of a modal: a select, a text input, or one checkbox option."""

    block_id: str
    kind: str
    label: str
    element: dict
    option: dict | None = None  # for one checkbox option


@dataclass
class ModalForm:
    view: dict
    fields: list[FormField]
    index: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> FormField | None:
        return self.fields[self.index] if self.index < len(self.fields) else None


@dataclass
class PendingPress:
    """A press waiting for an answer: y/n to a confirm dialog, or the option of a select."""

    press: Pressable
    option: str | None = None


class ConsoleInputError(Exception):
    """A line the console could not understand (counted: the exit status is non-zero)."""


class Console:
    def __init__(
        self,
        config: Config,
        *,
        user: str | None = None,
        color: bool = False,
        out: TextIO | None = None,
        base_env: dict[str, str] | None = None,
        files_dir: Path | None = None,
        echo: bool = True,
        slack: LocalSlack | None = None,
    ) -> None:
        # The emulator wants a bot token like Slack does; this one never leaves 127.0.0.1.
        secrets_ = dataclasses.replace(config.secrets, slack_bot_token="xoxb-console-local")
        self.config = dataclasses.replace(config, secrets=secrets_)
        self.locale = config.locale
        self.color = color
        self.out = out
        self.echo = echo
        self.base_env = base_env
        self.files_dir = files_dir or DEFAULT_FILES_DIR
        self.transcript: list[str] = []
        self.failures = 0
        self.finished = False
        self.channel_id, self.channel_name = DEFAULT_CHANNEL
        self._user_arg = user
        self.user = Identity("", "")
        self._secret = secrets.token_hex(16)
        self.local: LocalSlack | None = slack  # a subclass can be passed in (tests check Block Kit)
        self.runtime: Runtime | None = None
        self.bot: SlackBot | None = None
        self._surfaces: dict[str, Surface] = {}
        self._message_numbers = itertools.count(1)
        self._button_numbers = itertools.count(1)
        self._button_keys: dict[tuple, int] = {}
        self._pressables: dict[int, Pressable] = {}
        self._origins: dict[str, str | None] = {}  # response_url -> surface key it answers
        self._modals: list[str] = []  # surface keys of open modals, top last
        self._form: ModalForm | None = None
        self._pending: PendingPress | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Console:
        self.local = self.local or LocalSlack()
        self.local.on_call = self._on_call
        await self.local.start()
        self.runtime = build_runtime(self.config, base_env=self.base_env)
        client = create_client(self.config, base_url=self.local.api_url)
        self.bot = create_slack_bot(self.config, self.runtime.service, client, signing_secret=self._secret)
        await self.runtime.start()
        self.user = self._identity(self._user_arg)
        admin = await self.bot.admins.is_admin(self.user.id)
        role = t(self.locale, "console.role_admin" if admin else "console.role_guest")
        self._say(
            t(
                self.locale,
                "console.banner",
                user=self.user.name,
                id=self.user.id,
                role=role,
                channel=self.channel_name,
            ),
            style=BOLD,
        )
        self._say(t(self.locale, "console.hint"), style=DIM)
        return self

    async def close(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self.runtime is not None:
            await self.runtime.close()
        if self.local is not None:
            await self.local.close()

    async def __aenter__(self) -> Console:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _identity(self, wanted: str | None) -> Identity:
        """Who the console acts as: a user id or name; by default an admin."""
        assert self.local is not None
        users = self.local.users
        if not wanted:
            admins = self.config.bot.admins
            user_id = admins[0] if admins else "U0ADMIN01"
            for group in self.config.bot.admin_groups:  # only groups configured: join them
                self.local.set_group(group, [*self.local.groups.get(group, []), user_id])
        elif USER_ID.match(wanted):
            user_id = wanted
        else:
            user_id = next((uid for uid, u in users.items() if u["name"] == wanted), "")
            user_id = user_id or "U" + hashlib.sha256(wanted.encode()).hexdigest()[:8].upper()
            if user_id not in users:
                self.local.add_user(user_id, wanted)
        if user_id not in users:
            self.local.add_user(user_id, user_id.lower())
        return Identity(user_id, users[user_id]["name"])

    # --- output ------------------------------------------------------------------------------

    def _say(self, text: str, *, style: str = "") -> None:
        self._print([f"{style}{text}{RESET}" if style and self.color else text])

    def _print(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.transcript.append(strip_ansi(line).rstrip())
            if self.out is not None:
                self.out.write((line if self.color else strip_ansi(line)).rstrip() + "\n")
        if self.out is not None:
            self.out.flush()

    @property
    def text(self) -> str:
        return "\n".join(self.transcript)

    def prompt(self) -> str:
        """What the console is waiting for, as a prompt."""
        if self._pending is not None:
            return self._pending_prompt()
        if self._form is not None and self._form.current is not None:
            return self._field_prompt(self._form.current)
        return "> "

    def _echo(self, line: str) -> None:
        """The line as typed, after its prompt; blank lines and comments of a script are shown as
        they are (narration, not input), unless a question is waiting for an answer."""
        asked = self._pending is not None or self._form is not None
        narration = not asked and (not line.strip() or line.lstrip().startswith("#"))
        shown = line.rstrip() if narration else f"{self.prompt()}{line}".rstrip()
        self.transcript.append(shown)
        if self.echo and self.out is not None:
            style = DIM if narration else BOLD
            self.out.write((f"{style}{shown}{RESET}" if self.color and shown else shown) + "\n")

    def _fail(self, message: str) -> None:
        self.failures += 1
        self._say(message, style=RED)

    # --- input -------------------------------------------------------------------------------

    async def feed(self, line: str) -> None:
        """Act on one line of input, then wait until the request it made has been answered."""
        self._echo(line)
        text = line.strip()
        try:
            if self._pending is not None and not self._leaves_question(text):
                await self._answer_pending(text)
            elif self._form is not None and not self._leaves_question(text):
                await self._answer_form(text)
            else:
                await self._command(text)
        except ConsoleInputError as exc:
            self._fail(str(exc))

    def _leaves_question(self, text: str) -> bool:
        return text.startswith("/") or text.lower() in ("close", "quit", "exit")

    async def _command(self, text: str) -> None:
        if not text or text.startswith("#"):
            return
        self._pending = None  # a question left unanswered is dropped by the next command
        word, _, rest = text.partition(" ")
        rest = rest.strip()
        if text.startswith("/"):
            await self._close_modals()
            await self._slash(word, rest)
        elif match := BUTTON.match(text):
            await self._press_number(int(match.group(1)), match.group(2))
        elif word.lower() == "press" and rest:
            await self._press_label(rest)
        elif word.lower() in ("wait",):
            await self.wait_idle(announce=True)
        elif word.lower() in ("http", "open", "get"):
            await self._http(rest)
        elif word.lower() == "home":
            await self._home()
        elif word.lower() == "close":
            await self._close_modals(announce=True, top_only=True)
        elif word.lower() in ("help", "?"):
            self._print(t(self.locale, "console.help").split("\n"))
        elif word.lower() in ("quit", "exit"):
            self.finished = True
        else:
            raise ConsoleInputError(t(self.locale, "console.unknown_line", line=text[:80]))

    # --- requests to the Bolt app ------------------------------------------------------------

    async def _dispatch(self, body: bytes, content_type: str) -> tuple[int, Any]:
        """Send one request through the Bolt app as Slack would, and wait until its listener is
        done: the ack answers at once, the work after the ack runs in a task (handlers.guarded)."""
        assert self.bot is not None
        headers = signed_headers(body, self._secret, content_type=content_type)
        response = await self.bot.app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        await self._settle_listeners()
        try:
            answer = json.loads(response.body) if response.body else None
        except ValueError:
            answer = response.body
        return response.status, answer

    async def _settle_listeners(self) -> None:
        assert self.bot is not None
        while pending := {t for t in self.bot.context.tasks if not t.done()}:
            await asyncio.wait(pending)

    async def _slash(self, command: str, text: str) -> None:
        assert self.local is not None
        url = self.local.response_url(channel=self.channel_id, user=self.user.id, kind="commands")
        self._origins[url] = None
        form = slash_command_form(
            text,
            user_id=self.user.id,
            user_name=self.user.name,
            channel_id=self.channel_id,
            channel_name=self.channel_name,
            response_url=url,
            trigger_id=new_trigger_id(),
            command=command,
        )
        status, answer = await self._dispatch(encode_form(form), "application/x-www-form-urlencoded")
        if status == 404:
            raise ConsoleInputError(t(self.locale, "console.unknown_command", command=command[:40]))
        self._show_ack(status, answer, url)

    def _show_ack(self, status: int, answer: Any, url: str | None) -> None:
        """A message returned in the ack itself is an ephemeral answer (or a channel message)."""
        if status >= 400:
            self._say(t(self.locale, "console.request_failed", status=status), style=RED)
            return
        if isinstance(answer, str) and answer.strip():
            answer = {"text": answer}
        if not isinstance(answer, dict) or not (answer.get("text") or answer.get("blocks")):
            return
        surface = self._new_ephemeral(answer, ts=action_ts())
        if url is not None:
            self._origins[url] = surface.key

    async def _home(self) -> None:
        assert self.local is not None
        view = self.local.home(self.user.id)
        event = app_home_opened_event(self.user.id, "D" + self.user.id[1:], view=view)
        body = json.dumps(event_callback(event, "Ev" + secrets.token_hex(5).upper())).encode()
        await self._dispatch(body, "application/json")

    # --- buttons -----------------------------------------------------------------------------

    async def _press_number(self, number: int, extra: str | None) -> None:
        press = self._pressables.get(number)
        if press is None or press.surface not in self._surfaces:
            raise ConsoleInputError(t(self.locale, "console.unknown_button", n=number))
        await self._press(press, extra)

    async def _press_label(self, label: str) -> None:
        """`press 回滚`: the newest button with that label, else the newest whose label starts
        with it (`回滚` finds `回滚到 #41`)."""
        wanted = label.strip().strip("[]〔〕").lower()
        shown = [
            (number, press)
            for number, press in sorted(self._pressables.items(), reverse=True)
            if press.surface in self._surfaces
        ]
        exact = [press for _, press in shown if wanted in _labels(press.control)]
        prefixed = [press for _, press in shown if any(x.startswith(wanted) for x in _labels(press.control))]
        if not (exact or prefixed):
            raise ConsoleInputError(t(self.locale, "console.unknown_label", label=label[:40]))
        await self._press((exact or prefixed)[0], None)

    async def _press(self, press: Pressable, extra: str | None) -> None:
        element = press.control.element
        if element.get("type") == "static_select":
            if extra is None:
                self._pending = PendingPress(press)
                self._print(["  " + line for line in self._choices(element)])
                return
            await self._click(press, self._pick_option(element, extra))
            return
        if element.get("confirm"):
            if extra is None:
                self._pending = PendingPress(press)
                self._print(render_confirm(element["confirm"], color=self.color))
                return
            if not self._yes_no(extra):
                self._say(t(self.locale, "console.confirm_denied"), style=DIM)
                return
        await self._click(press, None)

    async def _answer_pending(self, text: str) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None
        element = pending.press.control.element
        if element.get("type") == "static_select":
            if not text:
                return
            await self._click(pending.press, self._pick_option(element, text))
            return
        try:
            yes = self._yes_no(text)
        except ConsoleInputError:
            self._pending = pending
            raise
        if yes:
            await self._click(pending.press, None)
        else:
            self._say(t(self.locale, "console.confirm_denied"), style=DIM)

    def _pending_prompt(self) -> str:
        assert self._pending is not None
        element = self._pending.press.control.element
        if element.get("type") == "static_select":
            return f"{_label(self._pending.press.control)} > "
        return "y/n > "

    async def _click(self, press: Pressable, option: str | None) -> None:
        """The block_actions request Slack sends when the button (or menu option) is pressed."""
        assert self.local is not None
        surface = self._surfaces[press.surface]
        control = press.control
        kwargs: dict[str, Any] = {
            "user_id": self.user.id,
            "user_name": self.user.name,
            "trigger_id": new_trigger_id(),
            "block_id": control.block_id,
            "action_type": control.kind,
            "selected_option": option,
        }
        if surface.kind in ("modal", "home"):
            kwargs["view"] = self.local.views.get(surface.view["id"], surface.view) if surface.view else None
            url = None
        else:
            ephemeral = surface.kind == "ephemeral"
            url = self.local.response_url(
                channel=surface.channel, user=self.user.id, message_ts=surface.ts, ephemeral=ephemeral
            )
            self._origins[url] = surface.key
            message = self.local.messages.get((surface.channel or "", surface.ts or ""))
            if message is None:
                message = {"ts": surface.ts, "text": surface.text, "blocks": surface.blocks}
            kwargs.update(
                channel_id=surface.channel,
                channel_name=self._channel_name(surface.channel),
                message=message,
                response_url=url,
                is_ephemeral=ephemeral,
            )
        payload = block_actions_payload(control.action_id, control.element.get("value"), **kwargs)
        status, answer = await self._dispatch(
            encode_interaction(payload), "application/x-www-form-urlencoded"
        )
        self._show_ack(status, answer, url)

    def _pick_option(self, element: dict, answer: str) -> str:
        options = _options(element)
        answer = answer.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1]["value"]
        for option in options:
            if answer.lower() in (option["value"].lower(), option_label(option).lower()):
                return option["value"]
        choices = ", ".join(o["value"] for o in options)
        raise ConsoleInputError(t(self.locale, "console.bad_choice", value=answer[:40], choices=choices))

    def _choices(self, element: dict) -> list[str]:
        return [f"{i}) {o['value']} = {option_label(o)}" for i, o in enumerate(_options(element), 1)]

    def _yes_no(self, text: str) -> bool:
        word = text.strip().lower()
        if word in YES:
            return True
        if word in NO:
            return False
        raise ConsoleInputError(t(self.locale, "console.bad_yes_no"))

    # --- modals ------------------------------------------------------------------------------

    def _start_form(self, view: dict) -> None:
        fields = _form_fields(view)
        if not fields or not view.get("submit"):
            self._form = None
            return
        self._form = ModalForm(view, fields)
        example = " ".join(_example(f) for f in fields)
        self._say(t(self.locale, "console.form_hint", example=example), style=DIM)

    def _field_prompt(self, item: FormField) -> str:
        default = self._field_default(item)
        if item.kind == "checkbox":
            return t(self.locale, "console.prompt_checkbox", label=item.label, default=default)
        if item.kind == "static_select":
            choices = " | ".join(f"{i}) {o['value']}" for i, o in enumerate(_options(item.element), 1))
            return t(self.locale, "console.prompt_select", label=item.label, default=default, choices=choices)
        return t(self.locale, "console.prompt_text", label=item.label, default=default)

    def _field_default(self, item: FormField) -> str:
        assert self._form is not None
        values = self._form.values
        if item.kind == "checkbox":
            chosen = values.get(item.block_id)
            if chosen is None:
                chosen = [o["value"] for o in item.element.get("initial_options", [])]
            return "y" if item.option and item.option["value"] in chosen else "n"
        if item.block_id in values:
            return str(values[item.block_id] or "")
        if item.kind == "static_select":
            return (item.element.get("initial_option") or {}).get("value", "")
        return item.element.get("initial_value") or ""

    async def _answer_form(self, text: str) -> None:
        form = self._form
        assert form is not None
        if text and all(ASSIGNMENT.match(token) for token in _split(text)):
            values = self._assignments(form, text)
            for item in form.fields:
                if item.block_id in values and item.kind == "static_select":
                    form = await self._choose(form, item, values[item.block_id])
            form.values.update(values)
            await self._submit(form)
            return
        item = form.current
        assert item is not None
        if text:
            self._set_field(form, item, text)
            if item.kind == "static_select":
                form = await self._choose(form, item, form.values[item.block_id])
        elif item.kind == "checkbox" and item.block_id not in form.values:
            form.values[item.block_id] = [o["value"] for o in item.element.get("initial_options", [])]
        form.index += 1
        if form.current is None:
            await self._submit(form)

    async def _choose(self, form: ModalForm, item: FormField, value: str) -> ModalForm:
        """A select whose input block Slack sends the moment it changes (`dispatch_action`): send
        it as Slack would, and go on with the modal as the app redraws it, answers kept."""
        assert self.local is not None
        view = self.local.views.get(form.view["id"], form.view)
        block = next((b for b in view.get("blocks", []) if b.get("block_id") == item.block_id), {})
        if not block.get("dispatch_action"):
            return form
        payload = block_actions_payload(
            item.element["action_id"],
            None,
            user_id=self.user.id,
            user_name=self.user.name,
            trigger_id=new_trigger_id(),
            view=view,
            block_id=item.block_id,
            action_type="static_select",
            selected_option=value,
        )
        await self._dispatch(encode_interaction(payload), "application/x-www-form-urlencoded")
        redrawn = self._form
        if redrawn is None or redrawn is form or redrawn.view.get("id") != form.view.get("id"):
            return form
        redrawn.values.update(form.values)
        redrawn.index = form.index
        return redrawn

    def _set_field(self, form: ModalForm, item: FormField, answer: str) -> None:
        if item.kind == "static_select":
            form.values[item.block_id] = self._pick_option(item.element, answer)
        elif item.kind == "checkbox":
            assert item.option is not None
            chosen = form.values.get(item.block_id)
            if chosen is None:
                chosen = [o["value"] for o in item.element.get("initial_options", [])]
            chosen = [v for v in chosen if v != item.option["value"]]
            if self._yes_no(answer):
                chosen.append(item.option["value"])
            form.values[item.block_id] = chosen
        else:
            form.values[item.block_id] = answer

    def _assignments(self, form: ModalForm, text: str) -> dict[str, Any]:
        """`env=staging branch=main skip_build=yes description="two words"` as modal values."""
        values: dict[str, Any] = {}
        for token in _split(text):
            key, _, raw = token.partition("=")
            item = _find_field(form.fields, key)
            if item is None:
                names = ", ".join(dict.fromkeys(_field_names(form.fields)))
                raise ConsoleInputError(t(self.locale, "console.unknown_field", name=key[:40], fields=names))
            if item.kind == "checkbox" and item.option is not None and key == item.option["value"]:
                chosen = values.get(item.block_id, form.values.get(item.block_id))
                if chosen is None:
                    chosen = [o["value"] for o in item.element.get("initial_options", [])]
                chosen = [v for v in chosen if v != key]
                if self._yes_no(raw):
                    chosen.append(key)
                values[item.block_id] = chosen
            elif item.kind == "checkbox":
                picked = [p for p in raw.split(",") if p]
                values[item.block_id] = [self._pick_option(item.element, p) for p in picked]
            elif item.kind == "static_select":
                values[item.block_id] = self._pick_option(item.element, raw)
            else:
                values[item.block_id] = raw
        return values

    async def _submit(self, form: ModalForm) -> None:
        assert self.local is not None
        self._form = None
        view = self.local.views.get(form.view["id"], form.view)
        payload = view_submission_payload(
            view, form.values, user_id=self.user.id, user_name=self.user.name, trigger_id=new_trigger_id()
        )
        status, answer = await self._dispatch(
            encode_interaction(payload), "application/x-www-form-urlencoded"
        )
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if status >= 400:
            self._say(t(self.locale, "console.request_failed", status=status), style=RED)
        elif action == "errors":
            self._print(render_errors(answer.get("errors") or {}, view))
            self._form = ModalForm(view, form.fields, values=form.values)
        elif action in ("update", "push") and isinstance(answer.get("view"), dict):
            if action == "update":
                self._drop_modal(view["id"])
            self._open_modal({**answer["view"], "id": answer["view"].get("id") or view["id"]})
        elif action == "clear":
            await self._close_modals(by_user=False)
        else:
            self._drop_modal(view["id"])
            self._uncover()

    def _open_modal(self, view: dict) -> None:
        surface = self._surface(f"view:{view['id']}", "modal")
        surface.view = view
        if surface.key not in self._modals:
            self._modals.append(surface.key)
        self._show_view(surface, updated=False)
        self._start_form(view)

    def _drop_modal(self, view_id: str) -> None:
        key = f"view:{view_id}"
        if key in self._modals:
            self._modals.remove(key)
        self._forget(key)
        if self._form is not None and self._form.view.get("id") == view_id:
            self._form = None

    async def _close_modals(
        self, *, by_user: bool = True, announce: bool = False, top_only: bool = False
    ) -> None:
        """Close the open modals (or only the top one, uncovering the one below). Closed by the
        user rather than by the app, Slack tells the app when the modal asked for it."""
        if not self._modals and announce:
            self._say(t(self.locale, "console.no_modal"), style=DIM)
        closing = list(reversed(self._modals))[: 1 if top_only else None]
        self._form = None
        self._pending = None
        for key in closing:
            surface = self._surfaces.get(key)
            self._drop_modal(key.removeprefix("view:"))
            if by_user and surface and surface.view and surface.view.get("notify_on_close"):
                payload = view_closed_payload(surface.view, user_id=self.user.id, user_name=self.user.name)
                await self._dispatch(encode_interaction(payload), "application/x-www-form-urlencoded")
            if announce:
                self._say(t(self.locale, "console.modal_closed"), style=DIM)
        if top_only:
            self._uncover()

    def _uncover(self) -> None:
        """The modal below a closed one is the current one again."""
        below = self._surfaces.get(self._modals[-1]) if self._modals else None
        if below is not None and below.view is not None:
            self._show_view(below, updated=False)
            self._start_form(below.view)

    # --- what the app does in "Slack" --------------------------------------------------------

    def _on_call(self, call: Call) -> None:
        """LocalSlack hook: render each Web API call the app made."""
        if call.method in SILENT_METHODS:
            return
        if not call.ok:
            error = call.response.get("error") if isinstance(call.response, dict) else call.response
            self._say(t(self.locale, "console.slack_error", method=call.method, error=error), style=RED)
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

    def _posted(self, call: Call) -> None:
        params, response = call.params, call.response
        channel, ts = response.get("channel"), response.get("ts")
        message = response.get("message") or params
        surface = self._surface(f"msg:{channel}:{ts}", "message", channel=channel, ts=ts)
        surface.text, surface.blocks = message.get("text") or "", message.get("blocks") or []
        parent_ts = params.get("thread_ts")
        if parent_ts:
            parent = self._surfaces.get(f"msg:{channel}:{parent_ts}")
            header = t(
                self.locale, "console.reply", n=surface.number, parent=parent.number if parent else "?"
            )
            if str(params.get("reply_broadcast")).lower() in ("true", "1"):
                header += t(self.locale, "console.broadcast")
            self._show_message(surface, "    ↳ " + header, indent="      ")
        else:
            name = self._channel_name(channel)
            self._show_message(
                surface, f"── {t(self.locale, 'console.message', n=surface.number, channel=name)} ──"
            )

    def _updated(self, call: Call) -> None:
        assert self.local is not None
        channel, ts = call.response.get("channel"), call.response.get("ts")
        surface = self._surfaces.get(f"msg:{channel}:{ts}")
        message = self.local.messages.get((channel, ts))
        if surface is None or message is None:
            return
        surface.text, surface.blocks = message.get("text") or "", message.get("blocks") or []
        indent = "      " if message.get("thread_ts") not in (None, ts) else "  "
        self._show_message(
            surface,
            f"── {t(self.locale, 'console.updated', n=surface.number)} ──",
            indent=indent,
            only_if_changed=True,
        )

    def _posted_ephemeral(self, call: Call) -> None:
        self._new_ephemeral(
            call.params, ts=call.response.get("message_ts"), channel=call.params.get("channel")
        )

    def _responded(self, call: Call) -> None:
        assert self.local is not None
        body = {k: v for k, v in call.params.items() if k != "url"}
        url = call.params.get("url", "")
        origin = self._surfaces.get(self._origins.get(url) or "")
        if str(body.get("delete_original")).lower() in ("true", "1"):
            if origin is not None:
                self._say(t(self.locale, "console.deleted", n=origin.number), style=DIM)
                self._forget(origin.key)
            return
        if str(body.get("replace_original")).lower() in ("true", "1") and origin is not None:
            origin.text, origin.blocks = body.get("text") or "", body.get("blocks") or []
            header = f"── {t(self.locale, 'console.updated', n=origin.number)} ──"
            self._show_message(origin, header, only_if_changed=True)
            return
        if body.get("response_type") == "in_channel":
            ts = action_ts()
            surface = self._surface(f"msg:{self.channel_id}:{ts}", "message", channel=self.channel_id, ts=ts)
            surface.text, surface.blocks = body.get("text") or "", body.get("blocks") or []
            name = self._channel_name(self.channel_id)
            self._show_message(
                surface, f"── {t(self.locale, 'console.message', n=surface.number, channel=name)} ──"
            )
            return
        mine = [e for e in self.local.ephemeral.get(self.user.id, []) if e.get("via") == "response_url"]
        surface = self._new_ephemeral(body, ts=mine[-1]["ts"] if mine else action_ts())
        if origin is None:  # a later replace_original on this URL replaces this answer
            self._origins[url] = surface.key

    def _new_ephemeral(self, body: dict, *, ts: str | None, channel: str | None = None) -> Surface:
        key = f"eph:{ts or action_ts()}"
        surface = self._surface(key, "ephemeral", channel=channel or self.channel_id, ts=ts)
        surface.text, surface.blocks = body.get("text") or "", body.get("blocks") or []
        self._show_message(surface, f"── {t(self.locale, 'console.ephemeral', n=surface.number)} ──")
        return surface

    def _view_opened(self, call: Call) -> None:
        view = call.response.get("view")
        if isinstance(view, dict):
            self._open_modal(view)

    def _view_updated(self, call: Call) -> None:
        view = call.response.get("view")
        if not isinstance(view, dict):
            return
        if view.get("type") == "home":
            self._home_published(call)
            return
        surface = self._surface(f"view:{view['id']}", "modal")
        surface.view = view
        if surface.key not in self._modals:
            self._modals.append(surface.key)
        self._show_view(surface, updated=True)
        if self._form is None or self._form.view.get("id") == view["id"]:
            self._start_form(view)

    def _home_published(self, call: Call) -> None:
        view = call.response.get("view")
        if not isinstance(view, dict) or call.params.get("user_id") != self.user.id:
            return
        surface = self._surface(f"view:{view['id']}", "home")
        surface.view = view
        self._show_view(surface, updated=bool(surface.rendered), only_if_changed=True)

    def _files_shared(self, call: Call) -> None:
        assert self.local is not None
        params = call.params
        parent = self._surfaces.get(f"msg:{params.get('channel_id')}:{params.get('thread_ts')}")
        indent = "      " if parent is not None else "  "
        for entry in params.get("files") or []:
            file = self.local.files.get(str(entry.get("id")))
            if file is None or file.data is None:
                continue
            path = self._save(file.name, file.data)
            line = t(
                self.locale,
                "console.file_saved",
                title=file.title or file.name,
                path=path,
                size=len(file.data),
            )
            self._print([indent + line])

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

    # --- surfaces and their buttons ----------------------------------------------------------

    def _surface(self, key: str, kind: str, *, channel: str | None = None, ts: str | None = None) -> Surface:
        surface = self._surfaces.get(key)
        if surface is None:
            number = next(self._message_numbers) if kind in ("message", "ephemeral") else 0
            surface = Surface(key, kind, number, channel, ts)
            self._surfaces[key] = surface
        return surface

    def _forget(self, key: str) -> None:
        surface = self._surfaces.pop(key, None)
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
        assert self.local is not None
        return {uid: user["name"] for uid, user in self.local.users.items()}

    def _show_message(
        self, surface: Surface, header: str, *, indent: str = "  ", only_if_changed: bool = False
    ) -> None:
        numbers = self._number(surface, surface.blocks)
        lines = render_message(
            surface.text, surface.blocks, numbers, color=self.color, locale=self.locale, names=self._names()
        )
        plain = [strip_ansi(line) for line in lines]
        if only_if_changed and plain == surface.rendered:
            return
        surface.rendered = plain
        self._print([f"{DIM}{header}{RESET}" if self.color else header, *(indent + line for line in lines)])

    def _show_view(self, surface: Surface, *, updated: bool, only_if_changed: bool = False) -> None:
        assert surface.view is not None
        numbers = self._number(surface, surface.view.get("blocks") or [])
        lines = render_view(surface.view, numbers, color=self.color, locale=self.locale, names=self._names())
        plain = [strip_ansi(line) for line in lines]
        if only_if_changed and plain == surface.rendered:
            return
        surface.rendered = plain
        head = [t(self.locale, "console.view_updated")] if updated else []
        self._print([*head, *lines])

    def _channel_name(self, channel: str | None) -> str:
        assert self.local is not None
        if (channel or "").startswith("D"):  # the app's DM with the user (modals opened from App Home)
            return t(self.locale, "console.dm")
        known = self.local.channels.get(channel or "")
        return known.name if known else (channel or "")

    # --- the rest of the console's own commands ----------------------------------------------

    async def wait_idle(self, *, announce: bool = False) -> None:
        """Until no deploy runs and everything the bot had to say about them has been said."""
        assert self.runtime is not None and self.bot is not None
        if announce and self.runtime.service.running_ids:
            self._say(t(self.locale, "console.waiting"), style=DIM)
        while True:
            await self._settle_listeners()
            await self.runtime.service.wait_idle()
            await self.bot.notifier.wait_idle()
            if not self.runtime.service.running_ids and not any(
                not task.done() for task in self.bot.context.tasks
            ):
                return

    async def _http(self, url: str) -> None:
        """GET a loopback URL and print the answer (the demo app, the bot's own REST API)."""
        if not url:
            raise ConsoleInputError(t(self.locale, "console.http_usage"))
        if "://" not in url:
            url = "http://" + url
        if not _is_loopback(url):
            raise ConsoleInputError(t(self.locale, "console.http_loopback_only", url=url[:120]))
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                body = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._say(
                t(self.locale, "console.http_failed", url=url, error=str(exc) or type(exc).__name__),
                style=RED,
            )
            return
        lines = body[:HTTP_BODY_CHARS].rstrip("\n").split("\n")[:HTTP_BODY_LINES]
        self._print(
            [t(self.locale, "console.http_status", status=status, url=url), *("  " + ln for ln in lines)]
        )


# --- small pure pieces ------------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _label(control: Control) -> str:
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
    names = {_label(control), placeholder.get("text", "") if isinstance(placeholder, dict) else ""}
    return {name.lower() for name in names if name}


def _options(element: dict) -> list[dict]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _form_fields(view: dict) -> list[FormField]:
    fields: list[FormField] = []
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        label = option_label({"text": block.get("label")})
        kind = element.get("type", "")
        if kind == "checkboxes":
            for option in element.get("options") or []:
                fields.append(FormField(block["block_id"], "checkbox", option_label(option), element, option))
        elif kind in ("static_select", "plain_text_input"):
            fields.append(FormField(block["block_id"], kind, label, element))
    return fields


def _field_names(fields: list[FormField]) -> list[str]:
    names = []
    for item in fields:
        names.append(item.option["value"] if item.option else item.block_id)
    return names


def _find_field(fields: list[FormField], key: str) -> FormField | None:
    for item in fields:
        if item.option is not None and key == item.option["value"]:
            return item
    for item in fields:
        if key in (item.block_id, item.element.get("action_id")):
            return item
    return None


def _example(item: FormField) -> str:
    if item.kind == "checkbox" and item.option is not None:
        return f"{item.option['value']}=yes"
    if item.kind == "static_select":
        options = _options(item.element)
        return f"{item.block_id}={options[-1]['value'] if options else ''}"
    return f'{item.block_id}="…"'


# --- the CLI entry ----------------------------------------------------------------------------


class LineReader:
    """Lines from stdin without blocking the event loop. A daemon thread does the reading, so
    Ctrl-C or the end of the console never waits for a line that will not come."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self._loop = asyncio.get_running_loop()

    async def read(self, prompt: str) -> str | None:
        future: asyncio.Future[str | None] = self._loop.create_future()

        def work() -> None:
            try:
                line: str | None = input(prompt) if self.interactive else sys.stdin.readline()
                if not self.interactive and line == "":
                    line = None
            except EOFError:
                line = None
            except Exception:  # a closed or broken stdin ends the input like EOF
                line = None
            self._loop.call_soon_threadsafe(_settle, future, line)

        threading.Thread(target=work, daemon=True).start()
        line = await future
        return None if line is None else line.rstrip("\n")


def _settle(future: asyncio.Future, value: str | None) -> None:
    if not future.done():
        future.set_result(value)


async def run_console(config: Config, args: Any) -> int:
    """`deploybot console`: read lines (a script, or stdin), act on each, wait for running
    deploys at the end. Exit status 1 when a line could not be understood."""
    color = not getattr(args, "no_color", False) and sys.stdout.isatty()
    interactive = not getattr(args, "script", None) and sys.stdin.isatty()
    console = Console(
        config, user=getattr(args, "user", None), color=color, out=sys.stdout, echo=not interactive
    )
    await console.start()
    try:
        if args.script:
            lines = Path(args.script).read_text(encoding="utf-8").splitlines()
            for line in lines:
                await console.feed(line)
                if console.finished:
                    break
        else:
            reader = LineReader(interactive)
            while not console.finished:
                line = await reader.read(console.prompt() if interactive else "")
                if line is None:
                    break
                await console.feed(line)
        await console.wait_idle(announce=True)
    finally:
        await console.close()
    if console.failures:
        print(t(config.locale, "console.failures", count=console.failures), file=sys.stderr)
    return 1 if console.failures else 0
