"""Configuration: one TOML file plus secrets from the environment (or files), loaded and checked once.

Every invalid value stops start-up with a `ConfigError` naming the file and the key, or the variable.
The package, split by job (everything is imported from `bot.config`):
- `model`: the typed objects every part of the bot reads (`Config`, `Environment`, `RunAs`, ...);
- `secrets`: where secret values come from (`NAME` or `NAME_FILE`, `env:`/`file:` in the TOML) and
  which variables are the bot's own;
- `accounts`: the accounts scripts run under (`run_as`);
- `loading`: reading the file and checking it (`load_config`, `parse_config`).
"""

from bot.config.accounts import may_access, resolve_account
from bot.config.loading import ENV_NAME, load_config, parse_config
from bot.config.model import (
    DEFAULT_SLACK_API_URL,
    BotSettings,
    Config,
    ConfigError,
    Environment,
    Freeze,
    NotifySink,
    Retention,
    RunAs,
    Secrets,
    cron_trigger,
    normalize_url,
    step_regex,
)
from bot.config.secrets import (
    MIN_SECRET_LENGTH,
    is_bot_secret,
    parse_api_tokens,
    read_secret,
    resolve_secret,
)

__all__ = [
    "DEFAULT_SLACK_API_URL",
    "ENV_NAME",
    "MIN_SECRET_LENGTH",
    "BotSettings",
    "Config",
    "ConfigError",
    "Environment",
    "Freeze",
    "NotifySink",
    "Retention",
    "RunAs",
    "Secrets",
    "cron_trigger",
    "is_bot_secret",
    "load_config",
    "may_access",
    "normalize_url",
    "step_regex",
    "parse_api_tokens",
    "parse_config",
    "read_secret",
    "resolve_account",
    "resolve_secret",
]
