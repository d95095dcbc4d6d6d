"""The bot's secrets kept from the programs it starts (deploy scripts, git).

The bot's own environment holds its Slack tokens, its database URL and its API tokens (or the paths
of files holding them). No program it starts needs them, and a deploy script or a git hook must not
be able to read them: every subprocess of the engine gets its environment through `without_secrets`,
and the bot marks itself non-dumpable (`mark_non_dumpable`), so that even a script running under
the bot's own account cannot read `/proc/<bot>/environ` or the bot's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Mapping

from bot.config import is_bot_secret

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def is_secret(name: str) -> bool:
    """Whether the variable `name` is one of the bot's secrets (SLACK_*, DEPLOYBOT_*, database)."""
    return is_bot_secret(name)


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` without the bot's secrets."""
    return {name: value for name, value in env.items() if not is_secret(name)}


def mark_non_dumpable() -> bool:
    """Make this process non-dumpable (Linux): its /proc files (environ, mem, ...) then belong to
    root and no process of the same account may ptrace it. Children are dumpable again after exec.
    Returns whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("could not mark the bot non-dumpable: errno %d", ctypes.get_errno())
        return False
    return True
