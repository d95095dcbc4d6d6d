"""Where secret values come from, and which variables are the bot's own secrets.

Every secret may be given as a variable (`NAME`) or as a file holding it (`NAME_FILE`, read once at
start-up, a trailing newline stripped); a secret value inside the TOML may be written `env:NAME` or
`file:/path`. Every value found joins the masking set (`Config.secret_values`), so one shorter than
`MIN_SECRET_LENGTH` is refused: masking it would blank out ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from bot.config.model import DEFAULT_SLACK_API_URL, ConfigError, Secrets

MIN_SECRET_LENGTH = 6
SECRET_PREFIXES = ("SLACK_", "DEPLOYBOT_")
SECRET_NAMES = frozenset({"DATABASE_URL", "DATABASE_URL_FILE", "TEST_DATABASE_URL", "PGPASSWORD"})
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_bot_secret(name: str) -> bool:
    """Whether the variable `name` is one of the bot's secrets (SLACK_*, DEPLOYBOT_*, database)."""
    return name.startswith(SECRET_PREFIXES) or name in SECRET_NAMES


def read_file_secret(path: str | Path, what: str) -> str:
    """The secret held in the file at `path`; `what` names it in the error."""
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{what}: cannot read {path}: {reason}") from None
    if not value:
        raise ConfigError(f"{what}: {path} is empty")
    return value


def read_secret(environ: Mapping[str, str], name: str) -> str:
    """The value of `name` from the variable itself or the file `NAME_FILE` names; "" when neither
    is set. Both at once is an error: which one wins would be a guess."""
    value, path = environ.get(name, ""), environ.get(f"{name}_FILE", "")
    if value and path:
        raise ConfigError(f"{name} and {name}_FILE are both set: keep one")
    if path:
        value = read_file_secret(path, f"{name}_FILE")
    check_length(name, value)
    return value


def check_length(what: str, value: str) -> None:
    if value and len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{what}: secret values must be at least {MIN_SECRET_LENGTH} characters "
            "(every one is masked in logs and messages)"
        )


def resolve_secret(value: str, environ: Mapping[str, str], *, key: str, base: Path | None = None) -> str:
    """A secret field of the TOML: `env:NAME` (the variable, or `NAME_FILE`), `file:/path` (relative
    paths from `base`, the config file's folder), or the value itself. `key` names the field."""
    if value.startswith("env:"):
        return _required(environ, value[len("env:") :], key)
    if value.startswith("file:"):
        path = Path(value[len("file:") :])
        if base is not None and not path.is_absolute():
            path = base / path
        resolved = read_file_secret(path, key)
    else:
        resolved = value
    check_length(key, resolved)
    return resolved


def parse_api_tokens(raw: str) -> dict[str, str]:
    """`name:token` pairs, comma separated, into token -> name."""
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, token = item.partition(":")
        if not sep or not name.strip() or len(token.strip()) < 8:
            raise ConfigError(
                "DEPLOYBOT_API_TOKENS: expected name:token pairs separated by commas, "
                "tokens at least 8 characters"
            )
        tokens[token.strip()] = name.strip()
    return tokens


def bot_secrets(environ: Mapping[str, str]) -> Secrets:
    """The bot's own secrets, each from its variable or its `_FILE`."""
    return Secrets(
        slack_bot_token=read_secret(environ, "SLACK_BOT_TOKEN"),
        slack_app_token=read_secret(environ, "SLACK_APP_TOKEN"),
        slack_signing_secret=read_secret(environ, "SLACK_SIGNING_SECRET"),
        slack_api_url=environ.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
        api_tokens=parse_api_tokens(read_secret(environ, "DEPLOYBOT_API_TOKENS")),
        webhook_secret=read_secret(environ, "DEPLOYBOT_WEBHOOK_SECRET"),
    )


def script_secrets(names: Iterable[str], environ: Mapping[str, str], key: str) -> dict[str, str]:
    """An environment's `secrets`: each name's value, from the bot's environment or `NAME_FILE`.
    `key` is the TOML key they were listed under, for the errors."""
    values: dict[str, str] = {}
    for name in names:
        if VARIABLE_NAME.match(name) and is_bot_secret(name):
            raise ConfigError(f"{key}: {name} is one of the bot's own secrets; no script may get it")
        values[name] = _required(environ, name, key)
    return values


def _required(environ: Mapping[str, str], name: str, key: str) -> str:
    """The value of variable `name` (or the file `NAME_FILE` names); errors name `key`."""
    if not VARIABLE_NAME.match(name):
        raise ConfigError(f"{key}: '{name}' is not a variable name")
    try:
        value = read_secret(environ, name)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if not value:
        raise ConfigError(f"{key}: {name} is not set (neither {name} nor {name}_FILE)")
    return value
