"""`/deploy runners` (DESIGN §12): the live bot processes on the database, one section each with
its role, host and pid, the environments whose scripts it runs, whether it is draining, how long it
has run and when it last renewed its presence. The process that answers is marked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.config import Config
from bot.i18n import t
from bot.slack.blocks.elements import MAX_BLOCKS, context, header, section
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, code, duration, env_title, escape, one_line, stamp
from storage.models import Runner

ROLES = {
    "serve": "ui.runners.role.serve",
    "worker": "ui.runners.role.worker",
    "console": "ui.runners.role.console",
    "cli": "ui.runners.role.cli",
}
# A process may run any number of environments; the list stays readable, the section within limits.
MAX_ENVIRONMENTS = 20


def runners_message(
    runners: Sequence[Runner], config: Config, locale: str, *, this_runner: str, now: datetime
) -> Message:
    """One section per process, in the order given (the service's: oldest first). `this_runner` is
    the runner_id of the process answering; `now` is what "last seen" is measured from."""
    count = len(runners)
    blocks = [
        header(t(locale, "ui.runners.title"), "runners_title"),
        context(t(locale, "ui.runners.summary", count=count), "runners_summary"),
    ]
    room = MAX_BLOCKS - len(blocks) - 1  # keep one for the note on those left out
    for number, runner in enumerate(runners[:room], 1):
        text = _runner_text(runner, config, locale, is_this=runner.runner_id == this_runner, now=now)
        blocks.append(section(text, f"runner_{number}"))
    if count > room:
        blocks.append(context(t(locale, "ui.runners.more", count=count - room), "runners_more"))
    if not runners:
        blocks.append(section(t(locale, "ui.runners.empty"), "runners_empty"))
    return Message(t(locale, "ui.runners.text", count=count), blocks)


def _runner_text(runner: Runner, config: Config, locale: str, *, is_this: bool, now: datetime) -> str:
    """Three lines: what and where; the environments it runs; how long it has run, when last seen.
    The uptime is measured between two times of the database's clock, so a host whose clock is off
    shows it right."""
    where = t(locale, "ui.runners.where", host=code(clip(runner.host, 100)), pid=runner.pid)
    first = [f"{':warning:' if runner.draining else ':gear:'} *{_role(runner.role, locale)}*", where]
    if is_this:
        first.append(f"*{t(locale, 'ui.runners.this')}*")
    if runner.draining:
        first.append(f"*{t(locale, 'ui.runners.draining')}*")
    uptime = t(
        locale,
        "ui.runners.uptime",
        duration=duration(_seconds(runner.started_at, runner.seen_at), locale),
        time=stamp(runner.started_at),
    )
    seen = t(locale, "ui.runners.seen", ago=duration(_seconds(runner.seen_at, now), locale))
    lines = [
        " · ".join(first),
        t(locale, "ui.runners.environments", envs=_environments(runner, config, locale)),
        f"{uptime} · {seen}",
    ]
    return "\n".join(lines)


def _role(role: str, locale: str) -> str:
    key = ROLES.get(role)
    return t(locale, key) if key else escape(clip(one_line(role), 32)) or "—"


def _environments(runner: Runner, config: Config, locale: str) -> str:
    names = runner.environment_names
    if not names:
        return t(locale, "ui.runners.no_environments")
    shown = [env_title(config.environments.get(name), clip(name, 64)) for name in names[:MAX_ENVIRONMENTS]]
    if len(names) > MAX_ENVIRONMENTS:
        shown.append("…")
    return ", ".join(shown)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())
