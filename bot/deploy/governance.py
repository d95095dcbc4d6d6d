"""The rules a deploy must pass before anything is written (DESIGN §9): who may deploy where, which
branches an environment takes, and its lock. A refusal is a `DeployError` and an audit row; a
manager's `--force` past a branch rule is let through and audited."""

from __future__ import annotations

from bot.config import Config, Environment
from bot.deploy import freeze, policy
from bot.errors import BranchNotAllowed, EnvironmentFrozen, EnvironmentLocked, InvalidInput, NotPermitted
from bot.i18n import Text
from storage import audit, locks
from storage.db import Database
from storage.models import EnvironmentLock, utcnow

MAX_FORCE_REASON = 500


class Rules:
    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db

    async def check_deploy(
        self,
        env: Environment,
        *,
        user: str,
        branch: str,
        force: str | None,
        rollback: bool,
        now_checks: bool = True,
        source: str = "",
    ) -> str | None:
        """Refuse what the config does not allow `user` here; returns the force reason when a
        manager's --force was needed (and so used), else None. `now_checks=False` (a deploy
        scheduled for later) leaves the lock and freeze to the moment it starts."""
        if force is not None:
            force = force.strip()
            if not force or len(force) > MAX_FORCE_REASON or "\x00" in force:
                raise InvalidInput(detail=Text("reason.force_reason", {"limit": MAX_FORCE_REASON}))
        # a push to `auto_deploy_branch` is authorized by configuring it (DESIGN §10)
        pushed = source == "webhook" and bool(env.auto_deploy_branch) and branch == env.auto_deploy_branch
        if not pushed and not policy.may_deploy(env, user):
            await self.refused(env, user, "deploy")
            raise NotPermitted(environment=env.display, action=Text("action.deploy"))
        # before the branch rule: a non-manager's --force is refused as such, whatever the branch
        if force is not None and not policy.is_manager(self.config, user):
            await self.refused(env, user, f"--force {force}")
            raise NotPermitted(environment=env.display, action=Text("action.force"))
        used_force = None
        if not rollback and not policy.branch_allowed(env, branch):
            if force is not None:
                used_force = force
            else:
                await self.refused(env, user, f"branch {branch}")
                raise BranchNotAllowed(
                    environment=env.display, branch=branch, patterns=", ".join(env.allowed_branches)
                )
        if now_checks:
            await self.check_lock(env, user)
            if (window := freeze.frozen(self.config, env.name, utcnow())) is not None:
                if force is None:
                    await self.refused(env, user, f"frozen: {window[0].reason}")
                    raise EnvironmentFrozen(
                        environment=env.display,
                        reason=window[0].reason or "—",
                        until=freeze.shown(window[1], self.config.bot.timezone),
                    )
                used_force = force
        return used_force

    async def check_lock(self, env: Environment, user: str) -> None:
        """Only the holder deploys in a locked environment."""
        async with self.db.session() as session:
            lock = await locks.current(session, env.name)
        if lock is not None and lock.holder != user:
            await self.refused(env, user, f"locked by {lock.holder}")
            raise locked(env, lock)

    async def refused(self, env: Environment, user: str, what: str) -> None:
        async with self.db.session(background=True) as session:
            await audit.record(session, actor=user, action="refused", environment=env.name, detail=what)


def locked(env: Environment, lock: EnvironmentLock) -> EnvironmentLocked:
    return EnvironmentLocked(
        environment=env.display,
        holder=lock.holder,
        reason=lock.reason or "—",
        expires=lock.expires_at.strftime("%Y-%m-%d %H:%M"),
    )
