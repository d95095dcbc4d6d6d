"""What the service answers without changing anything: one deploy, the history, logs, estimates;
and the retention job. `DeployService` (service.py) is this plus the actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from bot.config import Config, Environment
from bot.deploy.changes import Changes, changes
from bot.deploy.progress import estimate_seconds
from bot.errors import DeployNotFound, InvalidInput, UnknownEnvironment
from storage import audit as audit_trail
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, Status, utcnow
from storage.repository import LogSlice, Page

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
    audit_deleted: int = 0


class DeployQueries:
    config: Config
    db: Database

    def resolve_environment(self, name: str | None) -> Environment:
        env = self.config.environment(name or "")
        if env is None:
            raise UnknownEnvironment(name=(name or "")[:64], choices=", ".join(self.config.environments))
        return env

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

    async def audit(
        self, environment: str | None = None, page: int = 1, page_size: int = 20
    ) -> audit_trail.AuditPage:
        """The audit trail, newest first, of one environment or all."""
        env = self.resolve_environment(environment).name if environment else None
        if page < 1:
            raise InvalidInput(detail="page >= 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(detail=f"page_size 1..{MAX_PAGE_SIZE}")
        async with self.db.session() as session:
            return await audit_trail.page(session, environment=env, page=page, page_size=page_size)

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

    async def active(self, environment: str) -> Deploy | None:
        async with self.db.session() as session:
            return await repo.active_deploy(session, environment)

    async def estimate(self, environment: str) -> float | None:
        async with self.db.session() as session:
            return estimate_seconds(await repo.recent_durations(session, environment))

    async def changes_for(self, deploy: Deploy) -> Changes | None:
        """What `deploy` would change against the version live in its environment now."""
        env = self.config.environments.get(deploy.environment)
        live = await self.last_success(deploy.environment)
        if env is None or live is None:
            return None
        return await changes(env, live.commit_hash, deploy.commit_hash)

    # --- retention ---------------------------------------------------------------------------------

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
        # the audit trail is kept as long as the deploy records
        async with self.db.session(background=True) as session:
            forgotten = await audit_trail.forget_before(session, records_cutoff)
        return CleanupResult(cleared, deleted, forgotten)
