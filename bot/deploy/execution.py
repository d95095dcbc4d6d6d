"""One deploy from `pending` to its final state: the bridge between the script runner and storage.

It receives the runner's events, appends the log in chunks (at once when a megabyte has piled up,
so memory stays flat however much a script prints; a quiet script's lines within a quarter of a
second, so a follower and the first line of a deploy are prompt; in any case every second),
records steps and the reported commit, writes the final state, and publishes what happened on the
event bus. Output waits as the pieces the pipe delivered: a piece is never copied before it is
stored, and a chunk of one piece is stored as it is.

A database that goes away (an outage, a failover, a lock held past the busy timeout, a lost reply)
never loses, doubles or freezes a deploy: every write is retried with back-off until it lands (only
the bot stopping bounds that), steps and the reported commit are written off the reader's path,
log chunks are idempotent, and a move whose reply was lost is recognised on the retry.

An execution is given everything it works with (the database, the bus, the locale, the script's
spec) and knows nothing of the service that starts it: the service stops it through `cancel`
(a user asked) or `interrupt` (the bot is shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from bot.deploy.events import DeployEvent, DeployFinished, DeployStarted, EventBus, StepChanged
from bot.deploy.progress import Step
from bot.deploy.runner import Outcome, RunResult, RunSpec, ScriptRun, script_environment
from bot.i18n import t
from storage import repository as repo
from storage.models import Deploy, Status, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.config import Environment
    from storage.db import Database

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024  # stored once this much is waiting (or once a second)
MAX_CHUNK = 4 * CHUNK_SIZE  # what one transaction takes when output outruns storage
HIGH_WATER = 8 * CHUNK_SIZE  # past this the pipe waits for storage: back-pressure, not memory
FLUSH_SECONDS = 1.0
# Output that trickles in is stored at once when nothing was stored for this long, else this long
# after the last store: prompt for a reader, and at most a few small transactions a second.
TRICKLE_SECONDS = 0.25
# A failed write is tried again after 0.1 s, then twice as long each time up to 2 s: quick through a
# blip, gentle on a database that is coming back up.
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
RETRY_REPORT_EVERY = 30  # one warning for the first failure, then about one a minute
SHUTDOWN_GRACE = 5.0  # once the bot stops, failing writes are given up after this long
PROGRESS_BACKLOG = 1000  # steps waiting for the database before the reader waits for them

T = TypeVar("T")


def deploy_variables(deploy: Deploy) -> dict[str, str]:
    """What a deploy script learns about its deploy (DESIGN §3)."""
    return {
        "DEPLOY_ID": str(deploy.id),
        "DEPLOY_ENVIRONMENT": deploy.environment,
        "DEPLOY_BRANCH": deploy.branch,
        "DEPLOY_COMMIT": deploy.commit_hash or "",
        "DEPLOY_USER": deploy.deployed_by,
        "DEPLOY_DESCRIPTION": deploy.description or "",
        "DEPLOY_ROLLBACK_OF": str(deploy.rollback_of or ""),
        "SKIP_BUILD": "1" if deploy.skip_build else "0",
        "SKIP_MIGRATIONS": "1" if deploy.skip_migrations else "0",
    }


def run_spec(
    deploy: Deploy,
    env: Environment,
    base_env: Mapping[str, str],
    grace: float,
    mask: frozenset[str] = frozenset(),
) -> RunSpec:
    """How `env`'s script runs for `deploy`: the bot's environment without its secrets and without
    any environment's `secrets`, plus this environment's `secrets` and the deploy's variables; under
    its `run_as` account, if any."""
    shared = {name: value for name, value in base_env.items() if name not in env.withheld}
    return RunSpec(
        argv=[str(env.script), *env.args],
        cwd=env.cwd,
        env=script_environment({**shared, **env.secret_env}, deploy_variables(deploy)),
        timeout=env.timeout_seconds,
        grace=grace,
        step_pattern=env.step_pattern,
        account=env.account,
        mask=mask,  # every secret value the bot knows: masked out of the output
    )


class StorageGaveUp(Exception):
    """The bot is stopping and the database is still away: a write was left undone."""


class DeployExecution:
    def __init__(
        self,
        deploy: Deploy,
        spec: RunSpec,
        *,
        db: Database,
        events: EventBus,
        locale: str,
        timeout_minutes: float,
    ) -> None:
        self.deploy_id = deploy.id
        self.db = db
        self.events = events
        self.locale = locale
        self.timeout_minutes = timeout_minutes  # as configured, for the timeout message
        # A commit resolved from the environment's repo (or a rollback's target) is the one that
        # is deployed: a `DEPLOY_COMMIT=` line may not change the record of it.
        self._pinned = deploy.commit_hash is not None
        self._cancelled_by: str | None = None
        self._interrupted = False  # the bot is shutting down under this deploy
        self._give_up_at: float | None = None  # loop time after which failed writes are given up
        self._log_conflict: str | None = None  # someone else's bytes at our offset: log lost
        self._current_step: Step | None = None
        self._started = asyncio.Event()  # the start is recorded (or given up): steps may follow
        # steps and reported commits waiting for the progress writer, in the order printed
        self._progress: asyncio.Queue[tuple[Step, Step | None] | str] = asyncio.Queue(PROGRESS_BACKLOG)
        self._pending: deque[bytes] = deque()  # output not stored yet, as the pipe delivered it
        self._pending_size = 0
        self._offset = 0
        self._flushing: asyncio.Task | None = None
        self._stored = asyncio.Event()  # a chunk was stored: room for more output
        self._due = False  # a second has passed: flush even a partial chunk
        self._last_store = float("-inf")  # loop time the last chunk began to be stored
        self._trickle: asyncio.TimerHandle | None = None
        self._run = ScriptRun(spec, self)

    def cancel(self, user: str) -> None:
        """`user` asked to cancel: stop the script; the deploy ends as cancelled by the first asker."""
        self._cancelled_by = self._cancelled_by or user
        self._run.cancel()

    def interrupt(self) -> None:
        """The bot is shutting down: stop the script; the deploy ends as interrupted. Writes that
        keep failing are given up after SHUTDOWN_GRACE, so a database that stays away cannot hold
        the bot up; the next bot's reaper ends the deploy instead."""
        self._interrupted = True
        if self._give_up_at is None:
            self._give_up_at = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
        self._run.cancel()

    async def execute(self) -> None:
        ticker = asyncio.create_task(self._tick())
        writer = asyncio.create_task(self._write_progress())
        try:
            try:
                result = await self._run.execute()
            except Exception as exc:  # a bug, or the bot stopping during an outage, must still end it
                log.exception("deploy #%s crashed", self.deploy_id)
                result = RunResult(Outcome.FAILED, detail=str(exc))
            finally:
                ticker.cancel()  # before the drain: two flushes at once would store a chunk twice
                if self._trickle is not None:
                    self._trickle.cancel()
            await self._drain()
            await self._progress.join()  # every step and commit is stored before the end
            await self._finish(result)
        except StorageGaveUp as exc:  # the next bot's reaper ends it
            log.error("deploy #%s: bot stopping, database away: gave up %s", self.deploy_id, exc)
        finally:
            writer.cancel()

    # --- RunEvents ---------------------------------------------------------------------------

    async def started(self, pid: int) -> None:
        host = socket.gethostname()
        try:
            moved = await self._move(
                "recording the start", Status.RUNNING, started_at=utcnow(), runner_host=host, runner_pid=pid
            )
            if not moved:  # cancelled or reaped while pending
                self._run.cancel()
                return
            await self._publish(DeployStarted)
        finally:
            self._started.set()

    async def output(self, data: bytes) -> None:
        if self._log_conflict:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= CHUNK_SIZE:
            self._kick()
            # Read on as soon as one chunk is stored, so reading and storing overlap.
            while self._pending_size >= HIGH_WATER and not self._flushing.done():
                self._stored.clear()
                await self._stored.wait()
        elif self._trickle is None:
            loop = asyncio.get_running_loop()
            self._trickle = loop.call_at(max(loop.time(), self._last_store + TRICKLE_SECONDS), self._trickled)

    def _trickled(self) -> None:
        self._trickle = None
        self._due = True
        self._kick()

    async def step(self, step: Step) -> None:
        # Stored and announced by the progress writer while the reader reads on; only a backlog of
        # PROGRESS_BACKLOG (a long outage, or a script printing markers without end) makes it wait.
        previous, self._current_step = self._current_step, step
        await self._progress.put((step, previous))

    async def commit(self, sha: str) -> None:
        if self._pinned:
            log.info("deploy #%s: ignored DEPLOY_COMMIT=%s: the bot pinned the commit", self.deploy_id, sha)
            return
        await self._progress.put(sha)

    # --- steps and the reported commit ---------------------------------------------------------

    async def _write_progress(self) -> None:
        await self._started.wait()  # a step is never told before the start, however long that took
        while True:
            item = await self._progress.get()
            try:
                if isinstance(item, str):
                    await self._write(
                        "recording the reported commit",
                        lambda session, sha=item: repo.update_deploy(
                            session, self.deploy_id, commit_hash=sha
                        ),
                    )
                else:
                    await self._record_step(*item)
            except StorageGaveUp:
                pass  # the bot is stopping: execute() gives up its own writes as well
            finally:
                self._progress.task_done()

    async def _record_step(self, step: Step, previous: Step | None) -> None:
        await self._write(
            f"recording step {step.number}",
            lambda session: repo.update_deploy(
                session,
                self.deploy_id,
                step_current=step.number,
                step_total=step.total,
                step_title=step.title,
            ),
        )
        await self._publish(lambda deploy: StepChanged(deploy, step, previous))

    # --- log storage -------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await self._store_chunks()
        finally:
            self._stored.set()

    async def _store_chunks(self) -> None:
        # Whole chunks while output pours in; whatever is there once a second is due.
        while self._pending_size >= CHUNK_SIZE or (self._due and self._pending):
            count, size = self._next_chunk()
            self._last_store = asyncio.get_running_loop().time()
            data = self._pending[0] if count == 1 else b"".join(itertools.islice(self._pending, count))
            offset = self._offset
            try:
                # Retried as it is, never re-cut: a retry whose first attempt landed finds it stored.
                stored = await self._write(
                    f"storing {size} log bytes at {offset}",
                    lambda session, offset=offset, data=data: repo.append_log(
                        session, self.deploy_id, offset, data
                    ),
                )
            except repo.LogConflict as exc:
                self._lose_log(str(exc))
                return
            self._consume(stored)
            self._stored.set()
            if not self._pending:
                self._due = False

    def _next_chunk(self) -> tuple[int, int]:
        """How many waiting pieces the next chunk takes (at least one, else up to MAX_CHUNK)."""
        count = size = 0
        for piece in self._pending:
            if count and size + len(piece) > MAX_CHUNK:
                break
            count += 1
            size += len(piece)
        return count, size

    def _consume(self, size: int) -> None:
        """The first `size` waiting bytes are stored: let them go."""
        self._offset += size
        self._pending_size -= size
        while size:
            piece = self._pending[0]
            if len(piece) > size:  # only when less was stored than sent (see append_log)
                self._pending[0] = piece[size:]
                return
            self._pending.popleft()
            size -= len(piece)

    def _lose_log(self, reason: str) -> None:
        # Two writers of one log: storing on would interleave them. Fail the deploy loudly instead.
        log.error("deploy #%s: %s; its log is no longer stored", self.deploy_id, reason)
        self._log_conflict = reason
        self._pending.clear()
        self._pending_size = 0

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._due = True
            self._kick()

    async def _drain(self) -> None:
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        self._due = True
        await self._flush()

    # --- writes that outlive a database outage -------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` until it succeeds, with back-off. An outage, a failover, a lock held past the
        busy timeout, a lost connection: none may end, freeze or truncate a deploy. Only the bot
        stopping bounds it (StorageGaveUp); a LogConflict is no outage and is raised at once."""
        delay, failures = RETRY_FIRST, 0
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = await attempt()
            except repo.LogConflict:
                raise
            except Exception as exc:
                failures += 1
                if self._give_up_at is not None and loop.time() >= self._give_up_at:
                    raise StorageGaveUp(what) from exc
                if failures % RETRY_REPORT_EVERY == 1:  # the first, then about once a minute
                    log.warning(
                        "deploy #%s: %s failed %d time(s), retrying: %r", self.deploy_id, what, failures, exc
                    )
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX)
                continue
            if failures:
                log.warning("deploy #%s: %s done after %d failed attempt(s)", self.deploy_id, what, failures)
            return result

    async def _write(self, what: str, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`write` in a transaction of its own, retried until it commits."""

        async def attempt() -> T:
            async with self.db.session(background=True) as session:
                return await write(session)

        return await self._retrying(what, attempt)

    async def _move(self, what: str, to: Status, **fields) -> bool:
        """Transition the deploy to `to`, retried. A retry that the lifecycle refuses reads the row:
        when it shows `to` and these fields (times aside), an earlier attempt committed and only
        its reply was lost, so the move is ours."""
        attempts = 0
        expected = {name: value for name, value in fields.items() if not isinstance(value, datetime)}

        async def move(session: AsyncSession) -> bool:
            nonlocal attempts
            attempts += 1
            if await repo.transition(session, self.deploy_id, to, **fields):
                return True
            if attempts == 1:
                return False
            row = await repo.get_deploy(session, self.deploy_id, include_deleted=True)
            return (
                row is not None
                and row.status == to.value
                and all(getattr(row, name) == value for name, value in expected.items())
            )

        return await self._write(what, move)

    async def _publish(self, make_event: Callable[[Deploy], DeployEvent]) -> None:
        # The bus reads the row for the event: retried like a write, so no event is skipped.
        await self._retrying(
            "reading the deploy for its event", lambda: self.events.publish(self.deploy_id, make_event)
        )

    # --- the end -----------------------------------------------------------------------------

    async def _finish(self, result: RunResult) -> None:
        # Worked out once: a success whose write waits out an outage stays a success.
        status, message, fields = self._final_state(result)
        moved = await self._move(
            f"recording the end ({status})",
            status,
            error_message=message,
            exit_code=result.exit_code,
            **fields,
        )
        if moved:
            tail = tuple(result.tail)
            await self._publish(lambda deploy: DeployFinished(deploy, tail))

    def _final_state(self, result: RunResult) -> tuple[Status, str | None, dict]:
        locale = self.locale
        if self._interrupted:
            return Status.FAILED, t(locale, "outcome.interrupted"), {}
        if self._log_conflict:
            return Status.FAILED, f"{t(locale, 'error.generic')}: {self._log_conflict}", {}
        match result.outcome:
            case Outcome.SUCCESS:
                return Status.SUCCESS, None, {}
            case Outcome.CANCELLED:
                user = self._cancelled_by or "?"
                return Status.CANCELLED, t(locale, "outcome.cancelled", user=user), {"cancelled_by": user}
            case Outcome.TIMEOUT:
                minutes = f"{self.timeout_minutes:g}"
                return Status.FAILED, t(locale, "outcome.timeout", minutes=minutes), {}
            case Outcome.SPAWN_FAILED:
                return Status.FAILED, t(locale, "outcome.spawn_failed", detail=result.detail), {}
            case _:
                if result.exit_code is None:
                    return Status.FAILED, result.detail or t(locale, "error.generic"), {}
                message = t(locale, "outcome.exit_code", code=result.exit_code)
                if result.error_line:
                    message = f"{message}: {result.error_line}"
                return Status.FAILED, message, {}
