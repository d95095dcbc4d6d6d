"""The console's terminal: every line it shows, kept as plain text in `lines` and written to `out` in
color or not, and the lines it reads from stdin without blocking the event loop."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterable
from typing import TextIO

from bot.console.render import BOLD, DIM, RESET, strip_ansi


class Terminal:
    """`out=None` keeps the lines without writing them anywhere (the console used in-process)."""

    def __init__(self, out: TextIO | None, *, color: bool, echo: bool) -> None:
        self.out = out
        self.color = color
        self.echo_input = echo  # write typed lines back (a script: nobody sees them being typed)
        self.lines: list[str] = []

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def say(self, text: str, *, style: str = "") -> None:
        self.show([f"{style}{text}{RESET}" if style and self.color else text])

    def show(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.lines.append(strip_ansi(line).rstrip())
            if self.out is not None:
                self.out.write((line if self.color else strip_ansi(line)).rstrip() + "\n")
        if self.out is not None:
            self.out.flush()

    def echo(self, shown: str, *, narration: bool) -> None:
        """A line as typed (after its prompt), or a script's blank line or comment (`narration`)."""
        self.lines.append(shown)
        if self.echo_input and self.out is not None:
            style = DIM if narration else BOLD
            self.out.write((f"{style}{shown}{RESET}" if self.color and shown else shown) + "\n")


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
