"""One deploy from `pending` to its final state: the bridge between the script runner and storage.

It receives the runner's events, appends the log in chunks (at once when a megabyte has piled up,
so memory stays flat however much a script prints; a quiet script's lines within a quarter of a
second, so a follower and the first line of a deploy are prompt; in any case every second),
records steps and the reported commit, writes the final state, and publishes what happened on the
event bus. Output waits as the pieces the pipe delivered: a piece is never copied before it is
stored, and a chunk of one piece is stored as it is.

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
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.deploy.events import DeployFinished, DeployStarted, EventBus, StepChanged
from bot.deploy.progress import Step
from bot.deploy.runner import Outcome, RunResult, RunSpec, ScriptRun, script_environment
from bot.i18n import t
from storage import repository as repo
from storage.models import Deploy, Status, utcnow

if TYPE_CHECKING:
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


def run_spec(deploy: Deploy, env: Environment, base_env: Mapping[str, str], grace: float) -> RunSpec:
    """How `env`'s script runs for `deploy`: the bot's environment without its secrets, plus the
    deploy's variables."""
    return RunSpec(
        argv=[str(env.script), *env.args],
        cwd=env.cwd,
        env=script_environment(base_env, deploy_variables(deploy)),
        timeout=env.timeout_seconds,
        grace=grace,
        step_pattern=env.step_pattern,
    )


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
        self._cancelled_by: str | None = None
        self._interrupted = False  # the bot is shutting down under this deploy
        self._current_step: Step | None = None
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
        """The bot is shutting down: stop the script; the deploy ends as interrupted."""
        self._interrupted = True
        self._run.cancel()

    async def execute(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            result = await self._run.execute()
        except Exception as exc:  # a bug or a storage outage must still end the deploy
            log.exception("deploy #%s crashed", self.deploy_id)
            result = RunResult(Outcome.FAILED, detail=str(exc))
        finally:
            ticker.cancel()
            if self._trickle is not None:
                self._trickle.cancel()
        await self._drain()
        await self._finish(result)

    # --- RunEvents ---------------------------------------------------------------------------

    async def started(self, pid: int) -> None:
        async with self.db.session(background=True) as session:
            moved = await repo.transition(
                session,
                self.deploy_id,
                Status.RUNNING,
                started_at=utcnow(),
                runner_host=socket.gethostname(),
                runner_pid=pid,
            )
        if not moved:  # cancelled or reaped while pending
            self._run.cancel()
            return
        await self.events.publish(self.deploy_id, DeployStarted)

    async def output(self, data: bytes) -> None:
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
        previous, self._current_step = self._current_step, step
        async with self.db.session(background=True) as session:
            await repo.update_deploy(
                session,
                self.deploy_id,
                step_current=step.number,
                step_total=step.total,
                step_title=step.title,
            )
        await self.events.publish(self.deploy_id, lambda deploy: StepChanged(deploy, step, previous))

    async def commit(self, sha: str) -> None:
        async with self.db.session(background=True) as session:
            await repo.update_deploy(session, self.deploy_id, commit_hash=sha)

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
            try:
                async with self.db.session(background=True) as session:
                    await repo.append_log(session, self.deploy_id, self._offset, data)
            except Exception:
                log.exception("deploy #%s: storing %d log bytes failed; retrying", self.deploy_id, size)
                await asyncio.sleep(1.0)
                continue
            for _ in range(count):
                self._pending.popleft()
            self._pending_size -= size
            self._offset += size
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

    # --- the end -----------------------------------------------------------------------------

    async def _finish(self, result: RunResult) -> None:
        status, message, fields = self._final_state(result)
        async with self.db.session(background=True) as session:
            moved = await repo.transition(
                session, self.deploy_id, status, error_message=message, exit_code=result.exit_code, **fields
            )
        if moved:
            tail = tuple(result.tail)
            await self.events.publish(self.deploy_id, lambda deploy: DeployFinished(deploy, tail))

    def _final_state(self, result: RunResult) -> tuple[Status, str | None, dict]:
        locale = self.locale
        if self._interrupted:
            return Status.FAILED, t(locale, "outcome.interrupted"), {}
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
