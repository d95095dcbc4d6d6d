"""Environment locks (DESIGN §9): `service.locks`, the one way to lock, extend and unlock an
environment, and the job that ends expired locks and reminds holders before theirs end.

While an environment is locked only its holder deploys there (bot/deploy/governance.py checks it
before a deploy is written; bot/deploy/queue.py holds back the others' queued deploys). Only those
who may deploy somewhere may lock it; the holder locking again extends; a manager may unlock anyone's.
Every lock, extension and unlock is an audit row. What happens is published on the event bus as
the events of bot/deploy/lock_events.py; expiry and reminders come from `tick`, which every process
runs (storage/locks.py hands each expired lock and each reminder to exactly one of them).
"""

from __future__ import annotations

import re

from bot.config import Config, Environment
from bot.deploy import policy
from bot.deploy.events import EventBus
from bot.deploy.governance import Rules, locked
from bot.deploy.lock_events import LockExpired, LockReleased, LockReminder, LockTaken
from bot.errors import InvalidInput, LockedByOther, NotLocked, NotPermitted, UnknownEnvironment
from bot.i18n import Text
from storage import audit, locks
from storage.db import Database
from storage.models import EnvironmentLock, utcnow

DEFAULT_MINUTES = 120
MAX_MINUTES = 7 * 24 * 60
EXTEND_MINUTES = 60  # the reminder's 延长 1 小时 button
REMIND_SECONDS = 600  # the holder is asked this long before the lock ends
CHECK_SECONDS = 30.0  # how often every process looks for expired locks and due reminders
MAX_REASON = 500
TAKE_ATTEMPTS = 2  # someone else's lock may end between reading it and taking ours
DURATION = re.compile(r"^(\d{1,6})([mhd])$", re.IGNORECASE)
UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


def parse_duration(value: str | int | None) -> int:
    """Minutes from `30m`, `2h`, `1d` (or a number of minutes); None is the default, 2 hours.
    Anything else, or outside 1 minute to 7 days, is InvalidInput."""
    if value is None:
        return DEFAULT_MINUTES
    if isinstance(value, bool):
        raise _bad_duration(str(value))
    if isinstance(value, int):
        minutes, shown = value, f"{value}m"
    else:
        match = DURATION.match(value.strip())
        if match is None:
            raise _bad_duration(value)
        minutes, shown = int(match.group(1)) * UNIT_MINUTES[match.group(2).lower()], value.strip()
    if not 1 <= minutes <= MAX_MINUTES:
        raise _bad_duration(shown)
    return minutes


def _bad_duration(value: str) -> InvalidInput:
    return InvalidInput(detail=Text("reason.lock_duration", {"value": value[:20] or '""'}))


def check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(detail=Text("reason.lock_reason", {"limit": MAX_REASON}))
    return reason


class LockDesk:
    def __init__(self, config: Config, db: Database, events: EventBus, rules: Rules) -> None:
        self.config = config
        self.db = db
        self.events = events
        self.rules = rules
        # the locks as this process last saw them, for cards rendered without a query
        self._known: dict[str, EnvironmentLock] = {}

    # --- actions -------------------------------------------------------------------------------

    async def lock(
        self, environment: str, *, user: str, duration: str | int | None = None, reason: str = ""
    ) -> EnvironmentLock:
        """Lock `environment` for `user` for `duration` (default 2 hours), or extend their own lock
        to end that long from now. Someone else's live lock: EnvironmentLocked."""
        env = self._resolve(environment)
        minutes = parse_duration(duration)
        reason = check_reason(reason)
        await self._may_lock(env, user)
        return await self._take(env, user, minutes * 60, reason, f"{minutes}m", own_only=False)

    async def extend(self, environment: str, *, user: str, minutes: int = EXTEND_MINUTES) -> EnvironmentLock:
        """Make the holder's own lock end `minutes` later than it would (at most 7 days from now)."""
        env = self._resolve(environment)
        await self._may_lock(env, user)
        async with self.db.session() as session:
            lock = await locks.current(session, env.name)
        if lock is None:
            raise NotLocked(environment=env.display)
        if lock.holder != user:
            raise locked(env, lock)
        remaining = max(0.0, (lock.expires_at - utcnow()).total_seconds())
        seconds = min(remaining + minutes * 60, MAX_MINUTES * 60)
        return await self._take(env, user, seconds, "", f"+{minutes}m", own_only=True)

    async def unlock(self, environment: str, *, user: str) -> EnvironmentLock:
        """End the lock on `environment`: the holder's own, or anyone's for a manager (the holder
        is told). Returns the lock as it was."""
        env = self._resolve(environment)
        async with self.db.session() as session:
            lock = await locks.current(session, env.name)
            if lock is None:
                raise NotLocked(environment=env.display)
            was_holder = lock.holder == user
            allowed = was_holder or policy.is_manager(self.config, user)
            # only the lock read here: one taken over meanwhile stays
            if allowed and not await locks.release(session, env.name, holder=lock.holder):
                raise NotLocked(environment=env.display)
            if allowed:
                await audit.record(
                    session,
                    actor=user,
                    action="unlock",
                    environment=env.name,
                    detail=f"lock of {lock.holder} until {_when(lock)}; reason: {lock.reason or '-'}",
                )
        if not allowed:
            await self.rules.refused(env, user, f"unlock the lock of {lock.holder}")
            raise LockedByOther(environment=env.display, holder=lock.holder)
        self._known.pop(env.name, None)
        self.events.emit(LockReleased(lock, by=user, was_holder=was_holder))
        return lock

    # --- reading -------------------------------------------------------------------------------

    async def current(self, environment: str) -> EnvironmentLock | None:
        env = self._resolve(environment)
        async with self.db.session() as session:
            return await locks.current(session, env.name)

    async def all(self) -> list[EnvironmentLock]:
        """Every live lock, by environment name."""
        async with self.db.session() as session:
            found = await locks.all_current(session)
        self._known = {lock.environment: lock for lock in found}
        return found

    async def shown(self, environment: str) -> EnvironmentLock | None:
        """The lock on `environment` (by name, known to the config or not), read now."""
        await self.all()
        return self.known(environment)

    def known(self, environment: str) -> EnvironmentLock | None:
        """The lock on `environment` as this process last saw it (its own changes at once, other
        processes' within CHECK_SECONDS): for cards, which are drawn too often to ask each time."""
        lock = self._known.get(environment)
        return lock if lock is not None and lock.expires_at > utcnow() else None

    # --- upkeep --------------------------------------------------------------------------------

    async def tick(self) -> None:
        """End expired locks and remind holders whose lock ends within REMIND_SECONDS; each
        expiry and reminder is announced by exactly one process."""
        async with self.db.session(background=True) as session:
            ended = await locks.expired(session)
            due = await locks.due_reminders(session, REMIND_SECONDS)
            live = await locks.all_current(session)
        self._known = {lock.environment: lock for lock in live}
        for lock in ended:
            self.events.emit(LockExpired(lock))
        for lock in due:
            self.events.emit(LockReminder(lock))

    # --- internals -----------------------------------------------------------------------------

    def _resolve(self, name: str | None) -> Environment:
        env = self.config.environment(name or "")
        if env is None:
            raise UnknownEnvironment(name=(name or "")[:64], choices=", ".join(self.config.environments))
        return env

    async def _may_lock(self, env: Environment, user: str) -> None:
        if not policy.may_deploy(env, user):
            await self.rules.refused(env, user, "lock")
            raise NotPermitted(environment=env.display, action=Text("action.deploy"))

    async def _take(
        self, env: Environment, user: str, seconds: float, reason: str, asked: str, *, own_only: bool
    ) -> EnvironmentLock:
        for _ in range(TAKE_ATTEMPTS):
            async with self.db.session() as session:
                before = await locks.current(session, env.name)
                if before is not None and before.holder != user:
                    raise locked(env, before)
                if own_only and before is None:
                    raise NotLocked(environment=env.display)
                lock = await locks.take(session, env.name, user, seconds, reason)
                if lock is None:
                    continue  # taken by someone else since we looked: refuse with their lock
                extended = before is not None
                await audit.record(
                    session,
                    actor=user,
                    action="extend" if extended else "lock",
                    environment=env.name,
                    detail=f"{asked}, until {_when(lock)}; reason: {lock.reason or '-'}",
                )
            self._known[env.name] = lock
            self.events.emit(LockTaken(lock, extended=extended))
            return lock
        async with self.db.session() as session:
            holder = await locks.current(session, env.name)
        if holder is None:  # theirs ended again meanwhile: rare enough to let the user retry
            raise NotLocked(environment=env.display)
        raise locked(env, holder)


def _when(lock: EnvironmentLock) -> str:
    return lock.expires_at.strftime("%Y-%m-%d %H:%M UTC")
