"""The typed configuration: the `Config` object every part of the bot reads, and its pieces.

`loading` builds it from the TOML file and the environment; nothing here reads either.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def step_regex(pattern: str) -> re.Pattern[bytes]:
    """A custom `step_pattern` as the output scanner runs it: against each line's UTF-8 bytes,
    `^`/`$` at line ends. Checked this way at start-up, so a pattern that only compiles as text
    (say `\\u6b65`) is refused then, not on every deploy after its row is written."""
    return re.compile(pattern.encode(), re.M)


class ConfigError(Exception):
    pass


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` and `sqlite://` spellings and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expr: str, timezone: str = "UTC") -> CronTrigger:
    """A CronTrigger for a standard crontab line, in `timezone` (UTC by default).

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
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


@dataclass(frozen=True)
class RunAs:
    """The account a deploy script runs under (`run_as = "user[:group]"`), looked up at start-up."""

    spec: str
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, as the account would get at login
    home: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Strict):
    locale: Literal["zh", "en"] = "zh"
    admins: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()
    database_url: str = "sqlite+aiosqlite:///deploybot.db"
    notify_channel: str = ""
    heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)  # how often a lease is renewed
    # How long a deploy stays its process's without a renewal, by the database's clock.
    lease_seconds: float = Field(default=10.0, gt=0)
    reaper_interval_seconds: float = Field(default=2.0, gt=0)
    cancel_grace_seconds: float = Field(default=10.0, ge=0)
    drain_timeout_minutes: float = Field(default=30.0, ge=0)  # SIGTERM: running deploys get this long
    # may --force past a freeze or a branch rule, unlock others' locks, cancel anyone's deploy;
    # empty: every admin
    managers: tuple[str, ...] = ()
    timezone: str = "UTC"  # what `at 22:00` means, and how times are shown (an IANA zone name)
    misfire_grace_minutes: float = Field(default=10.0, ge=0)  # a scheduled deploy may start this late
    metrics_token: str = ""  # GET /metrics asks for it when set ("env:NAME" or "file:/path" allowed)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not a time zone: {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    run_as: str = ""  # "user[:group]" scripts run under; empty: the bot's own account

    @model_validator(mode="before")
    @classmethod
    def _stale_after_is_lease(cls, raw: object) -> object:
        # `stale_after_seconds` was the lease before leases were judged by the database's clock.
        if not isinstance(raw, dict) or "stale_after_seconds" not in raw:
            return raw
        if "lease_seconds" in raw:
            raise ValueError("stale_after_seconds is the old name of lease_seconds: set only lease_seconds")
        log.warning("config: [bot] stale_after_seconds is deprecated: call it lease_seconds")
        raw = dict(raw)
        raw["lease_seconds"] = raw.pop("stale_after_seconds")
        return raw

    @model_validator(mode="after")
    def _admins_required(self) -> BotSettings:
        if not self.admins and not self.admin_groups:
            raise ValueError("set at least one of admins or admin_groups: nobody could deploy")
        if self.lease_seconds <= self.heartbeat_seconds * 2:
            # one renewal may fail (a blip) and the next still land before the lease ends
            raise ValueError("lease_seconds must be more than twice heartbeat_seconds")
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
    secrets: tuple[str, ...] = ()  # variables passed to this script only (from NAME or NAME_FILE)
    auto_deploy_branch: str = ""  # git webhooks: a push to this branch of `repo_name` deploys it
    repo_name: str = ""  # "owner/name" as the forge calls the repository
    run_as: str | None = None  # None: [bot] run_as; "": the bot's own account
    # governance (DESIGN §9); an empty list means its default (every admin; any branch)
    deployers: tuple[str, ...] = ()  # user ids (or api:<token name>) who may deploy, roll back, lock
    allowed_branches: tuple[str, ...] = ()  # glob patterns, e.g. "main", "release/*", "v*"
    queue_limit: int = Field(default=5, ge=1, le=100)
    approval: Literal["none", "required"] = "none"
    approvers: tuple[str, ...] = ()
    approval_timeout_minutes: float = Field(default=30.0, gt=0)
    approval_for_rollback: bool = True
    compare_url: str = ""  # "https://…/compare/{from}...{to}"
    gate_timeout_minutes: float = Field(default=60.0, gt=0)

    # Resolved at start-up by `loading`; never printed (not in repr), never read from the file.
    _secret_env: dict[str, str] = PrivateAttr(default_factory=dict)
    _withheld: frozenset[str] = PrivateAttr(default=frozenset())
    _account: RunAs | None = PrivateAttr(default=None)

    @field_validator("step_pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = step_regex(value)  # as the scanner will run it: on bytes
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

    @field_validator("compare_url")
    @classmethod
    def _valid_compare_url(cls, value: str) -> str:
        if value and ("{from}" not in value or "{to}" not in value):
            raise ValueError("must contain {from} and {to}")
        return value

    @field_validator("allowed_branches")
    @classmethod
    def _valid_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("a branch pattern cannot be empty")
        return value

    def resolved(
        self, secret_env: dict[str, str], withheld: frozenset[str], account: RunAs | None
    ) -> Environment:
        """A copy carrying what start-up resolved: secret values, withheld names, the account."""
        copy = self.model_copy()
        copy._secret_env = dict(secret_env)
        copy._withheld = withheld
        copy._account = account
        return copy

    @property
    def secret_env(self) -> dict[str, str]:
        """This environment's `secrets`, name to value, for its script's environment only."""
        return dict(self._secret_env)

    @property
    def withheld(self) -> frozenset[str]:
        """Variables no script gets from the bot's environment: every environment's `secrets`
        (and their `_FILE`), so each reaches only the script that names it."""
        return self._withheld

    @property
    def account(self) -> RunAs | None:
        """The account the script runs under; None: the bot's own."""
        return self._account

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_minutes * 60

    @property
    def cwd(self) -> Path:
        return self.workdir or self.script.parent


NOTIFY_EVENTS = ("started", "success", "failed", "cancelled", "awaiting_approval")


class Freeze(_Strict):
    """A `[[freeze]]` window: triggers of its environments (all when empty) are refused meanwhile.
    Either `start`/`end` (ISO 8601; without an offset, in `[bot] timezone`) or `cron` + `hours` (a
    window that opens at each cron time, in `[bot] timezone`, and lasts `hours`)."""

    environments: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    hours: float | None = Field(default=None, gt=0, le=24 * 7)
    reason: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Freeze:
        dated = self.start is not None or self.end is not None
        repeating = self.cron is not None or self.hours is not None
        if dated == repeating:
            raise ValueError("give either start and end, or cron and hours")
        if dated and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("needs start and end, end after start")
        if repeating:
            if self.cron is None or self.hours is None:
                raise ValueError("needs both cron and hours")
            try:
                cron_trigger(self.cron)
            except ValueError as exc:
                raise ValueError(f"not a valid crontab expression: {exc}") from None
        return self


class NotifySink(_Strict):
    """A `[[notify]]` sink: deploy events sent beyond Slack (DESIGN §10). `url`, `secret` and
    `smtp_password` may be written `env:NAME` or `file:/path`; they join the masking set."""

    kind: Literal["webhook", "wecom", "dingtalk", "email"]
    url: str = ""
    secret: str = ""
    to: tuple[str, ...] = ()
    sender: str = ""  # email: the From address (default: smtp_user)
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = ""
    starttls: bool = True
    events: tuple[Literal[NOTIFY_EVENTS], ...] = ("success", "failed")  # type: ignore[valid-type]
    environments: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> NotifySink:
        if self.kind == "email":
            if not self.to or not self.smtp_host:
                raise ValueError("an email sink needs to and smtp_host")
        elif not self.url:
            raise ValueError(f"a {self.kind} sink needs url")
        elif not self.url.startswith(("https://", "http://", "env:", "file:")):
            raise ValueError("url must be http(s)")
        return self


class ConfigFile(_Strict):
    bot: BotSettings
    retention: Retention = Retention()
    environments: dict[str, Environment]
    freeze: tuple[Freeze, ...] = ()
    notify: tuple[NotifySink, ...] = ()


@dataclass(frozen=True)
class Secrets:
    slack_bot_token: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    api_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    webhook_secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Config:
    bot: BotSettings
    retention: Retention
    environments: dict[str, Environment]
    secrets: Secrets
    path: Path | None = None
    _lookup: dict[str, str] = field(default_factory=dict, repr=False)
    # the environments whose scripts this process runs (`worker --environments`, `serve
    # --no-runner`); None: every one
    runs: frozenset[str] | None = None
    freezes: tuple[Freeze, ...] = ()  # [[freeze]] windows (bot/config/automation.py)
    notify: tuple[NotifySink, ...] = ()  # [[notify]] sinks, their secrets resolved

    @property
    def runner_environments(self) -> frozenset[str]:
        return frozenset(self.environments) if self.runs is None else self.runs

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
            self.secrets.webhook_secret,
            *self.secrets.api_tokens,  # keyed by token, valued by the caller's name
            make_url(self.database_url).password or "",
            self.bot.metrics_token,
            *(value for sink in self.notify for value in (sink.url, sink.secret, sink.smtp_password)),
            *(value for env in self.environments.values() for value in env.secret_env.values()),
        ]
        return frozenset(value for value in own if value)
