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
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from bot.config import Config, Environment
from bot.deploy import approvals, gates, git, policy, queue
from bot.deploy.cluster import Cluster
from bot.deploy.events import DeployAwaitingApproval, DeployCreated, DeployFinished, DeployQueued, EventBus
from bot.deploy.execution import DeployExecution, run_spec
from bot.deploy.governance import Rules
from bot.deploy.identity import RunnerId
from bot.deploy.leases import Leases
from bot.deploy.locks import LockDesk
from bot.deploy.logfollow import FOLLOWERS
from bot.deploy.masking import mask_text
from bot.deploy.queries import DeployQueries
from bot.deploy.schedule import Schedules, When
from bot.errors import (
    AlreadyFinished,
    CommitMissing,
    DescriptionTooLong,
    EnvironmentBusy,
    InvalidInput,
    NoRunner,
    NotPermitted,
    RepoUnavailable,
    RollbackNotEligible,
    UnknownBranch,
)
from bot.i18n import Text, t
from storage import audit
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, Runner, Status

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
INSERT_ATTEMPTS = 3  # a lost insert race is retried when the winner has already finished


class DeployService(DeployQueries):
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
        self._secrets = config.secret_values()  # masked out of what users type, too
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
            on_signal={
                "cancel": self._cancel_signalled,
                "gate": lambda deploy_id: self.gates.signalled(deploy_id),
                "follow": self._follow_signalled,
            },
            on_tick=self._start_queued,
        )
        self.rules = Rules(config, db)
        self.gates = gates.GateDesk(config, db, self._executions)
        self.approvals = approvals.Approvals(config, db, self.events, config.bot.lease_seconds)
        self.schedules = Schedules(config, db, self.rules, self.events)
        self.locks = LockDesk(config, db, self.events, self.rules)
        self.dequeuer = queue.Dequeuer(config, db, self._commit_of, config.bot.lease_seconds)

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
        queue: bool = False,
        force: str | None = None,
        at: datetime | When | None = None,
        _commit: str | None = None,
        _rollback_of: int | None = None,
    ) -> Deploy:
        """Start a deploy, here when this process runs its environment, else by handing it to a
        process that does; with `queue`, a busy environment queues it instead of refusing. `force`
        (a manager's reason) passes a branch rule or a freeze; `at` schedules it for later. With a
        `request_key` seen before, returns that deploy instead."""
        env = self.resolve_environment(environment)
        branch = git.check_branch((branch or env.default_branch).strip())
        description = mask_text((description or "").strip(), self._secrets)
        if len(description) > MAX_DESCRIPTION:
            raise DescriptionTooLong(length=len(description), limit=MAX_DESCRIPTION)
        if "\x00" in description:  # PostgreSQL text cannot hold NUL
            raise InvalidInput(detail="description: NUL")
        if request_key and (seen := await self._by_request_key(request_key)):
            return seen
        if at is not None:
            extra = dict(skip_build=skip_build, skip_migrations=skip_migrations, source=source)
            return await self.schedules.create(
                env, at, user=user, branch=branch, force=force, rollback_of=_rollback_of, commit_hash=_commit,
                description=description, slack_channel=channel, request_key=request_key, **extra,
            )  # fmt: skip
        forced = await self.rules.check_deploy(
            env, user=user, branch=branch, force=force, rollback=_rollback_of is not None, source=source
        )
        holder = await self.active(env.name)
        if holder is not None and not queue:
            raise self._busy(env, holder)
        awaiting = approvals.needed(env, rollback=_rollback_of is not None)
        here = self.cluster.runs(env.name) and not awaiting
        if not here and not await self.cluster.someone_runs(env.name):
            raise NoRunner(environment=env.display)
        row = dict(
            branch=branch,
            deployed_by=user,
            description=description,
            skip_build=skip_build,
            skip_migrations=skip_migrations,
            source=source,
            slack_channel=channel,
            request_key=request_key,
            rollback_of=_rollback_of,
            forced_by=user if forced else None,
            force_reason=forced,
        )
        commit = _commit
        for attempt in range(INSERT_ATTEMPTS):
            if holder is not None:  # busy, and asked to queue: the commit is resolved when it starts
                try:
                    deploy = await self._enqueue(env, user, forced, commit_hash=commit, **row)
                except IntegrityError:  # the same request queued it meanwhile (a double click)
                    if request_key and (seen := await self._by_request_key(request_key)):
                        return seen
                    raise
                if deploy is not None:
                    return deploy
                holder = None  # it freed meanwhile: start it now
                continue
            if commit is None:
                commit = await self._resolve_commit(env, branch)
            try:
                async with self.db.session() as session:
                    # Leased from the start, to this process (no other reaps it while it spawns) or
                    # to nobody: the process that claims it must do so within a lease.
                    deploy = await repo.insert_deploy(
                        session,
                        runner_id=self.runner_id if here else None,
                        # one awaiting approval holds its environment with no lease: nothing reaps it
                        lease_seconds=None if awaiting else self.config.bot.lease_seconds,
                        status=Status.AWAITING_APPROVAL if awaiting else Status.PENDING,
                        environment=env.name,
                        commit_hash=commit,
                        **row,
                    )
                    if forced:
                        await audit.record(
                            session, actor=user, action="force", environment=env.name,
                            deploy_id=deploy.id, detail=forced,
                        )  # fmt: skip
                    if not here and not awaiting:
                        await self.cluster.announce_pending(session)
                break
            except IntegrityError:
                # Another process won the race for this environment (or this request key).
                # When its deploy already ended in between, the environment is free again: retry.
                if request_key and (seen := await self._by_request_key(request_key)):
                    return seen
                holder = await self.active(env.name)
                if holder is not None and not queue:
                    raise self._busy(env, holder) from None
                if attempt == INSERT_ATTEMPTS - 1:
                    raise
        if awaiting:
            self.events.emit(DeployAwaitingApproval(deploy))
        elif here:  # else its owner tells, once it claims it
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
        """Cancel a deploy: one that waits (queued, scheduled, awaiting approval) ends here and
        now; one that runs is stopped by its owner, wherever it runs. Anyone's own, or anyone's for
        a manager; audited."""
        deploy = await self.get(deploy_id)
        if deploy.state.is_finished:
            raise AlreadyFinished(deploy_id=deploy.id, status=Text(f"status.{deploy.status}"))
        env = self.config.environments.get(deploy.environment)
        if not policy.may_cancel(self.config, user, deploy.deployed_by):
            if env is not None:
                await self.rules.refused(env, user, f"cancel #{deploy.id}")
            raise NotPermitted(
                environment=env.display if env else deploy.environment, action=Text("action.cancel")
            )
        if not deploy.state.is_leased:
            message = t(self.locale, "outcome.cancelled", user=user)
            async with self.db.session() as session:
                ended = await repo.transition(
                    session, deploy_id, Status.CANCELLED, cancelled_by=user, error_message=message
                )
                if ended:
                    await audit.record(
                        session,
                        actor=user,
                        action="cancel",
                        environment=deploy.environment,
                        deploy_id=deploy_id,
                    )
            if ended:
                await self.events.publish(deploy_id, DeployFinished)
                return await self.get(deploy_id)
            # it moved on meanwhile (it started, or was approved): cancel it as a running one
        execution = self._executions.get(deploy_id)
        async with self.db.session() as session:
            flagged = await repo.request_cancel(session, deploy_id, user)
            if flagged:
                await audit.record(
                    session, actor=user, action="cancel", environment=deploy.environment, deploy_id=deploy_id
                )
            if flagged and execution is None:  # another process owns it (or will): tell it now
                await self.cluster.announce_about(session, "cancel", deploy_id)
        if not flagged:
            deploy = await self.get(deploy_id)
            raise AlreadyFinished(deploy_id=deploy.id, status=Text(f"status.{deploy.status}"))
        if execution is not None:
            execution.cancel(user)
        return await self.get(deploy_id)

    async def answer_gate(
        self, deploy_id: int, *, user: str, answer: str, asked_at: datetime | None = None
    ) -> Deploy:
        """`continue` or `abort` for the gate a running deploy waits at (bot/deploy/gates.py)."""
        return await self.gates.answer(deploy_id, user, answer, asked_at=asked_at)

    async def runners(self) -> list[Runner]:
        """The live processes on this database, and the environments each runs."""
        return await self.cluster.live()

    async def attach_message(self, deploy_id: int, channel: str, ts: str) -> None:
        """Remember the Slack card of a deploy so any process can update it."""
        async with self.db.session(background=True) as session:
            await repo.update_deploy(session, deploy_id, slack_channel=channel, slack_ts=ts)

    # --- upkeep --------------------------------------------------------------------------------

    async def reap(self) -> list[int]:
        """End deploys whose lease expired by the database's clock as failed ("interrupted"),
        logs kept, whichever process owned them (see bot/deploy/leases.py)."""
        return await self.leases.reap()

    # --- internals -----------------------------------------------------------------------------

    async def _by_request_key(self, key: str) -> Deploy | None:
        async with self.db.session() as session:
            return await repo.get_by_request_key(session, key)

    @staticmethod
    def _busy(env: Environment, holder: Deploy) -> EnvironmentBusy:
        return EnvironmentBusy(
            environment=env.display, deploy_id=holder.id, branch=holder.branch, user=holder.deployed_by
        )

    async def _enqueue(self, env: Environment, user: str, forced: str | None, **row) -> Deploy | None:
        """A queued deploy; None when the environment freed meanwhile (start it instead)."""
        async with self.db.session() as session:
            if await repo.active_deploy(session, env.name) is None:
                return None
            deploy = await queue.enqueue(session, limit=env.queue_limit, environment=env.name, **row)
            if forced:
                await audit.record(
                    session,
                    actor=user,
                    action="force",
                    environment=env.name,
                    deploy_id=deploy.id,
                    detail=forced,
                )
        self.events.emit(DeployQueued(deploy))
        self.cluster.wake()  # it may be startable already (the holder ended meanwhile)
        return deploy

    async def failed_ahead(self, deploy: Deploy) -> Deploy | None:
        return await queue.failed_ahead(self.db, deploy)

    async def queue_position(self, deploy: Deploy) -> int:
        return await queue.position(self.db, deploy)

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
            gate_timeout_minutes=env.gate_timeout_minutes,
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

    async def _commit_of(self, environment: str, branch: str) -> str | None:
        return await self._resolve_commit(self.resolve_environment(environment), branch)

    async def _start_queued(self) -> None:
        """Queue the scheduled deploys whose time came, then start what waits in the queue of each
        free environment (any process may)."""
        due, missed = await self.schedules.due()
        for deploy_id in missed:
            await self.events.publish(deploy_id, DeployFinished)
        for deploy in await self.dequeuer.run():  # each started one is claimed and announced
            if (now := await self.get(deploy.id)).state.is_finished:  # its branch could not be resolved
                self.events.emit(DeployFinished(now))

    def _follow_signalled(self, deploy_id: int) -> None:
        """Someone streams this deploy's log from another process: if it is ours, store its
        output promptly for a while (bot/deploy/logfollow.py)."""
        if deploy_id in self._executions:
            FOLLOWERS.followed_elsewhere(deploy_id)

    async def announce_follow(self, deploy_id: int) -> None:
        """Tell the owner of a deploy, wherever it runs, that this process follows its log."""
        if deploy_id not in self._executions:
            async with self.db.session(background=True) as session:
                await self.cluster.announce_about(session, "follow", deploy_id)

    def _cancel_signalled(self, deploy_id: int) -> None:
        """Another process was asked to cancel a deploy: if it is ours, act now, not at the next
        renewal (which reads the request)."""
        if deploy_id in self._executions:
            self.leases.wake()

    async def heartbeat(self) -> None:
        """Renew the leases of this process's deploys; stop those whose lease was taken."""
        await self.leases.renew()
