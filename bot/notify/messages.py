"""What a sink is told about a deploy event: pure builders, no I/O.

`notice_of` turns an engine event into a `Notice` (the event's name, the deploy's REST record, a
title and plain lines in the bot's locale), or None for events no sink hears. The payload builders
shape one notice for one kind of sink. Every string is masked here, once, with the bot's known
secrets: the deploy's fields come from masked output already, but a description is what a user typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from bot.config import Config
from bot.deploy.events import DeployAwaitingApproval, DeployFinished, DeployStarted
from bot.deploy.masking import SecretMasker
from bot.i18n import t
from storage.models import Deploy

# The fields of the REST record (handlers/schemas.py DeployRecord), in its order; a test keeps
# them equal, so a webhook receiver sees what GET /api/v1/deploy/{id} answers.
RECORD_FIELDS = (
    "id",
    "environment",
    "branch",
    "commit_hash",
    "status",
    "deployed_by",
    "description",
    "error_message",
    "started_at",
    "completed_at",
    "duration",
    "created_at",
    "updated_at",
    "rollback_of",
    "skip_build",
    "skip_migrations",
    "source",
    "step_current",
    "step_total",
    "step_title",
    "exit_code",
    "log_size",
    "logs_cleared_at",
    "cancel_requested_by",
    "cancelled_by",
    "forced_by",
    "scheduled_at",
    "approved_by",
    "force_reason",
)
FINAL_EVENTS = frozenset({"success", "failed", "cancelled"})


@dataclass(frozen=True)
class Notice:
    event: str  # started, success, failed, cancelled, awaiting_approval
    environment: str  # the environment's name, for the sinks' filters
    record: dict[str, Any]
    title: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


def event_name(event: object) -> str | None:
    """The [[notify]] `events` name of an engine event; None for the ones no sink hears."""
    if isinstance(event, DeployStarted):
        return "started"
    if isinstance(event, DeployAwaitingApproval):
        return "awaiting_approval"
    if isinstance(event, DeployFinished):
        status = event.deploy.state.value
        return status if status in FINAL_EVENTS else None
    return None


def deploy_record(deploy: Deploy) -> dict[str, Any]:
    """The deploy as the REST API shows it: timestamps ISO 8601 in UTC, the status its value."""
    return to_jsonable_python({name: getattr(deploy, name, None) for name in RECORD_FIELDS})


class TextMasker:
    """Masks whole strings with the bot's known secrets and token shapes (bot/deploy/masking.py)."""

    def __init__(self, secrets: frozenset[str] | set[str]) -> None:
        self._secrets = tuple(secrets)

    def __call__(self, text: str) -> str:
        masker = SecretMasker(self._secrets)
        data = text.encode()
        return (masker.feed(data, now=0.0) + masker.flush()).decode(errors="replace")

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: self(v) if isinstance(v, str) else v for k, v in record.items()}


def notice_of(event: object, config: Config, mask: TextMasker) -> Notice | None:
    name = event_name(event)
    if name is None:
        return None
    deploy: Deploy = event.deploy  # type: ignore[attr-defined]
    locale = config.locale
    env = config.environments.get(deploy.environment)
    title = t(
        locale,
        "notify.title",
        env=env.display if env else deploy.environment,
        deploy_id=deploy.id,
        event=t(locale, f"notify.event.{name}"),
    )
    lines = [
        t(locale, "notify.line.branch", branch=deploy.branch, commit=deploy.short_commit or "-"),
        t(locale, "notify.line.by", user=deploy.deployed_by),
    ]
    if deploy.description:
        lines.append(t(locale, "notify.line.description", description=deploy.description))
    if name in FINAL_EVENTS and deploy.duration is not None:
        lines.append(t(locale, "notify.line.duration", seconds=deploy.duration))
    if name != "success" and deploy.error_message:
        lines.append(t(locale, "notify.line.error", error=deploy.error_message))
    return Notice(
        event=name,
        environment=deploy.environment,
        record=mask.record(deploy_record(deploy)),
        title=mask(title),
        lines=tuple(mask(line) for line in lines),
    )


# --- one notice, shaped for one kind of sink ----------------------------------------------------------


def webhook_payload(notice: Notice) -> dict[str, Any]:
    return {"event": notice.event, "deploy": notice.record, "text": notice.text}


def wecom_payload(notice: Notice) -> dict[str, Any]:
    """企业微信 group robot: markdown, one line per line."""
    content = "\n".join((f"**{notice.title}**", *(f"> {line}" for line in notice.lines)))
    return {"msgtype": "markdown", "markdown": {"content": content}}


def dingtalk_payload(notice: Notice) -> dict[str, Any]:
    """钉钉 robot: markdown with a title (the chat list's preview); a blank line breaks a line."""
    text = "\n\n".join((f"#### {notice.title}", *(f"- {line}" for line in notice.lines)))
    return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": text}}


def email_subject(notice: Notice) -> str:
    return f"[deploybot] {notice.title}"
