"""Branch name rules, and commit resolution against an environment's repository.

Only this module runs git, always without a shell, without a terminal to prompt on, and with the
bot's environment minus its secrets (`bot.deploy.environ`).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from bot.deploy.environ import without_secrets
from bot.errors import InvalidBranch
from bot.i18n import Text

MAX_BRANCH = 100
SHA = re.compile(r"^[0-9a-f]{40}$")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\;&|<>$`'\"()!#{}]")
GIT_TIMEOUT = 30.0


def check_branch(branch: str) -> str:
    """Return the branch if it is a safe git ref name (git check-ref-format rules, stricter),
    else raise InvalidBranch. `{` and `}` are refused outright, which also covers `@{`."""

    def refuse(reason_key: str, **params) -> InvalidBranch:
        shown = "".join("\ufffd" if _invisible(char) else char for char in branch[:120])
        return InvalidBranch(branch=shown, reason=Text(reason_key, params))

    if not branch:
        raise refuse("reason.branch_empty")
    if len(branch) > MAX_BRANCH:
        raise refuse("reason.branch_too_long", limit=MAX_BRANCH)
    if branch.startswith("-"):
        raise refuse("reason.branch_leading_dash")
    if _FORBIDDEN.search(branch) or any(_invisible(char) for char in branch):
        raise refuse("reason.branch_chars")
    parts = branch.split("/")
    if (
        ".." in branch
        or branch == "@"
        or branch.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise refuse("reason.branch_rules")
    return branch


def _invisible(char: str) -> bool:
    """Controls, format characters (bidi overrides such as U+202E, zero-width joiners), line and
    paragraph separators, unassigned and private-use code points: nothing a branch name shows
    honestly, and a bidi override could make `main` of a branch that is not."""
    return unicodedata.category(char)[0] in "CZ"


class GitError(Exception):
    pass


def _git_env() -> dict[str, str]:
    return {**without_secrets(os.environ), "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


async def _git(*args: str, timeout: float = GIT_TIMEOUT) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_git_env(),
        )
    except OSError as exc:
        raise GitError(str(exc)) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from None
    if proc.returncode not in (0, 2) and args[0] == "ls-remote":
        raise GitError(err.decode(errors="replace").strip() or f"git exited {proc.returncode}")
    return proc.returncode, out.decode(errors="replace")


def _is_local(repo: str) -> bool:
    return "://" not in repo and not re.match(r"^[\w.-]+@[\w.-]+:", repo)


async def resolve_branch(repo: str, branch: str) -> str | None:
    """The full commit hash `branch` points at in `repo` (a branch, a tag, or a full sha),
    or None when the repository has no such ref. Raises GitError when the repo is unreadable."""
    if SHA.match(branch):
        return branch if await commit_exists(repo, branch) else None
    code, out = await _git(
        "ls-remote", "--exit-code", "--", repo, f"refs/heads/{branch}", f"refs/tags/{branch}"
    )
    if code == 2:
        return None
    refs = dict(reversed(line.split("\t", 1)) for line in out.splitlines() if "\t" in line)
    for name in (f"refs/heads/{branch}", f"refs/tags/{branch}^{{}}", f"refs/tags/{branch}"):
        if name in refs:
            return refs[name]
    return None


async def commit_exists(repo: str, sha: str) -> bool:
    """Whether `sha` is a commit in `repo`. Remote repositories are asked with a shallow fetch."""
    if _is_local(repo):
        if not Path(repo).exists():
            raise GitError(f"no such repository: {repo}")
        code, _ = await _git("-C", repo, "cat-file", "-e", f"{sha}^{{commit}}")
        return code == 0
    with tempfile.TemporaryDirectory(prefix="deploybot-git-") as scratch:
        await _git("init", "--bare", "-q", scratch)
        code, _ = await _git("-C", scratch, "fetch", "-q", "--depth=1", "--filter=blob:none", repo, sha)
        return code == 0


async def commits_between(repo: str, old: str, new: str, limit: int) -> tuple[list[tuple[str, str]], int]:
    """The commits `new` has that `old` has not (`git log old..new`), newest first: up to `limit`
    of them as (sha, subject), and how many there are in all. Local repositories only (a remote one
    raises GitError: its history is not here to read)."""
    if not _is_local(repo):
        raise GitError("the history of a remote repository is not read")
    for sha in (old, new):
        if not SHA.match(sha):
            raise GitError(f"not a full commit hash: {sha[:60]}")
    code, count = await _git("-C", repo, "rev-list", "--count", f"{old}..{new}")
    if code != 0:
        raise GitError(f"git rev-list exited {code}")
    code, out = await _git("-C", repo, "log", f"--max-count={limit}", "--format=%H%x09%s", f"{old}..{new}")
    if code != 0:
        raise GitError(f"git log exited {code}")
    commits = [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]
    return commits, int(count.strip() or 0)


async def fetch_commit(repo: str, sha: str, *, timeout: float = GIT_TIMEOUT) -> bool:
    """Make sure a local repository has commit `sha`, fetching it from its `origin` when it lacks
    it. Whether it has it now; remote repositories are left alone (False: the script fetches)."""
    if not _is_local(repo) or not SHA.match(sha):
        return False
    if await commit_exists(repo, sha):
        return True
    code, _ = await _git("-C", repo, "remote", "get-url", "origin", timeout=timeout)
    if code != 0:
        return False
    await _git("-C", repo, "fetch", "-q", "--no-tags", "origin", sha, timeout=timeout)
    return await commit_exists(repo, sha)
