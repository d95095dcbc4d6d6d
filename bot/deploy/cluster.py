"""This process among the others on one database: its presence, its claims, the signals it gets.

A process is present (`deploy_runners`, storage/runners.py) while it runs, renewed every
`heartbeat_seconds` with what it runs and whether it is draining; `/deploy runners` lists them, and a
trigger checks that some live process runs its environment. A deploy asked of a process that does
not run its environment is stored without an owner and announced; every process that runs it
claims unowned deploys when told (LISTEN/NOTIFY, storage/signals.py) and, as the fallback, every
`CLAIM_POLL_SECONDS`. A cancel or a gate answer given to a process that does not own the deploy is
announced the same way, and the owner acts on it at once instead of at its next renewal. With SQLite all of this
happens within one process, without signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.aio import every
from bot.deploy.identity import RunnerId
from storage import runners
from storage.db import Database
from storage.models import Deploy, Runner
from storage.signals import Listener, announce

log = logging.getLogger(__name__)

CLAIM_POLL_SECONDS = 1.0
PENDING = "pending"


class Cluster:
    def __init__(
        self,
        *,
        db: Database,
        runner: RunnerId,
        role: str,
        environments: frozenset[str],
        claims: bool,
        heartbeat_seconds: float,
        lease_seconds: float,
        on_claimed: Callable[[Deploy], None],
        on_signal: dict[str, Callable[[int], None]],
        on_tick: Callable[[], Awaitable[None]],
    ) -> None:
        """`on_signal`: what to do when another process signals about a deploy, by kind
        ("cancel": asked to cancel, "gate": a gate answered, "follow": someone streams its log)."""
        self.db = db
        self.runner = runner
        self.runner_id = str(runner)
        self.role = role
        self.environments = environments
        self.claims = claims  # False: runs only the deploys it starts itself (`deploybot deploy`)
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        self._on_claimed = on_claimed
        self._on_signal = on_signal
        self._on_tick = on_tick  # the queue: started here, claimed like any unowned deploy
        self.draining = False
        self._wake_claims = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._listener: Listener | None = None

    @property
    def claiming(self) -> bool:
        return self.claims and bool(self.environments) and not self.draining

    def runs(self, environment: str) -> bool:
        """Whether this process would run a deploy of `environment` it is asked for now."""
        return not self.draining and environment in self.environments

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._keep_alive()
        if not self.db.is_sqlite:
            self._listener = Listener(self.db.url, self._signal, self._wake_claims.set)
            self._listener.start()
        self._tasks = [
            asyncio.create_task(self._present(), name="deploybot-presence"),
            asyncio.create_task(self._claim_loop(), name="deploybot-claims"),
        ]

    def wake(self) -> None:
        """Look for work now (a deploy was queued or ended here)."""
        self._wake_claims.set()

    def drain(self) -> None:
        """Claim nothing more; other processes see this one as draining at its next renewal."""
        self.draining = True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._listener is not None:
            await self._listener.close()
        with contextlib.suppress(Exception):
            async with self.db.session(background=True) as session:
                await runners.forget(session, self.runner_id)

    # --- what others ask ---------------------------------------------------------------------------

    async def live(self) -> list[Runner]:
        async with self.db.session() as session:
            return await runners.live(session)

    async def someone_runs(self, environment: str) -> bool:
        """Whether a live process that is not draining runs `environment` (this one included)."""
        if self.runs(environment):
            return True
        return any(
            environment in runner.environment_names and not runner.draining for runner in await self.live()
        )

    @staticmethod
    async def announce_pending(session) -> None:
        await announce(session, PENDING)

    @staticmethod
    async def announce_about(session, kind: str, deploy_id: int) -> None:
        """Tell every process (the deploy's owner acts) something of `kind` about a deploy."""
        await announce(session, f"{kind}:{deploy_id}")

    # --- internals ---------------------------------------------------------------------------------

    def _signal(self, payload: str) -> None:
        if payload == PENDING:
            self._wake_claims.set()
            return
        kind, _, deploy_id = payload.partition(":")
        if kind in self._on_signal and deploy_id.isdigit():
            self._on_signal[kind](int(deploy_id))

    async def _keep_alive(self) -> None:
        async with self.db.session(background=True) as session:
            await runners.keep_alive(
                session,
                runner_id=self.runner_id,
                host=self.runner.host,
                pid=self.runner.pid,
                role=self.role,
                environments=self.environments if self.claims else (),
                draining=self.draining,
                lease_seconds=self.lease_seconds,
            )

    async def _present(self) -> None:
        await every(self.heartbeat_seconds, self._keep_alive, what="renewing this process's presence")

    async def _claim_loop(self) -> None:
        await every(CLAIM_POLL_SECONDS, self._work, what="claiming deploys", wake=self._wake_claims)

    async def _work(self) -> None:
        await self._on_tick()
        if self.claiming:
            await self.claim()

    async def claim(self) -> list[Deploy]:
        """Take the unowned pending deploys of this process's environments and start them."""
        async with self.db.session(background=True) as session:
            waiting = await runners.unclaimed(session, self.environments)
        if not waiting or not self.claiming:
            return []
        async with self.db.session(background=True) as session:
            claimed = await runners.claim_unowned(session, waiting, self.runner_id, self.lease_seconds)
        for deploy in claimed:
            self._on_claimed(deploy)
        return claimed
