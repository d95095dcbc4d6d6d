"""What happens to environment locks (DESIGN §9), published on the service's event bus beside the
deploy events: taken or extended, released (by its holder or a manager), due for the reminder
before it ends, expired. Each carries a detached snapshot of the lock row as it was."""

from __future__ import annotations

from dataclasses import dataclass

from storage.models import EnvironmentLock


@dataclass(frozen=True)
class LockEvent:
    lock: EnvironmentLock


@dataclass(frozen=True)
class LockTaken(LockEvent):
    """A new lock, an expired one taken over, or (`extended`) the holder's own made longer."""

    extended: bool = False


@dataclass(frozen=True)
class LockReleased(LockEvent):
    """Unlocked by `by`: the holder themselves (`was_holder`), or a manager (the holder is told)."""

    by: str = ""
    was_holder: bool = True


@dataclass(frozen=True)
class LockReminder(LockEvent):
    """The lock ends soon: its holder is asked whether to extend it. Sent once per lock (and
    again after an extension), by whichever process's job found it first."""


@dataclass(frozen=True)
class LockExpired(LockEvent):
    """The lock ran out and was removed, by whichever process's job found it first."""
