"""Configuration: one TOML file plus secrets from the environment, loaded and checked once.

Every invalid value stops start-up with a `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` and `sqlite://` spellings and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


class ConfigError(Exception):
    pass


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expr: str) -> CronTrigger:
    """A CronTrigger for a standard crontab line, in UTC.

    APScheduler 3 numbers weekdays from Monday = 0 while crontab uses Sunday = 0 (and 7), so
    numeric weekdays are translated to names before they reach it.
    """
    fields = expr.split()
    if len(fields) == 5:
        items = []
        for item in fields[4].split(","):
            base, slash, step = item.partition("/")
            base = re.sub(r"\d+", lambda m: _WEEKDAYS[int(m.group()) % 7], base)
            items.append(base + slash + step)
        fields[4] = ",".join(items)
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Strict):
    locale: Literal["zh", "en"] = "zh"
    admins: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()
    database_url: str = "sqlite+aiosqlite:///deploybot.db"
    notify_channel: str = ""
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=60)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    cancel_grace_seconds: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _admins_required(self) -> BotSettings:
        if not self.admins and not self.admin_groups:
            raise ValueError("set at least one of admins or admin_groups: nobody could deploy")
        if self.stale_after_seconds <= self.heartbeat_seconds * 2:
            raise ValueError("stale_after_seconds must be more than twice heartbeat_seconds")
        return self


class Retention(_Strict):
    logs_days: int = Field(default=30, ge=1)
    records_days: int = Field(default=90, ge=1)
    cron: str = "0 3 * * *"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            cron_trigger(value)
        except ValueError as exc:
            raise ValueError(f"not a valid crontab expression: {exc}") from None
        return value


class Environment(_Strict):
    name: str = ""
    label: str = ""
    aliases: tuple[str, ...] = ()
    script: Path
    args: tuple[str, ...] = ()
    workdir: Path | None = None
    repo: str = ""
    default_branch: str = "main"
    timeout_minutes: float = Field(default=30.0, gt=0)
    step_pattern: str | None = None
    commit_url: str = ""

    @field_validator("step_pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "n" not in compiled.groupindex:
            raise ValueError("the pattern needs a named group (?P<n>...) for the step number")
        return value

    @field_validator("commit_url")
    @classmethod
    def _valid_commit_url(cls, value: str) -> str:
        if value and "{commit}" not in value:
            raise ValueError("must contain {commit}")
        return value

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_minutes * 60

    @property
    def cwd(self) -> Path:
        return self.workdir or self.script.parent


class _File(_Strict):
    bot: BotSettings
    retention: Retention = Retention()
    environments: dict[str, Environment]


@dataclass(frozen=True)
class Secrets:
    slack_bot_token: str = ""
    slack_app_token: str = ""
    slack_signing_secret: str = ""
    slack_api_url: str = DEFAULT_SLACK_API_URL
    api_tokens: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    bot: BotSettings
    retention: Retention
    environments: dict[str, Environment]
    secrets: Secrets
    path: Path | None = None
    _lookup: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def locale(self) -> str:
        return self.bot.locale

    @property
    def database_url(self) -> str:
        return self.bot.database_url

    def environment(self, name: str) -> Environment | None:
        """The environment called `name` or one of its aliases (case-insensitive)."""
        key = self._lookup.get(name.strip().lower())
        return self.environments[key] if key else None

    @property
    def default_environment(self) -> Environment:
        return self.environments.get("production") or next(iter(self.environments.values()))

    def secret_values(self) -> frozenset[str]:
        """Every secret value the bot knows, to be masked wherever output is stored or shown."""
        own = [
            self.secrets.slack_bot_token,
            self.secrets.slack_app_token,
            self.secrets.slack_signing_secret,
            *self.secrets.api_tokens.values(),
            make_url(self.database_url).password or "",
        ]
        return frozenset(value for value in own if value)


def _key_of(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value).resolve()


def _resolve_repo(base: Path, repo: str) -> str:
    if not repo or "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    path = Path(repo)
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_database(base: Path, url: str) -> str:
    url = normalize_url(url)
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def parse_api_tokens(raw: str) -> dict[str, str]:
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


def load_config(
    path: str | os.PathLike | None = None,
    environ: dict[str, str] | None = None,
    *,
    reserved_words: Collection[str] = (),
) -> Config:
    """Read and check the config file. `reserved_words` are the `/deploy` sub-commands (the
    grammar's), which no environment or alias may be named."""
    environ = dict(os.environ if environ is None else environ)
    chosen = Path(path or environ.get("DEPLOYBOT_CONFIG") or "deploybot.toml")
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    return parse_config(raw, chosen.resolve(), environ, reserved_words=reserved_words)


def parse_config(
    raw: dict, path: Path, environ: dict[str, str], *, reserved_words: Collection[str] = ()
) -> Config:
    base = path.parent
    if environ.get("DATABASE_URL"):
        raw = {**raw, "bot": {**raw.get("bot", {}), "database_url": environ["DATABASE_URL"]}}
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {_key_of(first['loc'])}: {first['msg']}") from None

    if not parsed.environments:
        raise ConfigError(f"{path}: environments: define at least one environment")

    environments: dict[str, Environment] = {}
    lookup: dict[str, str] = {}
    for name, env in parsed.environments.items():
        key = f"environments.{name}"
        if not ENV_NAME.match(name):
            raise ConfigError(f"{path}: {key}: names use lowercase letters, digits, '-' and '_'")
        if name in reserved_words:
            raise ConfigError(f"{path}: {key}: '{name}' is a /deploy sub-command")
        script = _resolve(base, env.script)
        if not script.is_file():
            raise ConfigError(f"{path}: {key}.script: no such file: {script}")
        if not os.access(script, os.X_OK):
            raise ConfigError(f"{path}: {key}.script: not executable: {script}")
        workdir = _resolve(base, env.workdir)
        if workdir is not None and not workdir.is_dir():
            raise ConfigError(f"{path}: {key}.workdir: no such directory: {workdir}")
        environments[name] = env.model_copy(
            update={
                "name": name,
                "script": script,
                "workdir": workdir,
                "repo": _resolve_repo(base, env.repo),
            }
        )
        lookup[name] = name
    for name, env in environments.items():
        for word in env.aliases:
            word = word.strip().lower()
            key = f"environments.{name}.aliases"
            if word in reserved_words:
                raise ConfigError(f"{path}: {key}: '{word}' is a /deploy sub-command")
            if lookup.get(word, name) != name:
                raise ConfigError(f"{path}: {key}: '{word}' already names {lookup[word]}")
            lookup[word] = name

    bot = parsed.bot.model_copy(update={"database_url": _resolve_database(base, parsed.bot.database_url)})
    secrets = Secrets(
        slack_bot_token=environ.get("SLACK_BOT_TOKEN", ""),
        slack_app_token=environ.get("SLACK_APP_TOKEN", ""),
        slack_signing_secret=environ.get("SLACK_SIGNING_SECRET", ""),
        slack_api_url=environ.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
        api_tokens=parse_api_tokens(environ.get("DEPLOYBOT_API_TOKENS", "")),
    )
    return Config(bot, parsed.retention, environments, secrets, path, lookup)
