"""One deploy from `pending` to its final state: the bridge between the script runner and storage.

It receives the runner's events, hands the output to its log writer (bot/deploy/logstore.py),
records steps and the reported commit, hands gates to its GateKeeper (bot/deploy/gates.py), writes
the final state, and publishes what happened on the event bus.

A database that goes away (an outage, a failover, a lock held past the busy timeout, a lost reply)
never loses, doubles or freezes a deploy: every write is retried with back-off until it lands (only
the bot stopping bounds that), steps and the reported commit are written off the reader's path,
log chunks are idempotent, and a move whose reply was lost is recognised on the retry.

The deploy is this process's (`runner_id`) only while its lease lasts (DESIGN §12). Every write
names the owner, so once the deploy is reaped (this process was paused, or cut off, past its lease)
a write changes nothing and says so; that, or a renewal that matches nothing (`lease_lost`), kills
the script at once and ends every write: no chunk, step, event or final state follows, because the
deploy may already run again elsewhere.

An execution is given everything it works with (the database, the bus, the locale, the script's
spec, its owner and lease) and knows nothing of the service that starts it: the service stops it
through `cancel` (a user asked), `interrupt` (the bot is shutting down) or `lease_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from bot.aio import cancelling
from bot.deploy.events import (
    DeployEvent,
    DeployFinished,
    DeployLost,
    DeployStarted,
    EventBus,
    StepChanged,
)
from bot.deploy.gates import GateKeeper
from bot.deploy.logstore import LogWriter
from bot.deploy.progress import GateReached, Step
from bot.deploy.runner import Outcome, RunResult, RunSpec, ScriptRun, script_environment
from bot.i18n import t
from storage import repository as repo
from storage.models import Deploy, Status

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.config import Environment
    from storage.db import Database

log = logging.getLogger(__name__)

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
        runner_id: str,
        lease_seconds: float,
        gate_timeout_minutes: float = 60.0,
    ) -> None:
        self.deploy_id = deploy.id
        self.db = db
        self.events = events
        self.locale = locale
        self.timeout_minutes = timeout_minutes  # as configured, for the timeout message
        self.runner_id = runner_id  # this process: every write requires the deploy to still be its
        self.lease_seconds = lease_seconds
        # A commit resolved from the environment's repo (or a rollback's target) is the one that
        # is deployed: a `DEPLOY_COMMIT=` line may not change the record of it.
        self._pinned = deploy.commit_hash is not None
        self._cancelled_by: str | None = None
        self._interrupted = False  # the bot is shutting down under this deploy
        self._lost = False  # the deploy is no longer ours: nothing more is written
        self._ending = False  # the script is done and its end is being written: that write decides
        self._give_up_at: float | None = None  # loop time after which failed writes are given up
        self._current_step: Step | None = None
        self._started = asyncio.Event()  # the start is recorded (or given up): steps may follow
        # steps, reported commits and gates waiting for the progress writer, in the order printed
        self._progress: asyncio.Queue[tuple[Step, Step | None] | str | GateReached] = asyncio.Queue(
            PROGRESS_BACKLOG
        )
        self._log = LogWriter(deploy.id, self._store_chunk)
        self._run = ScriptRun(spec, self)
        self.gates = GateKeeper(
            deploy.id,
            environment=deploy.environment,
            owner=runner_id,
            timeout_minutes=gate_timeout_minutes,
            write=self._write,
            publish=self._publish,
            log_line=self._log.output,
            give=self._run.answer_gate,
        )

    def check_gate(self) -> None:
        """An answer to this deploy's gate may have been written: look now."""
        self.gates.check()

    def cancel(self, user: str) -> None:
        """`user` asked to cancel: stop the script; the deploy ends as cancelled by the first asker."""
        if self._lost:
            return
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

    def lease_lost(self) -> None:
        """The deploy is no longer ours (reaped: our renewal matched nothing, or a write found it
        gone): kill the script now and write nothing more. Once the script is done and the end is
        being written, that write is what counts (its owner check tells whether it still may)."""
        if self._lost or self._ending:
            return
        self._lost = True
        log.error(
            "deploy #%s: its lease was taken (reaped): stopping the script, writing nothing more",
            self.deploy_id,
        )
        self._log.drop()
        self._run.kill()

    async def execute(self) -> None:
        self._log.start()
        writer = asyncio.create_task(self._write_progress())
        try:
            try:
                result = await self._run.execute()
            except Exception as exc:  # a bug, or the bot stopping during an outage, must still end it
                log.exception("deploy #%s crashed", self.deploy_id)
                result = RunResult(Outcome.FAILED, detail=str(exc))
            finally:
                self._log.stop_timers()
                self.gates.close()
            await self._log.drain()
            await self._progress.join()  # every step and commit is stored before the end
            await self._finish(result)
        except StorageGaveUp as exc:  # the next bot's reaper ends it
            log.error("deploy #%s: bot stopping, database away: gave up %s", self.deploy_id, exc)
        except repo.LeaseLost:
            pass  # said by lease_lost; the reaper wrote the end
        finally:
            writer.cancel()

    # --- RunEvents ---------------------------------------------------------------------------

    async def started(self, pid: int) -> None:
        host = socket.gethostname()
        try:
            claimed = await self._move(
                "recording the start",
                lambda session: repo.claim(
                    session,
                    self.deploy_id,
                    self.runner_id,
                    self.lease_seconds,
                    runner_host=host,
                    runner_pid=pid,
                ),
                status=Status.RUNNING.value,
                runner_id=self.runner_id,
                runner_host=host,
                runner_pid=pid,
            )
            if not claimed:  # reaped while pending
                self.lease_lost()
                return
            await self._publish(DeployStarted)
        except repo.LeaseLost:
            pass
        finally:
            self._started.set()

    async def output(self, data: bytes) -> None:
        await self._log.output(data)

    async def step(self, step: Step) -> None:
        # Stored and announced by the progress writer while the reader reads on; only a backlog of
        # PROGRESS_BACKLOG (a long outage, or a script printing markers without end) makes it wait.
        if self._lost:
            return
        previous, self._current_step = self._current_step, step
        await self._progress.put((step, previous))

    async def commit(self, sha: str) -> None:
        if self._pinned:
            log.info("deploy #%s: ignored DEPLOY_COMMIT=%s: the bot pinned the commit", self.deploy_id, sha)
            return
        if not self._lost:
            await self._progress.put(sha)

    async def gate(self, question: str) -> None:
        # in line with the steps, so the question is told after the step that led to it
        if not self._lost:
            await self._progress.put(GateReached(question))

    # --- steps and the reported commit ---------------------------------------------------------

    async def _write_progress(self) -> None:
        await self._started.wait()  # a step is never told before the start, however long that took
        while True:
            item = await self._progress.get()
            try:
                if isinstance(item, GateReached):
                    await self.gates.asked(item.question)
                elif isinstance(item, str):
                    await self._write(
                        "recording the reported commit",
                        lambda session, sha=item: repo.update_deploy(
                            session, self.deploy_id, owner=self.runner_id, commit_hash=sha
                        ),
                    )
                else:
                    await self._record_step(*item)
            except (StorageGaveUp, repo.LeaseLost):
                pass  # the bot is stopping, or the deploy is not ours: execute() stops writing too
            finally:
                self._progress.task_done()

    async def _record_step(self, step: Step, previous: Step | None) -> None:
        await self._write(
            f"recording step {step.number}",
            lambda session: repo.update_deploy(
                session,
                self.deploy_id,
                owner=self.runner_id,
                step_current=step.number,
                step_total=step.total,
                step_title=step.title,
            ),
        )
        await self._publish(lambda deploy: StepChanged(deploy, step, previous))

    async def _store_chunk(self, offset: int, data: bytes) -> int:
        """The log writer's store: one chunk, retried, only while the deploy is ours."""
        return await self._write(
            f"storing {len(data)} log bytes at {offset}",
            lambda session: repo.append_log(session, self.deploy_id, offset, data, owner=self.runner_id),
        )

    # --- writes that outlive a database outage -------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` until it succeeds, with back-off. An outage, a failover, a lock held past the
        busy timeout, a lost connection: none may end, freeze or truncate a deploy. Only the bot
        stopping bounds it (StorageGaveUp). A LogConflict is no outage and is raised at once; so is
        LeaseLost, also when the lease is found lost between attempts."""
        delay, failures = RETRY_FIRST, 0
        loop = asyncio.get_running_loop()
        while True:
            if self._lost:
                raise repo.LeaseLost(f"deploy #{self.deploy_id}: {what}: not ours any more")
            try:
                result = await attempt()
            except repo.LogConflict:
                raise
            except repo.LeaseLost:
                self.lease_lost()
                raise
            except Exception as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc
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

    async def _move(self, what: str, change: Callable[[AsyncSession], Awaitable[bool]], **expected) -> bool:
        """A compare-and-set move of the deploy (`change`), retried. A retry that the lifecycle
        refuses reads the row: when it shows the `expected` values, an earlier attempt committed
        and only its reply was lost, so the move is ours."""
        attempts = 0

        async def move(session: AsyncSession) -> bool:
            nonlocal attempts
            attempts += 1
            if await change(session):
                return True
            if attempts == 1:
                return False
            row = await repo.get_deploy(session, self.deploy_id, include_deleted=True)
            return row is not None and all(getattr(row, name) == value for name, value in expected.items())

        return await self._write(what, move)

    async def _publish(self, make_event: Callable[[Deploy], DeployEvent]) -> None:
        # The bus reads the row for the event: retried like a write, so no event is skipped.
        await self._retrying(
            "reading the deploy for its event", lambda: self.events.publish(self.deploy_id, make_event)
        )

    # --- the end -----------------------------------------------------------------------------

    async def _finish(self, result: RunResult) -> None:
        if self._lost:
            await self._publish_lost()
            return
        self._ending = True
        # Worked out once: a success whose write waits out an outage stays a success.
        status, message, fields = self._final_state(result)
        moved = await self._move(
            f"recording the end ({status})",
            lambda session: repo.transition(
                session,
                self.deploy_id,
                status,
                owner=self.runner_id,
                error_message=message,
                exit_code=result.exit_code,
                **fields,
            ),
            status=status.value,
            error_message=message,
            exit_code=result.exit_code,
            **fields,
        )
        if moved:
            tail = tuple(result.tail)
            await self._publish(lambda deploy: DeployFinished(deploy, tail))
        else:  # reaped while we were ending it
            await self._publish_lost()

    async def _publish_lost(self) -> None:
        # Not ours to end: the reaper wrote the end and announces it. Watchers here (the CLI, this
        # process's Slack feed) learn it from the row, which is only read.
        with contextlib.suppress(Exception):
            await self.events.publish(self.deploy_id, DeployLost)

    def _final_state(self, result: RunResult) -> tuple[Status, str | None, dict]:
        locale = self.locale
        if self._interrupted:
            return Status.FAILED, t(locale, "outcome.interrupted"), {}
        if self._log.conflict:
            return Status.FAILED, f"{t(locale, 'error.generic')}: {self._log.conflict}", {}
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
                if aborted := self.gates.failure_reason(locale):  # the script stopped at a gate
                    message = f"{aborted} · {message}"
                return Status.FAILED, message, {}
