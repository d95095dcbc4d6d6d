"""Secrets masked out of a deploy script's output before anything stores or shows it (DESIGN §11).

`SecretMasker` sees the output once, in the pieces the pipe delivers, and replaces every known
secret value (6 characters or more) and every well-known token shape (Slack, AWS access key ids,
GitHub, GitLab) with `***`, also when a read splits one. To see a split one whole, it holds back the
end of a read that may be the start of one: at most HOLD_LIMIT bytes, until the next read or for
HOLD_SECONDS (the caller asks `due()` and then calls `release()`). A PEM private key block is not
held but dropped, from its BEGIN line to its END line (at most PEM_LIMIT bytes), so a key printed
slowly never shows either.

Output holding no secret comes back as the very bytes object it came in as. Speed comes from
searching each needle (a secret, a token's fixed start) by one byte of it that is rare in the recent
output, with `bytes.find` of a single byte (memchr, ~10 GB/s), and matching in full only there; a
needle made only of common bytes is searched whole.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MASK = b"***"
MIN_SECRET = 6  # shorter values are refused at start-up; here they are ignored
HOLD_LIMIT = 4096
HOLD_SECONDS = 0.1
PEM_LIMIT = 16 * 1024
SAMPLE = 64 * 1024  # what the rare bytes are chosen on
RESAMPLE_EVERY = 32 * 1024 * 1024
# Past this density an anchor byte's hits, each checked in Python (~0.3 µs), cost more than one
# whole find of the needle (~0.6 ns a byte).
DENSE = 1 / 512
# Common in logs, so a worse anchor when a sample cannot tell (a tie, or a short sample).
COMMON = frozenset(b" \n\t.,:;/=-_0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class TokenShape:
    needle: bytes  # a fixed start, found fast
    heads: tuple[bytes, ...]  # every literal start, to see one cut short at the end of a read
    pattern: re.Pattern[bytes]  # a head, then the body (group 1): matched where the needle is
    shortest: int  # body bytes it takes to be a token
    longest: int  # body bytes after which it is whole, whatever follows


def _shape(
    heads: tuple[bytes, ...], body: bytes, shortest: int, longest: int, needle: bytes = b""
) -> TokenShape:
    starts = b"|".join(re.escape(head) for head in heads)
    pattern = re.compile(b"(?:%s)(%s{0,%d})" % (starts, body, longest))
    return TokenShape(needle or heads[0], heads, pattern, shortest, longest)


TOKEN_SHAPES = (
    _shape(tuple(b"xox%c-" % c for c in b"abposr"), rb"[0-9A-Za-z-]", 10, 1024, needle=b"xox"),
    _shape((b"xapp-",), rb"[0-9A-Za-z-]", 10, 1024),
    _shape((b"AKIA",), rb"[0-9A-Z]", 16, 16),
    _shape((b"ASIA",), rb"[0-9A-Z]", 16, 16),
    _shape(tuple(b"gh%c_" % c for c in b"pousr"), rb"[0-9A-Za-z]", 30, 255, needle=b"gh"),
    _shape((b"github_pat_",), rb"[0-9A-Za-z_]", 22, 255),
    _shape((b"glpat-",), rb"[0-9A-Za-z_.-]", 20, 255),
)
PEM_NEEDLE = b"-----BEGIN"
PEM_HEADER = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
PEM_PARTIAL = re.compile(rb"-----BEGIN[A-Z0-9 -]{0,60}\Z")  # may still become a header
PEM_FOOTER = re.compile(rb"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
FOOTER_CONTEXT = 96  # longer than any footer: one split across reads is still seen whole

_SECRET = "secret"
_PEM = "pem"
Kind = TokenShape | str


class SecretMasker:
    """Masks one stream. `feed` each read, `release` when `due` says so, `flush` at its end."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s.encode() for s in secrets if len(s) >= MIN_SECRET})
        self._needles: list[tuple[bytes, Kind]] = [(v, _SECRET) for v in values]
        self._needles += [(shape.needle, shape) for shape in TOKEN_SHAPES] + [(PEM_NEEDLE, _PEM)]
        # Everything a match can start with, to hold back a read's end that may be one's start.
        heads = [head for shape in TOKEN_SHAPES for head in shape.heads]
        self._starts = (*values, *heads, PEM_NEEDLE)
        self._anchored: list[tuple[bytes, tuple[tuple[bytes, int, Kind], ...]]] = []
        self._whole: list[tuple[bytes, Kind]] = []
        self._seen = 0
        self._resample_at = 0
        # _raw: the bytes held back, after (when a timed release let them go while a match may still
        # continue them) the released ones; its first _out bytes are out already.
        self._raw = b""
        self._out = 0
        self._since: float | None = None  # when the oldest byte held back was first held
        self._pem_left = 0  # inside a PEM block: how many more bytes it may drop
        self._pem_tail = b""  # the last bytes dropped, to see an END line split across reads

    def feed(self, data: bytes, now: float | None = None) -> bytes:
        """The masked output that can be let out now (possibly empty; `data` itself when clean)."""
        if not data:
            return b""
        if self._seen >= self._resample_at:
            self._plan(data[:SAMPLE])
        self._seen += len(data)
        return self._run(data, time.monotonic() if now is None else now, final=False)

    def due(self, now: float | None = None) -> float | None:
        """Seconds until what is held back must be released (0: now); None when nothing is held."""
        if self._since is None:
            return None
        return max(0.0, self._since + HOLD_SECONDS - (time.monotonic() if now is None else now))

    def release(self) -> bytes:
        """Let out what is held back: whole matches masked, a possible start of one as it is. What
        a later read adds to a match begun here is still masked."""
        return self._run(b"", 0.0, final=True)

    def flush(self) -> bytes:
        """The end of the stream: everything that is left, masked."""
        out = self._run(b"", 0.0, final=True)
        self._raw, self._out, self._pem_left, self._pem_tail = b"", 0, 0, b""
        return out

    # --- one read ------------------------------------------------------------------------------

    def _run(self, data: bytes, now: float, *, final: bool) -> bytes:
        pieces = []
        while True:
            if self._pem_left:
                if not data:
                    break
                data = self._skip_pem(data)
                continue
            piece, data = self._scan(data, now, final)
            pieces.append(piece)
            if not data:
                break
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def _scan(self, data: bytes, now: float, final: bool) -> tuple[bytes, bytes]:
        """Mask what can be decided of the held bytes and `data`. Returns the output and, when a
        PEM header was found, the bytes after it (for `_skip_pem`)."""
        buf = self._raw + data if self._raw else data
        base, end = self._out, len(buf)
        spans, hold, pem = self._matches(buf)
        hold = min(hold, self._partial_start(buf))
        if pem is not None and (final or pem[0] < hold):
            spans.append(pem)
            out = _masked(buf, base, pem[1], _merged(spans))
            self._raw, self._out, self._since = b"", 0, None
            self._pem_left, self._pem_tail = PEM_LIMIT - (pem[1] - pem[0]), b""
            return out, buf[pem[1] :]
        spans = _merged(spans)
        cut = end if final else _before_spans(hold, spans)
        if end - max(cut, base) > HOLD_LIMIT:  # held too long a stretch: let it go
            final, cut = True, end
        stop = max(cut, base)
        out = _masked(buf, base, stop, spans)
        held_before = len(self._raw)
        if final:
            # Keep what a match may still continue (as out already), to mask the rest of it.
            self._raw = buf[hold:] if end - hold <= HOLD_LIMIT else b""
            self._out, self._since = len(self._raw), None
        else:
            self._raw, self._out = buf[cut:], stop - cut
            if stop == end:
                self._since = None
            elif self._since is None or stop >= held_before:
                self._since = now  # the bytes held now were not held before
        return out, b""

    def _matches(self, buf: bytes) -> tuple[list[tuple[int, int]], int, tuple[int, int] | None]:
        """Whole matches in `buf`, where the first match that may go on past its end starts (else
        its length), and the first whole PEM header."""
        end = len(buf)
        spans: list[tuple[int, int]] = []
        hold = end
        pem = None
        for start, needle, kind in self._hits(buf):
            if kind is _SECRET:
                spans.append((start, start + len(needle)))
            elif kind is _PEM:
                if header := PEM_HEADER.match(buf, start):
                    if pem is None or start < pem[0]:
                        pem = header.span()
                elif PEM_PARTIAL.match(buf, start):
                    hold = min(hold, start)
            elif token := kind.pattern.match(buf, start):
                run = token.end(1) - token.start(1)
                if run >= kind.shortest:
                    spans.append(token.span())
                if token.end() == end and run < kind.longest:
                    hold = min(hold, start)
        return spans, hold, pem

    def _hits(self, buf: bytes) -> Iterator[tuple[int, bytes, Kind]]:
        """Where each needle is in `buf`."""
        find = buf.find
        dense = len(buf) * DENSE + 16
        for byte, needles in self._anchored:
            at, count = find(byte), 0
            while at >= 0:
                for needle, offset, kind in needles:
                    start = at - offset
                    if start >= 0 and buf.startswith(needle, start):
                        yield start, needle, kind
                at, count = find(byte, at + 1), count + 1
            if count > dense:  # the output has changed: choose the anchors again on the next read
                self._resample_at = self._seen
        for needle, kind in self._whole:
            at = find(needle)
            while at >= 0:
                yield at, needle, kind
                at = find(needle, at + 1)

    def _partial_start(self, buf: bytes) -> int:
        """Where the earliest end of `buf` that is the beginning of a secret or a token starts."""
        end = best = len(buf)
        for start in self._starts:
            first = start[:1]
            at = buf.find(first, max(0, end - len(start) + 1, end - HOLD_LIMIT), best)
            while at >= 0:
                if start.startswith(buf[at:]):
                    best = at
                    break
                at = buf.find(first, at + 1, best)
        return best

    def _skip_pem(self, data: bytes) -> bytes:
        """Drop the inside of a PEM block: up to and with its END line, or PEM_LIMIT bytes in all.
        Returns what follows it."""
        tail = self._pem_tail
        seam = PEM_FOOTER.search(tail + data[:FOOTER_CONTEXT])
        if seam and seam.end() > len(tail):
            after = seam.end() - len(tail)
        else:
            after, limit = -1, min(len(data), self._pem_left)
            at = data.find(b"-----END", 0, limit)
            while at >= 0:
                if footer := PEM_FOOTER.match(data, at):
                    after = footer.end()
                    break
                at = data.find(b"-----END", at + 1, limit)
        if after >= 0:
            self._pem_left, self._pem_tail = 0, b""
            return data[after:]
        taken = min(len(data), self._pem_left)
        self._pem_left -= taken
        self._pem_tail = (tail + data[max(0, taken - FOOTER_CONTEXT) : taken])[-FOOTER_CONTEXT:]
        return data[taken:]

    # --- choosing anchors ----------------------------------------------------------------------

    def _plan(self, sample: bytes) -> None:
        """Choose each needle's anchor: its byte rarest in `sample` (common-looking bytes lose ties)."""
        candidates = {byte for needle, _ in self._needles for byte in needle}
        counts = {byte: sample.count(byte) for byte in candidates}
        anchored: dict[int, list[tuple[bytes, int, Kind]]] = {}
        self._whole = []
        for needle, kind in self._needles:
            offset = min(range(len(needle)), key=lambda i: (counts[needle[i]], needle[i] in COMMON))
            if counts[needle[offset]] > len(sample) * DENSE:
                self._whole.append((needle, kind))
            else:
                anchored.setdefault(needle[offset], []).append((needle, offset, kind))
        self._anchored = [(bytes([byte]), tuple(needles)) for byte, needles in anchored.items()]
        # A short sample says little: look again soon.
        self._resample_at = self._seen + (RESAMPLE_EVERY if len(sample) >= SAMPLE else SAMPLE)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret and token shape replaced, as a stream's output would be:
    for what users type (descriptions, reasons), before it is stored or shown anywhere."""
    masker = SecretMasker(secrets)
    data = text.encode()
    return (masker.feed(data) + masker.flush()).decode(errors="replace")


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping spans joined (touching ones stay apart: each gets its mask)."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _before_spans(cut: int, spans: list[tuple[int, int]]) -> int:
    """`cut`, moved back to the start of a whole match it falls inside (held back with it)."""
    for start, stop in spans:
        if start < cut < stop:
            return start
    return cut


def _masked(buf: bytes, start: int, stop: int, spans: list[tuple[int, int]]) -> bytes:
    """buf[start:stop] with each span in it replaced by MASK (spans clipped to the range)."""
    if not spans and start == 0 and stop == len(buf):
        return buf
    pieces = []
    pos = start
    for span_start, span_stop in spans:
        span_start, span_stop = max(span_start, start), min(span_stop, stop)
        if span_start >= span_stop:
            continue
        pieces += (buf[pos:span_start], MASK)
        pos = span_stop
    pieces.append(buf[pos:stop])
    return b"".join(pieces)
