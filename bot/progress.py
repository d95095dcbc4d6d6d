"""Reading a deploy script's output: step markers, reported commits, the tail and the error line.

The scanner sees the output once, in the chunks the pipe delivers. It keeps only what it needs (the
start of an unfinished line and the last lines), so a 200 MB log or a 1 MB line costs no memory,
and it does its matching with compiled regular expressions over whole chunks, not line by line.
"""

from __future__ import annotations

import re
import statistics
from collections import deque
from dataclasses import dataclass, field, replace

MAX_PARTIAL = 4096  # enough of an unfinished line to match a marker at its start
MAX_TAIL_LINE = 500
TAIL_LINES = 60
STEP_LINES = 15  # lines of the previous step quoted under each new step

DEFAULT_STEP_PATTERNS = (
    re.compile(r"^(?:==>[ \t]*)?\[(?P<n>\d{1,4})/(?P<m>\d{1,4})\][ \t]*(?P<title>[^\r\n]*)", re.M),
    re.compile(r"^Step[ \t]+(?P<n>\d{1,4})/(?P<m>\d{1,4}):?[ \t]*(?P<title>[^\r\n]*)", re.M),
)
COMMIT_LINE = re.compile(r"^DEPLOY_COMMIT=([0-9a-f]{40})[ \t\r]*$", re.M)
ERROR_WORD = re.compile(r"\b(?:error|fatal|failed|failure|exception|traceback|panic)\b", re.I)


@dataclass(frozen=True)
class Step:
    number: int
    total: int | None
    title: str
    # the last lines printed since the previous marker (what the previous step said last)
    lines_before: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class CommitReported:
    sha: str


class OutputScanner:
    def __init__(self, step_pattern: str | None = None) -> None:
        self.patterns = (re.compile(step_pattern, re.M),) if step_pattern else DEFAULT_STEP_PATTERNS
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.error_line: str | None = None
        self._since_step: deque[str] = deque(maxlen=STEP_LINES)
        self._partial = bytearray()
        self._partial_full = False

    def feed(self, data: bytes) -> list[Step | CommitReported]:
        cut = data.rfind(b"\n")
        if cut < 0:
            self._keep_partial(data)
            return []
        complete = bytes(self._partial) + data[: cut + 1]
        self._partial.clear()
        self._partial_full = False
        self._keep_partial(data[cut + 1 :])
        return self._scan(complete)

    def finish(self) -> list[Step | CommitReported]:
        """Scan a last line that had no newline."""
        if not self._partial:
            return []
        rest = bytes(self._partial)
        self._partial.clear()
        return self._scan(rest)

    @property
    def last_error(self) -> str:
        """The last line that looks like an error, else the last non-empty line."""
        if self.error_line:
            return self.error_line
        return next((line for line in reversed(self.tail) if line.strip()), "")

    def _keep_partial(self, data: bytes) -> None:
        if self._partial_full or not data:
            return
        room = MAX_PARTIAL - len(self._partial)
        self._partial += data[:room]
        self._partial_full = len(data) >= room

    def _scan(self, chunk: bytes) -> list[Step | CommitReported]:
        text = chunk.decode("utf-8", errors="replace")
        found: list[tuple[int, Step | CommitReported]] = []
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                step = _step_from(match)
                if step:
                    found.append((match.start(), step))
        found.extend((m.start(), CommitReported(m.group(1))) for m in COMMIT_LINE.finditer(text))
        self._note_error(text)
        _extend_tail(self.tail, text, TAIL_LINES)
        events: list[Step | CommitReported] = []
        pos = 0
        for start, event in sorted(found, key=lambda item: item[0]):
            if isinstance(event, Step):
                _extend_tail(self._since_step, text[pos:start], STEP_LINES)
                event = replace(event, lines_before=tuple(self._since_step))
                self._since_step.clear()
                end = text.find("\n", start)
                pos = len(text) if end < 0 else end + 1
            events.append(event)
        _extend_tail(self._since_step, text[pos:], STEP_LINES)
        return events

    def _note_error(self, text: str) -> None:
        last = None
        for last in ERROR_WORD.finditer(text):  # noqa: B007 - only the last match matters
            pass
        if last is not None:
            start = text.rfind("\n", 0, last.start()) + 1
            end = text.find("\n", last.end())
            self.error_line = _clip(text[start : end if end >= 0 else len(text)])


def _extend_tail(tail: deque[str], text: str, keep: int) -> None:
    if text:
        tail.extend(_clip(line) for line in text.rstrip("\n").rsplit("\n", keep)[-keep:])


def _clip(line: str) -> str:
    line = line.rstrip("\r")
    return line if len(line) <= MAX_TAIL_LINE else line[: MAX_TAIL_LINE - 1] + "…"


def _step_from(match: re.Match) -> Step | None:
    groups = match.groupdict()
    try:
        number = int(groups["n"])
        total = int(groups["m"]) if groups.get("m") else None
    except (TypeError, ValueError):
        return None
    if number < 1 or (total is not None and (total < 1 or number > total)):
        return None
    title = (groups.get("title") or "").strip()[:200]
    return Step(number, total, title)


def estimate_seconds(durations: list[int]) -> float | None:
    """Expected duration from earlier successful deploys (the median resists one slow outlier)."""
    usable = [d for d in durations if d and d > 0]
    return float(statistics.median(usable)) if usable else None
