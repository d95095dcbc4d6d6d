"""Reading a deploy script's output: step markers, reported commits, gates, the tail and the error line.

The scanner sees the output once, in the chunks the pipe delivers. It keeps only what it needs (the
start of an unfinished line and the last lines), so a 200 MB log or a 1 MB line costs no memory,
and it matches over whole chunks of bytes, not line by line: one regex pass finds every line that
starts like a marker (a newline, then `[`, `==>`, `Step`, `DEPLOY_COMMIT=` or `::gate::`), and only those are
matched in full. The chunk is scanned where it lies, never copied whole, so scanning keeps up with
a script that prints hundreds of megabytes a second. Only what is shown (titles, tail lines, the
error line) is ever decoded.
"""

from __future__ import annotations

import re
import statistics
from collections import deque
from dataclasses import dataclass, field, replace

from bot.config import step_regex

MAX_PARTIAL = 4096  # enough of an unfinished line to match a marker at its start
MAX_TAIL_LINE = 500
TAIL_LINES = 60
STEP_LINES = 15  # lines of the previous step quoted under each new step

# A line that may be a marker is found by its start, all kinds in one pass (four bytes.find passes
# cost four times as much, and a two-byte needle such as "\n[" is slow for bytes.find), then
# matched in full there. Every scanned region starts at the newline before its first line.
_COUNT = rb"(?P<n>\d{1,4})/(?P<m>\d{1,4})"
_TITLE = rb"[ \t]*(?P<title>[^\r\n]*)"
DEFAULT_STEP_PATTERNS = (
    (b"\n[", re.compile(rb"\n\[" + _COUNT + rb"\]" + _TITLE)),
    (b"\n==>", re.compile(rb"\n==>[ \t]*\[" + _COUNT + rb"\]" + _TITLE)),
    (b"\nStep", re.compile(rb"\nStep[ \t]+" + _COUNT + rb":?" + _TITLE)),
)
COMMIT_LINE = (b"\nDEPLOY_COMMIT=", re.compile(rb"\nDEPLOY_COMMIT=([0-9a-f]{40})[ \t\r]*(?=\n)"))
# `::gate:: <question>`: the script waits for an answer on $DEPLOY_GATE_FD (DESIGN §9 Gates)
GATE_LINE = (b"\n::gate::", re.compile(rb"\n::gate::[ \t]*([^\r\n]*?)[ \t\r]*(?=\n)"))
MAX_QUESTION = 500
_MARKER_START = re.compile(rb"\n(?:\[|==>|Step|DEPLOY_COMMIT=|::gate::)")
_BY_START = {needle: pattern for needle, pattern in (*DEFAULT_STEP_PATTERNS, COMMIT_LINE, GATE_LINE)}
ERROR_WORDS = (b"error", b"fatal", b"failed", b"failure", b"exception", b"traceback", b"panic")
ERROR_WINDOW = 256 * 1024  # the error line is looked for in the last this-many bytes of output


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


@dataclass(frozen=True)
class GateReached:
    """A `::gate:: <question>` line: the script now waits for `continue` or `abort`."""

    question: str


Marker = Step | CommitReported | GateReached


class OutputScanner:
    def __init__(self, step_pattern: str | None = None) -> None:
        self.custom = step_regex(step_pattern) if step_pattern else None
        self._recent = bytearray()  # the last ERROR_WINDOW bytes, searched for an error when asked
        # raw lines, decoded only when shown
        self._tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        self._since_step: deque[bytes] = deque(maxlen=STEP_LINES)
        self._partial = bytearray()
        self._partial_full = False

    def feed(self, data: bytes) -> list[Marker]:
        cut = data.rfind(b"\n")
        if cut < 0:
            self._keep_partial(data)
            return []
        first = data.find(b"\n")
        # The line the previous chunk left unfinished is joined up (a small copy); the rest of
        # the chunk's whole lines are scanned in place, from the newline that precedes them.
        head = b"\n" + bytes(self._partial) + data[: first + 1]
        self._partial.clear()
        self._partial_full = False
        self._keep_partial(data[cut + 1 :])
        events = self._scan(head, 0, len(head))
        if cut > first:
            events += self._scan(data, first, cut + 1)
        return events

    def finish(self) -> list[Marker]:
        """Scan a last line that had no newline (a gate must end with one: nobody reads its answer)."""
        if not self._partial:
            return []
        rest = b"\n" + bytes(self._partial) + b"\n"
        self._partial.clear()
        return [event for event in self._scan(rest, 0, len(rest)) if not isinstance(event, GateReached)]

    @property
    def tail(self) -> list[str]:
        """The last lines printed, clipped for display."""
        return [_clip(line) for line in self._tail]

    @property
    def last_error(self) -> str:
        """The last line that looks like an error, else the last non-empty line."""
        if error := self.error_line:
            return error
        return next((line for line in reversed(self.tail) if line.strip()), "")

    def _keep_partial(self, data: bytes) -> None:
        if self._partial_full or not data:
            return
        room = MAX_PARTIAL - len(self._partial)
        self._partial += data[:room]
        self._partial_full = len(data) >= room

    def _scan(self, text: bytes, start: int, end: int) -> list[Marker]:
        """Scan the whole lines text[start + 1 : end]; text[start] is the newline before them."""
        found: list[tuple[int, Marker]] = []
        for at, event in self._markers(text, start, end):
            found.append((at, event))
        self._remember(text, start + 1, end)
        _extend_tail(self._tail, text, TAIL_LINES, start, end)
        events: list[Marker] = []
        pos = start
        for at, event in sorted(found, key=lambda item: item[0]):
            if isinstance(event, Step):
                _extend_tail(self._since_step, text, STEP_LINES, pos, at)
                event = replace(event, lines_before=tuple(_clip(line) for line in self._since_step))
                self._since_step.clear()
                pos = text.find(b"\n", at + 1)
            events.append(event)
        _extend_tail(self._since_step, text, STEP_LINES, pos, end)
        return events

    def _markers(self, text: bytes, start: int, end: int):
        if self.custom is not None:
            for match in self.custom.finditer(text, start, end):
                if step := _step_from(match):
                    yield match.start(), step
            for at, match in _matches(text, *COMMIT_LINE, start, end):
                yield at, CommitReported(match.group(1).decode())
            for at, match in _matches(text, *GATE_LINE, start, end):
                yield at, _gate_from(match)
            return
        for candidate in _MARKER_START.finditer(text, start, end):
            at = candidate.start()
            pattern = _BY_START[candidate.group()]
            if (match := pattern.match(text, at, end)) is None:
                continue
            if pattern is COMMIT_LINE[1]:
                yield at, CommitReported(match.group(1).decode())
            elif pattern is GATE_LINE[1]:
                yield at, _gate_from(match)
            elif step := _step_from(match):
                yield at, step

    def _remember(self, text: bytes, start: int, end: int) -> None:
        self._recent += text[max(start, end - ERROR_WINDOW) : end]
        if len(self._recent) > 2 * ERROR_WINDOW:
            del self._recent[:-ERROR_WINDOW]

    @property
    def error_line(self) -> str | None:
        """The last line with an error word (whole word, any case) in the recent output."""
        text = b"\n" + bytes(self._recent[-ERROR_WINDOW:]) + b"\n"
        lowered = text.lower()
        best = -1
        for word in ERROR_WORDS:
            end = len(lowered)
            while (at := lowered.rfind(word, 0, end)) > best:
                after = at + len(word)
                if not _is_word_byte(lowered[at - 1]) and not _is_word_byte(lowered[after]):
                    best = at
                    break
                end = at
        if best < 0:
            return None
        start = text.rfind(b"\n", 0, best) + 1
        return _clip(text[start : text.find(b"\n", best)])


def _matches(text: bytes, needle: bytes, pattern: re.Pattern, start: int, end: int):
    at = text.find(needle, start, end)
    while at >= 0:
        if match := pattern.match(text, at, end):
            yield at, match
        at = text.find(needle, at + 1, end)


def _is_word_byte(byte: int) -> bool:
    return byte == 95 or 48 <= byte <= 57 or 97 <= byte <= 122  # _ 0-9 a-z (text is lowered)


def _extend_tail(tail: deque[bytes], text: bytes, keep: int, start: int, end: int) -> None:
    """Add the last `keep` lines of text[start:end] (newlines at its ends stripped) to `tail`,
    copying only those lines, however long the text."""
    while end > start and text[end - 1] == 10:
        end -= 1
    while start < end and text[start] == 10:
        start += 1
    if start >= end:
        return
    cut = end
    for _ in range(keep):
        cut = text.rfind(b"\n", start, cut)
        if cut < 0:
            cut = start - 1
            break
    tail.extend(text[cut + 1 : end].split(b"\n"))


def _clip(raw: bytes) -> str:
    line = raw[: MAX_TAIL_LINE * 4].decode("utf-8", errors="replace").rstrip("\r")
    return line if len(line) <= MAX_TAIL_LINE else line[: MAX_TAIL_LINE - 1] + "…"


def _gate_from(match: re.Match) -> GateReached:
    return GateReached(match.group(1).decode("utf-8", errors="replace").strip()[:MAX_QUESTION])


def _step_from(match: re.Match) -> Step | None:
    groups = match.groupdict()
    try:
        number = int(groups["n"])
        total = int(groups["m"]) if groups.get("m") else None
    except (TypeError, ValueError):
        return None
    if number < 1 or (total is not None and (total < 1 or number > total)):
        return None
    title = (groups.get("title") or b"").decode("utf-8", errors="replace").strip()[:200]
    return Step(number, total, title)


def estimate_seconds(durations: list[int]) -> float | None:
    """Expected duration from earlier successful deploys (the median resists one slow outlier)."""
    usable = [d for d in durations if d and d > 0]
    return float(statistics.median(usable)) if usable else None
