"""Scheduled deploys and freeze windows (DESIGN §10).

Times: `at HH:MM` (today, or tomorrow when already past), `at YYYY-MM-DD HH:MM`, `in 30s|10m|2h|1d`,
read in `[bot] timezone` and stored in UTC. A scheduled deploy is a row (`scheduled`, with
`scheduled_at`), so it survives restarts. At its time any process moves it, once, to the queue
(`scheduled -> queued`, one conditional UPDATE), where it starts as soon as its environment is free,
unlocked (or locked by its requester) and not frozen, approved if it must be; a deploy found more
than `misfire_grace_minutes` late (every process was down at the time) ends `cancelled` ("missed").
Waiting on a lock or a freeze is not missing: it waits in the queue.

A freeze window refuses triggers of its environments with its reason and end; a manager passes it
with `--force <reason>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import Config, Environment
from bot.deploy.events import DeployScheduled, EventBus
from bot.deploy.governance import Rules
from bot.errors import InvalidInput
from bot.i18n import Text, t
from storage import repository as repo
from storage import waiting
from storage.db import Database
from storage.models import Deploy, Status, utcnow

MAX_AHEAD = timedelta(days=30)
DELAY = re.compile(r"^(-?\d{1,7})([smhd])$")
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class When:
    """A time as the user wrote it: `at` a clock time (and date), or `in` a delay."""

    kind: str  # "at" | "in"
    seconds: int = 0  # for "in"
    clock: tuple[int, int] | None = None  # for "at": (hour, minute)
    date: tuple[int, int, int] | None = None  # for "at YYYY-MM-DD HH:MM"


def _refuse(key: str, **params) -> InvalidInput:
    return InvalidInput(detail=Text(key, params))


def parse_delay(text: str) -> When | None:
    """`30s`, `10m`, `2h`, `1d` (None when `text` is not shaped like a delay at all)."""
    match = DELAY.match(text.strip().lower())
    if match is None:
        return None
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise _refuse("reason.when_not_ahead", when=text)
    return When("in", seconds=seconds)


def parse_clock(text: str, date: str | None = None) -> When | None:
    """`HH:MM`, optionally after `YYYY-MM-DD` (None when not shaped like a time)."""
    match = CLOCK.match(text.strip())
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise _refuse("reason.when_bad_clock", when=text)
    day = None
    if date is not None:
        found = DATE.match(date.strip())
        if found is None:
            return None
        day = (int(found.group(1)), int(found.group(2)), int(found.group(3)))
        try:
            datetime(*day)
        except ValueError:
            raise _refuse("reason.when_bad_date", when=date) from None
    return When("at", clock=(hour, minute), date=day)


def resolve(when: When, zone: str, now: datetime) -> datetime:
    """The moment `when` names, in UTC; refused when not ahead of `now` or more than 30 days on."""
    tz = ZoneInfo(zone)
    if when.kind == "in":
        moment = now + timedelta(seconds=when.seconds)
    else:
        assert when.clock is not None
        local_now = now.astimezone(tz)
        day = when.date or (local_now.year, local_now.month, local_now.day)
        moment = datetime(*day, *when.clock, tzinfo=tz)
        if when.date is None and moment <= local_now:
            moment = datetime.combine(moment.date() + timedelta(days=1), moment.timetz())
        moment = moment.astimezone(UTC)
    return check_moment(moment, zone, now)


def check_moment(moment: datetime, zone: str, now: datetime) -> datetime:
    shown = moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    if moment <= now:
        raise _refuse("reason.when_past", when=f"{shown} {zone}")
    if moment - now > MAX_AHEAD:
        raise _refuse("reason.when_too_far", when=f"{shown} {zone}", days=MAX_AHEAD.days)
    return moment.astimezone(UTC)


# --- starting what is due ------------------------------------------------------------------------


class Schedules:
    """Creates scheduled deploys; moves due ones to the queue (or ends missed ones), in any
    process, once each."""

    def __init__(self, config: Config, db: Database, rules: Rules, events: EventBus) -> None:
        self.config = config
        self.db = db
        self.rules = rules
        self.events = events

    async def create(
        self,
        env: Environment,
        when: When | datetime,
        *,
        user: str,
        branch: str,
        force: str | None,
        rollback_of: int | None,
        **fields,
    ) -> Deploy:
        """A `scheduled` deploy: who may deploy what is checked now; the lock, the freeze, the
        queue and the commit when its time comes. Approval is asked now."""
        zone, now = self.config.bot.timezone, utcnow()
        if isinstance(when, When):
            moment = resolve(when, zone, now)
        else:
            moment = check_moment(when if when.tzinfo else when.replace(tzinfo=ZoneInfo(zone)), zone, now)
        forced = await self.rules.check_deploy(
            env, user=user, branch=branch, force=force, rollback=rollback_of is not None, now_checks=False
        )
        async with self.db.session() as session:
            deploy = await waiting.insert_waiting(
                session,
                Status.SCHEDULED,
                environment=env.name,
                branch=branch,
                deployed_by=user,
                rollback_of=rollback_of,
                scheduled_at=moment,
                forced_by=user if forced else None,
                force_reason=forced,
                **fields,
            )
        self.events.emit(DeployScheduled(deploy))
        return deploy

    async def due(self) -> tuple[list[int], list[int]]:
        """(queued ids, missed ids) of this call."""
        grace = self.config.bot.misfire_grace_minutes * 60
        missed_text = t(self.config.locale, "outcome.missed")
        async with self.db.session(background=True) as session:
            if not await waiting.any_due(session):
                return [], []
        async with self.db.session(background=True) as session:
            missed_ids = await repo.call_off(session, waiting.scheduled_before(grace), missed_text)
            due_ids = await waiting.queue_due(session)
        return due_ids, missed_ids
