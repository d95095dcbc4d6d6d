"""The console's `logs [-f] <id>`: a deploy's log read from the database, and with `-f` followed
live (through the same follower as the REST stream, so output is stored promptly while it is
watched) until the deploy ends. Lines are shown as a terminal would leave them: a progress bar
redrawn with `\\r` shows its last state."""

from __future__ import annotations

from bot.console.forms import ConsoleInputError
from bot.console.render import DIM
from bot.console.terminal import Terminal
from bot.deploy.logfollow import LogFollow, LogReader
from bot.i18n import t

INDENT = "  "


def parse_logs_args(rest: str, locale: str) -> tuple[int, bool]:
    """`[-f] <id>` -> (deploy id, follow)."""
    words = rest.split()
    follow = "-f" in words
    ids = [word.lstrip("#") for word in words if word != "-f"]
    if len(ids) != 1 or not ids[0].isdigit() or not 1 <= int(ids[0]) < 2**31:
        raise ConsoleInputError(t(locale, "console.logs_usage"))
    return int(ids[0]), follow


def shown(line: str) -> str:
    return INDENT + line.rstrip("\r").rsplit("\r", 1)[-1]


async def show_log(reader: LogReader, terminal: Terminal, locale: str, deploy_id: int, follow: bool) -> None:
    partial = ""
    with LogFollow(reader, deploy_id) as log:
        while True:
            text = await log.next()
            if text is None or (text == "" and not follow):
                break
            *lines, partial = (partial + text).split("\n")
            terminal.show(shown(line) for line in lines)
    if partial:
        terminal.show([shown(partial)])
    if log.deploy is not None and (follow or log.deploy.state.is_finished):
        status = t(locale, f"status.{log.deploy.state.value}")
        terminal.say(t(locale, "console.logs_end", id=deploy_id, status=status), style=DIM)
