"""The deploy service: every action on deploys, whoever asks (Slack, the REST API, the console, the CLI).

Input is checked here, before anything is written or started: a refusal is a `DeployError` and
leaves no row and no process behind. Deploys run as tasks of this process (one `DeployExecution`
each), leased to it (`runner_id`) and renewed every `heartbeat_seconds`; a deploy whose renewal
matches nothing was taken from us and stops at once. The reaper ends deploys whose lease expired by
the database's clock, and kills a script only where that cannot hit a live owner (DESIGN §12). What
happens is published on the service's event bus, `service.events`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from bot.config import Config, Environment
from bot.deploy import git
from bot.deploy.cluster import Cluster
from bot.deploy.events import DeployCreated, EventBus
from bot.deploy.execution import DeployExecution, run_spec
from bot.deploy.identity import RunnerId
from bot.deploy.leases import Leases
from bot.deploy.progress import estimate_seconds
from bot.errors import (
    AlreadyFinished,
    CommitMissing,
    DeployNotFound,
    DescriptionTooLong,
    EnvironmentBusy,
    InvalidInput,
    NoRunner,
    RepoUnavailable,
    RollbackNotEligible,
    UnknownBranch,
    UnknownEnvironment,
)
from bot.i18n import Text, t
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, Runner, Status, utcnow
from storage.repository import LogSlice, Page

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
INSERT_ATTEMPTS = 3  # a lost insert race is retried when the winner has already finished
MAX_PAGE_SIZE = 100
MAX_LOG_READ = 1024 * 1024


@dataclass(frozen=True)
class LogView:
    deploy: Deploy
    data: bytes
    offset: int
    next_offset: int
    complete: bool

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class CleanupResult:
    logs_cleared: int
    records_deleted: int


class DeployService:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        base_env: dict[str, str] | None = None,
        runner: RunnerId | None = None,
        role: str = "serve",
        claims: bool = True,
    ) -> None:
        """`role` names the process in `/deploy runners`; `claims=False` runs only the deploys
        asked of this process, never one handed over by another (`deploybot deploy`)."""
        self.config = config
        self.db = db
        self.locale = config.locale
        self.runner = runner or RunnerId.current()
        self.runner_id = str(self.runner)
        self._base_env = dict(os.environ if base_env is None else base_env)
        self.events = EventBus(db)
        self._executions: dict[int, DeployExecution] = {}
        self._tasks: set[asyncio.Task] = set()
        self._heartbeat_task: asyncio.Task | None = None
        self.leases = Leases(
            db=db,
            events=self.events,
            executions=self._executions,
            runner=self.runner,
            lease_seconds=config.bot.lease_seconds,
            heartbeat_seconds=config.bot.heartbeat_seconds,
            locale=self.locale,
        )
        self.cluster = Cluster(
            db=db,
            runner=self.runner,
            role=role,
            environments=config.runner_environments,
            claims=claims,
            heartbeat_seconds=config.bot.heartbeat_seconds,
            lease_seconds=config.bot.lease_seconds,
            on_claimed=self._claimed,
            on_cancel=self._cancel_signalled,
        )

    # --- lifecycle of the service itself -------------------------------------------------------

    async def start(self) -> None:
        """Prepare the schema if the database is empty, end deploys whose lease expired (a dead
        bot's), and start renewing the leases of this process's deploys."""
        await self.db.ensure_schema()
        await self.reap()
        if self._heartbeat_task is None:
            self._heartbeat_task = asyncio.create_task(self.leases.keep())
            await self.cluster.start()

    def drain(self) -> None:
        """Start no more deploys here (deploys asked of this process go to another that runs
        their environment); the running ones go on."""
        self.cluster.drain()

    async def close(self) -> None:
        """Stop: scripts still running are stopped and their deploys end as interrupted."""
        for execution in list(self._executions.values()):
            execution.interrupt()
        # Leases are renewed until the scripts are gone (a TERM-ignoring one takes the cancel
        # grace): expiring meanwhile would let another process reap a deploy we are still ending.
        await self.wait_idle()
        if self._heartbeat_task:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
            await self.cluster.close()

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def running_ids(self) -> list[int]:
        return list(self._executions)

    # --- actions -------------------------------------------------------------------------------

    def resolve_environment(self, name: str | None) -> Environment:
        env = self.config.environment(name or "")
        if env is None:
            raise UnknownEnvironment(name=(name or "")[:64], choices=", ".join(self.config.environments))
        return env

    async def trigger(
        self,
        environment: str,
        branch: str | None = None,
        *,
        user: str,
        description: str = "",
        skip_build: bool = False,
        skip_migrations: bool = False,
        source: str = "slack",
        channel: str | None = None,
        request_key: str | None = None,
        _commit: str | None = None,
        _rollback_of: int | None = None,
    ) -> Deploy:
        """Start a deploy, here when this process runs its environment, else by handing it to a
        process that does. With a `request_key` seen before, returns that deploy instead."""
        env = self.resolve_environment(environment)
        branch = git.check_branch((branch or env.default_branch).strip())
        description = (description or "").strip()
        if len(description) > MAX_DESCRIPTION:
            raise DescriptionTooLong(length=len(description), limit=MAX_DESCRIPTION)
        if "\x00" in description:  # PostgreSQL text cannot hold NUL
            raise InvalidInput(detail="description: NUL")
        if request_key and (seen := await self._by_request_key(request_key)):
            return seen
        await self._refuse_if_busy(env)
        here = self.cluster.runs(env.name)
        if not here and not await self.cluster.someone_runs(env.name):
            raise NoRunner(environment=env.display)
        commit = _commit or await self._resolve_commit(env, branch)
        row = dict(
            environment=env.name,
            branch=branch,
            commit_hash=commit,
            deployed_by=user,
            description=description,
            skip_build=skip_build,
            skip_migrations=skip_migrations,
            source=source,
            slack_channel=channel,
            request_key=request_key,
            rollback_of=_rollback_of,
        )
        for attempt in range(INSERT_ATTEMPTS):
            try:
                async with self.db.session() as session:
                    # Leased from the start, to this process (no other reaps it while it spawns) or
                    # to nobody: the process that claims it must do so within a lease.
                    deploy = await repo.insert_deploy(
                        session,
                        runner_id=self.runner_id if here else None,
                        lease_seconds=self.config.bot.lease_seconds,
                        **row,
                    )
                    if not here:
                        await self.cluster.announce_pending(session)
                break
            except IntegrityError:
                # Another process won the race for this environment (or this request key).
                # When its deploy already ended in between, the environment is free again: retry.
                if request_key and (seen := await self._by_request_key(request_key)):
                    return seen
                await self._refuse_if_busy(env)
                if attempt == INSERT_ATTEMPTS - 1:
                    raise
        if here:  # else its owner tells, once it claims it
            self.events.emit(DeployCreated(deploy))
            self._launch(deploy, env)
        return deploy

    async def rollback(
        self,
        target_id: int,
        *,
        user: str,
        reason: str = "",
        source: str = "slack",
        channel: str | None = None,
        request_key: str | None = None,
    ) -> Deploy:
        """Deploy again the commit of an earlier successful deploy (`rollback_of` = its id)."""
        target = await self.get(target_id)
        env = self.resolve_environment(target.environment)
        await self.check_rollback_target(target)
        description = (reason or "").strip() or t(
            self.locale, "rollback.description", deploy_id=target.id, commit=target.short_commit
        )
        return await self.trigger(
            env.name,
            target.branch,
            user=user,
            description=description,
            source=source,
            channel=channel,
            request_key=request_key,
            _commit=target.commit_hash,
            _rollback_of=target.id,
        )

    async def check_rollback_target(self, target: Deploy) -> None:
        def refuse(key: str, **params) -> RollbackNotEligible:
            return RollbackNotEligible(deploy_id=target.id, reason=Text(key, params))

        if target.state is not Status.SUCCESS:
            raise refuse("reason.not_success", status=Text(f"status.{target.status}"))
        if not target.commit_hash:
            raise refuse("reason.no_commit")
        env = self.resolve_environment(target.environment)
        if env.repo:
            try:
                exists = await git.commit_exists(env.repo, target.commit_hash)
            except git.GitError as exc:
                raise RepoUnavailable(environment=env.name, detail=str(exc)[:300]) from None
            if not exists:
                raise CommitMissing(commit=target.short_commit, environment=env.name, deploy_id=target.id)

    async def cancel(self, deploy_id: int, *, user: str) -> Deploy:
        deploy = await self.get(deploy_id)
        if deploy.state.is_finished:
            raise AlreadyFinished(deploy_id=deploy.id, status=Text(f"status.{deploy.status}"))
        execution = self._executions.get(deploy_id)
        async with self.db.session() as session:
            flagged = await repo.request_cancel(session, deploy_id, user)
            if flagged and execution is None:  # another process owns it (or will): tell it now
                await self.cluster.announce_cancel(session, deploy_id)
        if not flagged:
            deploy = await self.get(deploy_id)
            raise AlreadyFinished(deploy_id=deploy.id, status=Text(f"status.{deploy.status}"))
        if execution is not None:
            execution.cancel(user)
        return await self.get(deploy_id)

    # --- queries -------------------------------------------------------------------------------

    async def get(self, deploy_id: int) -> Deploy:
        async with self.db.session() as session:
            deploy = await repo.get_deploy(session, deploy_id)
        if deploy is None:
            raise DeployNotFound(deploy_id=deploy_id)
        return deploy

    async def history(
        self,
        environment: str | None = None,
        status: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> Page:
        env = self.resolve_environment(environment).name if environment else None
        try:
            state = Status(status) if status else None
        except ValueError:
            raise InvalidInput(
                detail=f"status: {status[:32]} ({', '.join(s.value for s in Status)})"
            ) from None
        if page < 1:
            raise InvalidInput(detail="page >= 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(detail=f"page_size 1..{MAX_PAGE_SIZE}")
        async with self.db.session() as session:
            return await repo.history(session, environment=env, status=state, page=page, page_size=page_size)

    async def logs(self, deploy_id: int, offset: int = 0, limit: int = MAX_LOG_READ) -> LogView:
        if offset < 0:
            raise InvalidInput(detail="offset >= 0")
        limit = max(1, min(limit, MAX_LOG_READ))
        async with self.db.session() as session:
            deploy = await repo.get_deploy(session, deploy_id)
            if deploy is None:
                raise DeployNotFound(deploy_id=deploy_id)
            piece: LogSlice = await repo.read_log(session, deploy, offset, limit)
        complete = deploy.state.is_finished and piece.next_offset >= piece.size
        return LogView(deploy, piece.data, offset, piece.next_offset, complete)

    async def iter_log(self, deploy_id: int) -> AsyncIterator[bytes]:
        offset = 0
        while True:
            view = await self.logs(deploy_id, offset)
            if view.data:
                yield view.data
            if not view.data or view.next_offset >= view.deploy.log_size:
                return
            offset = view.next_offset

    async def log_tail(self, deploy_id: int, max_bytes: int = 64 * 1024) -> LogView:
        deploy = await self.get(deploy_id)
        size = deploy.log_size or len((deploy.logs or "").encode())
        return await self.logs(deploy_id, max(0, size - max_bytes), max_bytes)

    async def last_success(self, environment: str) -> Deploy | None:
        async with self.db.session() as session:
            return await repo.last_success(session, environment)

    async def rollback_target_for(self, deploy: Deploy) -> Deploy | None:
        """The version that was live before `deploy`: the previous successful deploy of its
        environment with a different commit."""
        async with self.db.session() as session:
            return await repo.last_success(
                session, deploy.environment, before_id=deploy.id, other_than=deploy.commit_hash
            )

    async def runners(self) -> list[Runner]:
        """The live processes on this database, and the environments each runs."""
        return await self.cluster.live()

    async def active(self, environment: str) -> Deploy | None:
        async with self.db.session() as session:
            return await repo.active_deploy(session, environment)

    async def estimate(self, environment: str) -> float | None:
        async with self.db.session() as session:
            return estimate_seconds(await repo.recent_durations(session, environment))

    async def attach_message(self, deploy_id: int, channel: str, ts: str) -> None:
        """Remember the Slack card of a deploy so any process can update it."""
        async with self.db.session(background=True) as session:
            await repo.update_deploy(session, deploy_id, slack_channel=channel, slack_ts=ts)

    # --- upkeep --------------------------------------------------------------------------------

    async def reap(self) -> list[int]:
        """End deploys whose lease expired by the database's clock as failed ("interrupted"),
        logs kept, whichever process owned them (see bot/deploy/leases.py)."""
        return await self.leases.reap()

    async def cleanup(
        self, *, logs_batch: int = repo.LOGS_BATCH, records_batch: int = repo.RECORDS_BATCH
    ) -> CleanupResult:
        """Retention: clear old logs, soft-delete old records, a batch per transaction so the
        database keeps answering other requests meanwhile. Every process may run it at once:
        each row is changed, and counted, by one of them."""
        now = utcnow()
        logs_cutoff = now - timedelta(days=self.config.retention.logs_days)
        records_cutoff = now - timedelta(days=self.config.retention.records_days)
        cleared = deleted = 0
        after: int | None = 0
        while after is not None:
            async with self.db.session(background=True) as session:
                done, after = await repo.clear_logs_before(
                    session, logs_cutoff, after_id=after, batch=logs_batch
                )
            cleared += done
        after = 0
        while after is not None:
            async with self.db.session(background=True) as session:
                done, after = await repo.soft_delete_before(
                    session, records_cutoff, after_id=after, batch=records_batch
                )
            deleted += done
        return CleanupResult(cleared, deleted)

    # --- internals -----------------------------------------------------------------------------

    async def _by_request_key(self, key: str) -> Deploy | None:
        async with self.db.session() as session:
            return await repo.get_by_request_key(session, key)

    async def _refuse_if_busy(self, env: Environment) -> None:
        running = await self.active(env.name)
        if running is not None:
            raise EnvironmentBusy(
                environment=env.display, deploy_id=running.id, branch=running.branch, user=running.deployed_by
            )

    async def _resolve_commit(self, env: Environment, branch: str) -> str | None:
        if not env.repo:
            return None
        try:
            commit = await git.resolve_branch(env.repo, branch)
        except git.GitError as exc:
            raise RepoUnavailable(environment=env.name, detail=str(exc)[:300]) from None
        if commit is None:
            raise UnknownBranch(branch=branch, environment=env.name)
        return commit

    def _launch(self, deploy: Deploy, env: Environment) -> None:
        execution = DeployExecution(
            deploy,
            run_spec(
                deploy, env, self._base_env, self.config.bot.cancel_grace_seconds, self.config.secret_values()
            ),
            db=self.db,
            events=self.events,
            locale=self.locale,
            timeout_minutes=env.timeout_minutes,
            runner_id=self.runner_id,
            lease_seconds=self.config.bot.lease_seconds,
        )
        self._executions[deploy.id] = execution

        async def run() -> None:
            try:
                await execution.execute()
            finally:
                self._executions.pop(deploy.id, None)

        task = asyncio.create_task(run(), name=f"deploy-{deploy.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _claimed(self, deploy: Deploy) -> None:
        """A deploy another process was asked for, now this one's to run."""
        env = self.config.environments.get(deploy.environment)
        if env is None:  # a config that lost it since: the lease runs out and the reaper ends it
            return
        self.events.emit(DeployCreated(deploy))
        self._launch(deploy, env)

    def _cancel_signalled(self, deploy_id: int) -> None:
        """Another process was asked to cancel a deploy: if it is ours, act now, not at the next
        renewal (which reads the request)."""
        if deploy_id in self._executions:
            self.leases.wake()

    async def heartbeat(self) -> None:
        """Renew the leases of this process's deploys; stop those whose lease was taken."""
        await self.leases.renew()
