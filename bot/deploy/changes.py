"""What a deploy would change (DESIGN §9): the commits between the environment's live commit and
the target, shown on cards, approval requests and the rollback modal, with a compare link when the
environment has a `compare_url`. A rollback goes back: its changes are the commits it takes away."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Environment
from bot.deploy import git

MAX_COMMITS = 10


@dataclass(frozen=True)
class Changes:
    live: str  # the commit live now
    target: str
    commits: tuple[tuple[str, str], ...]  # (sha, subject), newest first, at most MAX_COMMITS
    total: int  # how many in all ("…and N more" = total - len(commits))
    backwards: bool  # the target is older: these commits are taken away
    compare_url: str | None

    @property
    def more(self) -> int:
        return self.total - len(self.commits)


async def changes(env: Environment, live: str | None, target: str | None) -> Changes | None:
    """None when there is nothing to compare (no live commit, no target commit, the same commit,
    or no local repository to read)."""
    if not live or not target or live == target or not env.repo:
        return None
    try:
        commits, total = await git.commits_between(env.repo, live, target, MAX_COMMITS)
        backwards = False
        if total == 0:  # the target is behind the live commit: a rollback
            commits, total = await git.commits_between(env.repo, target, live, MAX_COMMITS)
            backwards = total > 0
    except git.GitError:
        return None
    url = env.compare_url.format(**{"from": live, "to": target}) if env.compare_url else None
    return Changes(live, target, tuple(commits), total, backwards, url)
