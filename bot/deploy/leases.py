"""Leases: this process's hold on the deploys it runs, and the reaper of everyone's expired ones.

A deploy belongs to the process named by its `runner_id` until its `lease_expires_at`, both judged
by the database's clock (DESIGN §2, §12): the owner renews the lease every `heartbeat_seconds`;
whichever process finds a lease expired ends that deploy as interrupted. No process's own clock
decides anything: a process whose clock is ahead, or that was paused for longer than a lease,
reaps nothing that the database still counts as leased.

Reaping never kills a live owner's script. The reaper kills only its own scripts (through their
execution) and those whose owner is provably dead on this very machine (bot/deploy/identity.py).
An owner that is alive elsewhere, only paused or cut off, finds its renewal matching nothing once
it is back and stops its script itself, writing nothing more (DeployExecution.lease_lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.aio import every
from bot.deploy.events import DeployFinished, EventBus
from bot.deploy.identity import RunnerId, owner_is_provably_dead
from bot.deploy.runner import stop_orphan
from bot.i18n import t
from storage import repository as repo
from storage.models import Deploy

if TYPE_CHECKING:
    from bot.deploy.execution import DeployExecution
    from storage.db import Database

log = logging.getLogger(__name__)


class Leases:
    def __init__(
        self,
        *,
        db: Database,
        events: EventBus,
        executions: Mapping[int, DeployExecution],
        runner: RunnerId,
        lease_seconds: float,
        heartbeat_seconds: float,
        locale: str,
    ) -> None:
        self.db = db
        self.events = events
        self.executions = executions  # the service's own, live: the deploys this process runs
        self.runner = runner
        self.runner_id = str(runner)
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.locale = locale
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Renew now rather than at the next tick (a cancel was asked of this process's deploy)."""
        self._wake.set()

    async def keep(self) -> None:
        """Renew every `heartbeat_seconds`, or at once when woken, for as long as the task runs."""
        # A failed renewal (the database away) is retried at the next tick: the lease outlives
        # one miss, lease_seconds being more than twice heartbeat_seconds.
        await every(self.heartbeat_seconds, self.renew, what="renewing leases", wake=self._wake)

    async def renew(self) -> None:
        """Renew the leases of this process's deploys, stop those whose lease was taken (reaped
        while we were paused or cut off), and act on cancels and gate answers given to another
        process (the fallback for a lost signal)."""
        executions = dict(self.executions)
        if not executions:
            return
        async with self.db.session(background=True) as session:
            renewal = await repo.heartbeat(session, self.runner_id, list(executions), self.lease_seconds)
        for deploy_id, execution in executions.items():
            if deploy_id not in renewal.renewed:
                execution.lease_lost()  # a no-op once it is writing its own end
            elif execution.gates.waiting:
                execution.check_gate()
        for deploy_id, user in renewal.cancels.items():
            if execution := self.executions.get(deploy_id):
                execution.cancel(user)

    async def reap(self) -> list[int]:
        """End every deploy whose lease expired by the database's clock as failed ("interrupted"),
        logs kept, whichever process owned it. Returns the ids this call ended."""
        reaped = []
        async with self.db.session(background=True) as session:
            expired = await repo.stale_deploys(session, self.lease_seconds)
        for deploy in expired:
            async with self.db.session(background=True) as session:
                # only if still expired: a renewal that came in meanwhile wins, and nothing is killed
                # a deploy nobody ever claimed was never started: say so rather than "interrupted"
                unclaimed = deploy.runner_id is None and deploy.status == "pending"
                key = "outcome.unclaimed" if unclaimed else "outcome.interrupted"
                message = t(self.locale, key)
                if not await repo.reap(session, deploy.id, self.lease_seconds, error_message=message):
                    continue
            reaped.append(deploy.id)
            # told before our own execution (if it is ours) stops and says it lost the deploy
            await self.events.publish(deploy.id, DeployFinished)
            self._stop_script(deploy)
        if reaped:
            log.warning("reaped interrupted deploys: %s", reaped)
        return reaped

    def _stop_script(self, deploy: Deploy) -> None:
        """Stop the script of a deploy just reaped where that cannot hit a live owner's: our own,
        or one whose owner is provably dead here (its DEPLOY_ID checked, so a recycled pid is
        never killed either)."""
        if deploy.runner_id == self.runner_id:
            if execution := self.executions.get(deploy.id):
                execution.lease_lost()
            return
        owner = RunnerId.parse(deploy.runner_id)
        if (
            deploy.runner_pid
            and owner_is_provably_dead(owner, self.runner)
            and stop_orphan(deploy.runner_pid, deploy.id)
        ):
            log.warning("deploy #%s: stopped the script its dead bot left running", deploy.id)
