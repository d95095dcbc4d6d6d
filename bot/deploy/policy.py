"""Who may do what where (DESIGN §9): pure rules over the config, asked by the service before it
writes anything.

An actor is a Slack user id or `api:<token name>`. Slack lets only admins reach the bot at all, and a
REST token may do what an admin may; so a list left at its default (empty) allows everyone who got
this far, and a list that is set allows only those it names.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from bot.config import Config, Environment


def _named(allowed: tuple[str, ...], actor: str) -> bool:
    return not allowed or actor in allowed


def may_deploy(env: Environment, actor: str) -> bool:
    """Deploy, roll back and lock in `env`."""
    return _named(env.deployers, actor)


def is_manager(config: Config, actor: str) -> bool:
    """Force past a freeze or a branch rule, unlock others' locks, cancel anyone's deploy."""
    return _named(config.bot.managers, actor)


def may_approve(env: Environment, actor: str) -> bool:
    """Approve or reject deploys of `env`, and answer its gates."""
    return _named(env.approvers, actor)


def branch_allowed(env: Environment, branch: str) -> bool:
    """Whether `branch` (or tag) matches one of the environment's `allowed_branches` globs, as
    GitHub's deployment branch policies do (`release/*` matches `release/1.2`)."""
    return not env.allowed_branches or any(fnmatchcase(branch, p) for p in env.allowed_branches)


def may_cancel(config: Config, actor: str, requested_by: str) -> bool:
    """One's own deploy, or anyone's for a manager."""
    return actor == requested_by or is_manager(config, actor)
