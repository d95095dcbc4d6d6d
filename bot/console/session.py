"""`deploybot console`: the whole bot in a terminal, without Slack.

The console runs what `deploybot serve` runs (the runtime, the real Bolt app with its listeners,
the notifier) against a LocalSlack on 127.0.0.1. Each line typed becomes the request Slack would
send (a slash command, a button click, a modal submission), signed and dispatched through the Bolt
app by the SlackDriver (driver.py); every Web API call the app makes is shown by the Screen
(screen.py) instead of in Slack.

Buttons are shown numbered (`[3] 回滚`); typing the number presses it. A modal is filled field by
field, or in one line (`env=staging branch=main skip_build=yes`) (modals.py). `Console` is usable
in-process (`await console.feed(line)`, `console.transcript`); `run_console` is the CLI entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp

from bot.app.runtime import Runtime, build_runtime
from bot.app.slack_app import SlackBot, create_slack_bot
from bot.config import Config
from bot.console.driver import BoltTransport, SlackDriver
from bot.console.forms import ConsoleInputError, choices, pick_option, yes_no
from bot.console.logs import parse_logs_args, show_log
from bot.console.modals import Modals
from bot.console.render import BOLD, DIM, RED, render_confirm
from bot.console.screen import Pressable, Screen, label
from bot.console.team import DEFAULT_CHANNEL
from bot.console.terminal import LineReader, Terminal
from bot.console.workspace import LocalSlack
from bot.errors import DeployError
from bot.i18n import t
from bot.slack.client import create_client

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
BUTTON = re.compile(r"^(\d{1,6})(?:\s+(.+))?$")
HTTP_BODY_LINES = 40
HTTP_BODY_CHARS = 4000
DEFAULT_FILES_DIR = Path(".state") / "console-files"


@dataclass(frozen=True)
class Identity:
    id: str
    name: str


class Console:
    """One user's session with the bot: `start()`, then `feed()` it lines as typed; what Slack
    would show is kept in `transcript` (and written to `out`)."""

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
        self.base_env = base_env
        self.failures = 0
        self.finished = False
        self.channel_id, self.channel_name = DEFAULT_CHANNEL
        self._secret = secrets.token_hex(16)
        self.local = slack or LocalSlack()  # a subclass can be passed in (tests check Block Kit)
        self.terminal = Terminal(out, color=color, echo=echo)
        self.user = self._identity(user)
        self.screen = Screen(
            self.local,
            self.terminal,
            user=self.user.id,
            channel=self.channel_id,
            locale=self.locale,
            files_dir=files_dir or DEFAULT_FILES_DIR,
            on_modal=self._modal_shown,
        )
        self.runtime: Runtime | None = None
        self.bot: SlackBot | None = None
        self._transport: BoltTransport | None = None
        self._driver: SlackDriver | None = None
        self._modals: Modals | None = None
        # a press waiting for an answer: y/n to its confirm dialog, or the option of a select
        self._pending: Pressable | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Console:
        self.local.on_call = self.screen.show_call
        await self.local.start()
        self.runtime = build_runtime(self.config, base_env=self.base_env, role="console")
        client = create_client(self.config, base_url=self.local.api_url)
        self.bot = create_slack_bot(self.config, self.runtime.service, client, signing_secret=self._secret)
        self._transport = BoltTransport(self.bot)
        self._driver = SlackDriver(self._transport, self.local, secret=self._secret, channel=self.channel_id)
        self._modals = Modals(self._driver, self.screen, self.terminal, user=self.user.id, locale=self.locale)
        await self.runtime.start()
        admin = await self.bot.admins.is_admin(self.user.id)
        role = t(self.locale, "console.role_admin" if admin else "console.role_guest")
        banner = t(
            self.locale,
            "console.banner",
            user=self.user.name,
            id=self.user.id,
            role=role,
            channel=self.channel_name,
        )
        self.terminal.say(banner, style=BOLD)
        self.terminal.say(t(self.locale, "console.hint"), style=DIM)
        return self

    async def close(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self.runtime is not None:
            await self.runtime.close()
        await self.local.close()

    async def __aenter__(self) -> Console:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def driver(self) -> SlackDriver:
        assert self._driver is not None, "start() the console first"
        return self._driver

    @property
    def modals(self) -> Modals:
        assert self._modals is not None, "start() the console first"
        return self._modals

    def _identity(self, wanted: str | None) -> Identity:
        """Who the console acts as: a user id or name; by default an admin."""
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

    # --- the terminal ------------------------------------------------------------------------

    @property
    def transcript(self) -> list[str]:
        return self.terminal.lines

    @property
    def text(self) -> str:
        return self.terminal.text

    def prompt(self) -> str:
        """What the console is waiting for, as a prompt."""
        if self._pending is not None:
            control = self._pending.control
            return f"{label(control)} > " if control.element.get("type") == "static_select" else "y/n > "
        return self.modals.prompt() or "> "

    def _asked(self) -> bool:
        return self._pending is not None or self.modals.form is not None

    def _echo(self, line: str) -> None:
        """The line as typed, after its prompt; blank lines and comments of a script are shown as
        they are (narration, not input), unless a question is waiting for an answer."""
        narration = not self._asked() and (not line.strip() or line.lstrip().startswith("#"))
        shown = line.rstrip() if narration else f"{self.prompt()}{line}".rstrip()
        self.terminal.echo(shown, narration=narration)

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.terminal.say(message, style=RED)

    # --- input -------------------------------------------------------------------------------

    async def feed(self, line: str) -> None:
        """Act on one line of input, then wait until the request it made has been answered."""
        self._echo(line)
        text = line.strip()
        leaves = text.startswith("/") or text.lower() in ("close", "quit", "exit")
        try:
            if self._pending is not None and not leaves:
                await self._answer_pending(text)
            elif self.modals.form is not None and not leaves:
                await self.modals.answer(text)
            else:
                await self._command(text)
        except ConsoleInputError as exc:
            self._fail(str(exc))

    async def _command(self, text: str) -> None:
        if not text or text.startswith("#"):
            return
        self._pending = None  # a question left unanswered is dropped by the next command
        word, _, rest = text.partition(" ")
        rest = rest.strip()
        if text.startswith("/"):
            await self.modals.close()
            await self._slash(text, word)
        elif match := BUTTON.match(text):
            await self._press_number(int(match.group(1)), match.group(2))
        elif word.lower() == "press" and rest:
            await self._press_label(rest)
        elif word.lower() in ("wait",):
            await self.wait_idle(announce=True)
        elif word.lower() in ("http", "open", "get"):
            await self._http(rest)
        elif word.lower() == "logs":
            deploy_id, follow = parse_logs_args(rest, self.locale)
            try:
                await show_log(self.runtime.service, self.terminal, self.locale, deploy_id, follow)
            except DeployError as exc:
                self._fail(exc.message(self.locale))
        elif word.lower() == "home":
            await self.driver.home_opened(user=self.user.id)
        elif word.lower() == "close":
            await self.modals.close(announce=True, top_only=True)
        elif word.lower() in ("help", "?"):
            self.terminal.show(t(self.locale, "console.help").split("\n"))
        elif word.lower() in ("quit", "exit"):
            self.finished = True
        else:
            raise ConsoleInputError(t(self.locale, "console.unknown_line", line=text[:80]))

    async def _slash(self, text: str, command: str) -> None:
        reply = await self.driver.command(text, user=self.user.id)
        if reply.status == 404:
            raise ConsoleInputError(t(self.locale, "console.unknown_command", command=command[:40]))
        self.screen.show_ack(reply, self.driver.last_response_url)

    def _modal_shown(self, view: dict, updated: bool) -> None:
        self.modals.shown(view, updated)

    # --- buttons -----------------------------------------------------------------------------

    async def _press_number(self, number: int, extra: str | None) -> None:
        press = self.screen.pressable(number)
        if press is None:
            raise ConsoleInputError(t(self.locale, "console.unknown_button", n=number))
        await self._press(press, extra)

    async def _press_label(self, wanted: str) -> None:
        press = self.screen.find_label(wanted)
        if press is None:
            raise ConsoleInputError(t(self.locale, "console.unknown_label", label=wanted[:40]))
        await self._press(press, None)

    async def _press(self, press: Pressable, extra: str | None) -> None:
        """A select or a button with a confirm dialog asks first, unless the answer came along."""
        element = press.control.element
        if element.get("type") == "static_select":
            if extra is None:
                self._pending = press
                self.terminal.show(["  " + line for line in choices(element)])
                return
            await self._click(press, pick_option(element, extra, self.locale))
            return
        if element.get("confirm"):
            if extra is None:
                self._pending = press
                self.terminal.show(render_confirm(element["confirm"], color=self.terminal.color))
                return
            if not yes_no(extra, self.locale):
                self.terminal.say(t(self.locale, "console.confirm_denied"), style=DIM)
                return
        await self._click(press, None)

    async def _answer_pending(self, text: str) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None
        element = pending.control.element
        if element.get("type") == "static_select":
            if not text:
                return
            await self._click(pending, pick_option(element, text, self.locale))
            return
        try:
            yes = yes_no(text, self.locale)
        except ConsoleInputError:
            self._pending = pending
            raise
        if yes:
            await self._click(pending, None)
        else:
            self.terminal.say(t(self.locale, "console.confirm_denied"), style=DIM)

    async def _click(self, press: Pressable, option: str | None) -> None:
        """The block_actions request Slack sends when the button (or menu option) is pressed."""
        surface = self.screen.surfaces[press.surface]
        control = press.control
        common: dict[str, Any] = {
            "user": self.user.id,
            "block_id": control.block_id,
            "action_type": control.kind,
            "selected": option,
        }
        value = control.element.get("value")
        if surface.kind in ("modal", "home"):
            assert surface.view is not None
            view = self.local.views.get(surface.view["id"], surface.view)
            reply = await self.driver.click(control.action_id, value, view=view, **common)
            self.screen.show_ack(reply, None)
            return
        ephemeral = surface.kind == "ephemeral"
        url = self.local.response_url(
            channel=surface.channel, user=self.user.id, message_ts=surface.ts, ephemeral=ephemeral
        )
        self.screen.answers_to(url, surface.key)  # before the click: the answer may come before its ack
        message = self.local.messages.get((surface.channel or "", surface.ts or ""))
        if message is None:  # an ephemeral message: the console has the only copy
            message = {"ts": surface.ts, "text": surface.text, "blocks": surface.blocks}
        reply = await self.driver.click(
            control.action_id,
            value,
            message=message,
            channel=surface.channel,
            ephemeral=ephemeral,
            response_url=url,
            **common,
        )
        self.screen.show_ack(reply, url)

    # --- the rest of the console's own commands ----------------------------------------------

    async def wait_idle(self, *, announce: bool = False) -> None:
        """Until no deploy runs and everything the bot had to say about them has been said."""
        assert self.runtime is not None and self.bot is not None and self._transport is not None
        if announce and self.runtime.service.running_ids:
            self.terminal.say(t(self.locale, "console.waiting"), style=DIM)
        while True:
            await self._transport.settle()
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
            error = str(exc) or type(exc).__name__
            self.terminal.say(t(self.locale, "console.http_failed", url=url, error=error), style=RED)
            return
        lines = body[:HTTP_BODY_CHARS].rstrip("\n").split("\n")[:HTTP_BODY_LINES]
        self.terminal.show(
            [t(self.locale, "console.http_status", status=status, url=url), *("  " + ln for ln in lines)]
        )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
