"""Approval by a second pair of eyes (DESIGN §9).

A deploy to an environment with `approval = "required"` is created `awaiting_approval` (it holds the
environment but has no lease, so nothing reaps it), or `queued`/`scheduled` and approved while it
waits. Approving, rejecting and expiring are each one conditional UPDATE on a deploy not yet
approved, so a double click approves once and of an approval racing a rejection the first wins, with
any number of processes. An approved deploy that holds its environment becomes an unowned `pending`
deploy, announced, and is claimed like any other; one still waiting starts when its turn comes.
"""

from __future__ import annotations

from bot.config import Config, Environment
from bot.deploy import policy
from bot.deploy.cluster import Cluster
from bot.deploy.events import DeployApproved, DeployFinished, EventBus
from bot.errors import DeployNotFound, NotAwaitingApproval, NotPermitted, SelfApproval
from bot.i18n import Text, t
from storage import audit, waiting
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy


def needed(env: Environment, *, rollback: bool) -> bool:
    return env.approval == "required" and (env.approval_for_rollback or not rollback)


class Approvals:
    def __init__(self, config: Config, db: Database, events: EventBus, lease_seconds: float) -> None:
        self.config = config
        self.db = db
        self.events = events
        self.lease_seconds = lease_seconds

    async def approve(self, deploy_id: int, user: str) -> Deploy:
        deploy, env = await self._checked(deploy_id, user, "approve")
        if deploy.deployed_by == user:
            await self._refused(env, user, deploy, "self-approval")
            raise SelfApproval(deploy_id=deploy.id)
        async with self.db.session() as session:
            approved, started = await waiting.approve(
                session, deploy.id, user, lease_seconds=self.lease_seconds
            )
            if not approved:
                raise await self._too_late(deploy.id)
            if started:  # it held its environment: unowned now, leased for the claim, announced
                await Cluster.announce_pending(session)
            await audit.record(
                session, actor=user, action="approve", environment=env.name, deploy_id=deploy.id
            )
        await self.events.publish(deploy.id, DeployApproved)
        return await self._get(deploy.id)

    async def reject(self, deploy_id: int, user: str) -> Deploy:
        deploy, env = await self._checked(deploy_id, user, "reject")
        message = t(self.config.locale, "outcome.rejected", user=user)
        async with self.db.session() as session:
            if not await repo.call_off(
                session, waiting.unapproved(deploy_id=deploy.id), message, cancelled_by=user
            ):
                raise await self._too_late(deploy.id)
            await audit.record(
                session, actor=user, action="reject", environment=env.name, deploy_id=deploy.id
            )
        await self.events.publish(deploy.id, DeployFinished)
        return await self._get(deploy.id)

    async def expire(self) -> list[int]:
        """End as cancelled ("approval expired") every unapproved deploy older than its
        environment's `approval_timeout_minutes`. Safe in every process: each row ends once."""
        message = t(self.config.locale, "outcome.approval_expired")
        ended: list[int] = []
        for env in self.config.environments.values():
            if env.approval != "required":
                continue
            late = waiting.unapproved(
                environment=env.name, older_than_seconds=env.approval_timeout_minutes * 60
            )
            async with self.db.session(background=True) as session:
                ids = await repo.call_off(session, late, message)
                for deploy_id in ids:
                    await audit.record(
                        session, actor="deploybot", action="expire", environment=env.name, deploy_id=deploy_id
                    )
            ended += ids
        for deploy_id in ended:
            await self.events.publish(deploy_id, DeployFinished)
        return ended

    # --- internals ---------------------------------------------------------------------------------

    async def _get(self, deploy_id: int) -> Deploy:
        async with self.db.session() as session:
            return await repo.get_deploy(session, deploy_id)

    async def _checked(self, deploy_id: int, user: str, what: str) -> tuple[Deploy, Environment]:
        deploy = await self._get(deploy_id)
        if deploy is None:
            raise DeployNotFound(deploy_id=deploy_id)
        env = self.config.environments.get(deploy.environment)
        waits = env is not None and needed(env, rollback=deploy.rollback_of is not None)
        if not waits or deploy.state.is_finished or deploy.approved_by:
            raise await self._too_late(deploy.id)
        if not policy.may_approve(env, user):
            await self._refused(env, user, deploy, what)
            raise NotPermitted(environment=env.display, action=Text("action.approve"))
        return deploy, env

    async def _too_late(self, deploy_id: int) -> Exception:
        """Why a deploy cannot be approved or rejected (any more): ended, or approved already."""
        deploy = await self._get(deploy_id)
        if deploy.approved_by and not deploy.state.is_finished:
            state = Text("reason.approved_by", {"user": deploy.approved_by})
        else:
            state = Text(f"status.{deploy.status}")
        return NotAwaitingApproval(deploy_id=deploy.id, state=state)

    async def _refused(self, env: Environment, user: str, deploy: Deploy, what: str) -> None:
        async with self.db.session(background=True) as session:
            await audit.record(
                session, actor=user, action="refused", environment=env.name, deploy_id=deploy.id, detail=what
            )
