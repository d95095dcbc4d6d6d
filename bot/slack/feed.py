"""What the notifier knows about one deploy, what it has already told Slack, and what it should tell
Slack next (`plan`), as wants for the outbox (bot/slack/outbox.py).

The order of one deploy's work: its card first; while it runs, step replies and card progress,
whichever budget comes first; at the end the card's final state, then the final reply that mentions
the deployer (never before the card shows that end), then the log file of a deploy that did not
succeed. Steps that have had no reply yet go out in order before the final reply when the channel
can take them, else inside it. A gate's question and its answer (`notes`) get replies of their own,
in their place among the steps, and are never folded into another reply.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from bot.deploy.events import DeployFinished, GateAnswered, GateAsked
from bot.deploy.progress import Step
from bot.slack.outbox import SLACK_PACING, Budget, Outbox, Pacing, Priority, Want
from storage.models import Deploy, Status


@dataclass(frozen=True)
class CardPosted:
    channel: str
    ts: str


@dataclass(frozen=True)
class CardFailed:
    channel: str
    error: str


CardOutcome = CardPosted | CardFailed


@dataclass(frozen=True)
class Timing:
    update_interval: float = 1.0  # at most one chat.update per second per message
    tick_seconds: float = 10.0  # refresh a running card this often even without news (elapsed time)
    retry_initial: float = 1.0
    retry_cap: float = 30.0
    home_interval: float = 2.0  # App Home republished at most this often
    pacing: Pacing = field(default=SLACK_PACING)  # the Web API budgets every worker shares


class Feed:
    """One deploy as the notifier sees it: the newest state, and what Slack has been shown."""

    def __init__(self, deploy: Deploy, channel: str, loop: asyncio.AbstractEventLoop) -> None:
        self.deploy = deploy
        self.channel = channel
        self.ts: str | None = deploy.slack_ts if deploy.slack_channel == channel else None
        self.steps: deque[Step] = deque()  # steps without a reply yet
        self.steps_seen = 0  # steps ever queued: a note waits for the steps seen before it
        self.notes: deque[tuple[int, GateAsked | GateAnswered]] = deque()  # (steps_seen then, event)
        self.final: DeployFinished | None = None
        self.final_version = 0  # the version that brought the final state
        self.final_sent = False
        self.log_sent = False
        self.version = 0
        self.sent_version = -1  # the version the card shows
        self.last_update = float("-inf")  # the last chat.update (once a second per message)
        self.last_write = float("-inf")  # the last post or update (elapsed-time refresh)
        self.wake = asyncio.Event()
        self.card: asyncio.Future[CardOutcome | None] = loop.create_future()
        self.estimate: float | None = None
        self.estimate_loaded = False
        self.rollback_target: Deploy | None = None
        self.rollback_loaded = False
        self.changes = None  # awaiting approval: what it would change (bot/deploy/changes.py)
        self.changes_loaded = False
        self.failed_ahead = None  # a deploy from the queue: the one before it failed
        self.failed_ahead_loaded = False
        self.queue_position: int | None = None  # a queued deploy's place in line
        self.dead = False  # the channel refused the card: nothing more to say there
        self.since: dict[str, int] = {}  # kind of want -> its place in line, kept until it is done
        if self.ts:
            self.settle(CardPosted(channel, self.ts))

    def settle(self, outcome: CardOutcome | None) -> None:
        if not self.card.done():
            self.card.set_result(outcome)

    @property
    def card_final(self) -> bool:
        """The card shows the deploy's end."""
        return self.final is not None and self.sent_version >= self.final_version

    @property
    def finished(self) -> bool:
        if self.dead or self.parked:
            return True
        return (
            self.card_final
            and self.final_sent
            and self.log_sent
            and self.sent_version == self.version
            and not self.steps
            and not self.notes
        )

    @property
    def parked(self) -> bool:
        """A queued deploy whose card is shown: nothing more to do here. Whichever process starts
        it later takes the card over through its `slack_ts` (or this one again, with a new feed)."""
        return (
            self.deploy.state in (Status.SCHEDULED, Status.QUEUED, Status.AWAITING_APPROVAL)
            and self.final is None
            and self.ts is not None
            and self.sent_version == self.version
        )


def plan(feed: Feed, outbox: Outbox, timing: Timing, now: float) -> tuple[list[Want], float | None]:
    """What `feed` may ask for now, and when to look again if nothing (more) is due yet."""
    post = outbox.budget("chat.postMessage", feed.channel)
    if feed.ts is None:
        return [_want(feed, outbox, "card", post, Priority.FINAL if feed.final else Priority.NEW_CARD)], None
    if feed.final is not None and not (feed.card_final and feed.final_sent and feed.log_sent):
        return _plan_end(feed, outbox, timing, now, post)
    wants: list[Want] = []
    if note_due(feed):  # someone is to answer it: ahead of progress
        wants.append(_want(feed, outbox, "note", post, Priority.NEW_CARD))
    elif feed.steps:
        wants.append(_want(feed, outbox, "steps", post, Priority.STEP))
    update, due = _card_update(feed, outbox, timing, now)
    wants += [update] if update else []
    return wants, due


def _plan_end(
    feed: Feed, outbox: Outbox, timing: Timing, now: float, post: Budget
) -> tuple[list[Want], float | None]:
    if not feed.card_final:
        update, due = _card_update(feed, outbox, timing, now)
        return ([update] if update else []), due
    if not feed.final_sent and feed.notes:  # in order: the steps before a note, then the note
        return [_want(feed, outbox, "note" if note_due(feed) else "steps", post, Priority.FINAL)], None
    if not feed.final_sent:
        # Steps still owed get replies of their own only if the channel has room for a step
        # reply right now; otherwise they ride in the final reply instead of delaying it.
        if feed.steps and outbox.ready(post, Priority.STEP):
            return [_want(feed, outbox, "steps", post, Priority.FINAL)], None
        return [_want(feed, outbox, "final", post, Priority.FINAL)], None
    return [_want(feed, outbox, "log", outbox.budget("files.upload"), Priority.FINAL)], None


def _card_update(feed: Feed, outbox: Outbox, timing: Timing, now: float) -> tuple[Want | None, float | None]:
    """A chat.update of the card if it is behind (or its elapsed time is due) and its message
    had none in the last update interval; else when to look again."""
    running = feed.deploy.state.is_active
    if feed.sent_version < feed.version:
        priority = Priority.FINAL if feed.final is not None else Priority.PROGRESS
    elif running and now - feed.last_write >= timing.tick_seconds:
        priority = Priority.TICK
    else:
        return None, (feed.last_write + timing.tick_seconds if running else None)
    early = feed.last_update + timing.update_interval
    if early > now:
        return None, early
    return _want(feed, outbox, "update", outbox.budget("chat.update"), priority), None


def _want(feed: Feed, outbox: Outbox, kind: str, budget: Budget, priority: Priority) -> Want:
    # The place in line is taken when the want first arises and kept until it is served, so
    # re-planning (after news, a timeout or a 429) never sends a worker to the back.
    seq = feed.since.setdefault(kind, outbox.ticket())
    return Want(kind, budget, priority, seq)


def note_due(feed: Feed) -> bool:
    """Whether the first gate note may go: every step seen before it has had its reply."""
    return bool(feed.notes) and feed.notes[0][0] <= feed.steps_seen - len(feed.steps)


def steps_before_note(feed: Feed) -> int:
    """How many of the waiting steps may have a reply now (those before the first note)."""
    if not feed.notes:
        return len(feed.steps)
    return max(0, feed.notes[0][0] - (feed.steps_seen - len(feed.steps)))


def log_wanted(deploy: Deploy) -> bool:
    """Whether the whole log is attached at the end (only when the deploy did not succeed)."""
    return deploy.state is not Status.SUCCESS
