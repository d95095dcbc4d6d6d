"""Script output shown in Slack: the newest log lines as code blocks that each fit a section, every
line stripped of terminal colours and control characters, cut to a readable length and escaped,
so no line can close its code block or break the layout. The whole log stays in the log file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.i18n import t
from bot.slack.blocks.elements import MAX_SECTION
from bot.slack.blocks.mrkdwn import CONTROL, clip, escape

MAX_LOG_LINE = 300  # characters of one log line shown; the whole line is in the log file
CODE_FENCE = "```\n{}\n```"
FENCE_COST = len(CODE_FENCE.format(""))
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def log_sections(
    lines: Sequence[str], max_sections: int, locale: str, *, note: bool = True
) -> tuple[list[str], int]:
    """The newest `lines` as up to `max_sections` code blocks that each fit a section, and how
    many older lines did not fit. With `note`, the first block says how many were left out."""
    budget = MAX_SECTION - FENCE_COST - (120 if note else 0)
    chunks: list[list[str]] = [[]]
    size = 0
    for raw in reversed(lines):
        line = code_line(raw)
        if size + len(line) + 1 > budget and chunks[-1]:
            if len(chunks) == max_sections:
                break
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    kept = sum(len(chunk) for chunk in chunks)
    omitted = len(lines) - kept
    if not any(line.strip() for chunk in chunks for line in chunk):
        return [], omitted
    texts = [CODE_FENCE.format("\n".join(reversed(chunk))) for chunk in reversed(chunks)]
    if note and omitted:
        texts[0] = f"_{t(locale, 'ui.log.omitted', count=omitted)}_\n{texts[0]}"
    return texts, omitted


def code_line(raw: str, limit: int = MAX_LOG_LINE) -> str:
    """One line of output made safe inside a code block: no terminal colours or control
    characters, no ``` that would close the block, mrkdwn-escaped, at most `limit` characters
    before escaping."""
    line = CONTROL.sub("", ANSI.sub("", clip(raw, limit * 2))).replace("\t", "    ")
    return escape(clip(line, limit).replace("```", "ˋˋˋ"))
