"""The bot's secrets, and the environment of the programs it starts (deploy scripts, git) without them.

The bot's own environment holds its Slack tokens, its database URL and its API tokens. No program
it starts needs them, and a deploy script or a git hook must not be able to read them, so every
subprocess of the engine gets its environment through `without_secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping

SECRET_PREFIXES = ("SLACK_", "DEPLOYBOT_")
SECRET_NAMES = frozenset({"DATABASE_URL", "TEST_DATABASE_URL", "PGPASSWORD"})


def is_secret(name: str) -> bool:
    """Whether the variable `name` is one of the bot's secrets (SLACK_*, DEPLOYBOT_*, database)."""
    return name.startswith(SECRET_PREFIXES) or name in SECRET_NAMES


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` without the bot's secrets."""
    return {name: value for name, value in env.items() if not is_secret(name)}
