"""The event bus of the engine: what happens to deploys, and the observers told about it.

The engine reports only through this bus; the Slack notifier, the console, the CLI and tests
subscribe to it, and the engine knows none of them. Observers are plain callables that must return
at once: the bus calls them inline while a deploy runs, so anything slow (a Web API call) belongs
on the observer's own queue. A failing observer is logged and ignored; it never affects a deploy.
The lock events of bot/deploy/lock_events.py travel on the same bus: observers ignore the kinds of
event they do not know.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.deploy.progress import Step
from storage import repository as repo
from storage.models import Deploy

if TYPE_CHECKING:
    from storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployEvent:
    deploy: Deploy  # a detached snapshot of the row as it was when the event happened


@dataclass(frozen=True)
class DeployCreated(DeployEvent):
    """A row exists (pending); a rollback's `deploy.rollback_of` names the restored deploy."""


@dataclass(frozen=True)
class DeployQueued(DeployEvent):
    """A deploy waits in its environment's queue (it holds nothing yet). Whichever process starts
    it later hands it to a process that runs it, which announces it with DeployCreated."""


@dataclass(frozen=True)
class DeployScheduled(DeployEvent):
    """A deploy waits for its time (`deploy.scheduled_at`); then it joins its environment's queue."""


@dataclass(frozen=True)
class DeployAwaitingApproval(DeployEvent):
    """A deploy waits for an approver (it holds its environment); the approvers are to be asked."""


@dataclass(frozen=True)
class DeployApproved(DeployEvent):
    """An approver let it go on (`deploy.approved_by`): it starts, or waits for its turn."""


@dataclass(frozen=True)
class DeployStarted(DeployEvent):
    """The script is running."""


@dataclass(frozen=True)
class StepChanged(DeployEvent):
    step: Step
    previous: Step | None


@dataclass(frozen=True)
class GateAsked(DeployEvent):
    """The script waits at a gate (`deploy.gate_question`, asked at `deploy.gate_asked_at`)."""

    question: str


@dataclass(frozen=True)
class GateAnswered(DeployEvent):
    """The gate got its answer (`continue` or `abort`) from `user` ("timeout" when nobody answered
    in time), and the script has been given it."""

    question: str
    answer: str
    user: str


@dataclass(frozen=True)
class DeployFinished(DeployEvent):
    """Success, failure or cancellation; `tail` holds the last log lines."""

    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployLost(DeployEvent):
    """This process no longer runs the deploy: its lease was taken (it was reaped while this
    process was paused or cut off) and its script is stopped. Whoever reaped it wrote its end and
    announces it; `deploy` is the row as the reaper left it, for this process's watchers to stop."""


Observer = Callable[[Any], None]  # a DeployEvent or a LockEvent


class EventBus:
    """The observers of one deploy service, and the one way events reach them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def emit(self, event: object) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer %r failed on %s", observer, type(event).__name__)

    async def publish(self, deploy_id: int, make_event: Callable[[Deploy], DeployEvent]) -> None:
        """Emit the event `make_event` builds from a detached snapshot of the deploy's row as it is
        now (soft-deleted rows included); nothing when the row is gone."""
        async with self._db.session(background=True) as session:
            deploy = await repo.get_deploy(session, deploy_id, include_deleted=True)
        if deploy is not None:
            self.emit(make_event(deploy))
