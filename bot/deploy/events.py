"""What the deploy service tells its observers (the Slack notifier, the console, tests).

Observers are plain callables that must return at once: the service calls them inline while a
deploy runs, so anything slow (a Web API call) belongs on the observer's own queue. A failing
observer is logged and ignored; it never affects a deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.deploy.progress import Step
from storage.models import Deploy


@dataclass(frozen=True)
class DeployEvent:
    deploy: Deploy  # a detached snapshot of the row as it was when the event happened


@dataclass(frozen=True)
class DeployCreated(DeployEvent):
    """A row exists (pending); a rollback's `deploy.rollback_of` names the restored deploy."""


@dataclass(frozen=True)
class DeployStarted(DeployEvent):
    """The script is running."""


@dataclass(frozen=True)
class StepChanged(DeployEvent):
    step: Step
    previous: Step | None


@dataclass(frozen=True)
class DeployFinished(DeployEvent):
    """Success, failure or cancellation; `tail` holds the last log lines."""

    tail: tuple[str, ...] = ()


Observer = Callable[[DeployEvent], None]
