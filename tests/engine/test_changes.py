"""What a deploy would change: the commits between the live commit and the target, read from the
environment's local repository (real git), at most ten of them and how many in all."""

from __future__ import annotations

from pathlib import Path

from bot.config import Environment
from bot.deploy.changes import MAX_COMMITS, changes


def env_of(git_repo, **keys) -> Environment:
    return Environment(name="production", script=Path("/bin/true"), **{"repo": str(git_repo.path), **keys})


async def test_forward_changes_list_the_newest_ten_and_count_the_rest(git_repo):
    made = [git_repo.commit(f"change {n}") for n in range(12)]
    found = await changes(env_of(git_repo), git_repo.second, made[-1])
    assert found is not None and not found.backwards
    assert found.total == 12 and found.more == 2 and len(found.commits) == MAX_COMMITS
    assert found.commits[0] == (made[-1], "change 11")
    assert found.commits[-1] == (made[2], "change 2")


async def test_a_rollback_shows_the_commits_it_takes_away(git_repo):
    third = git_repo.commit("third")
    found = await changes(env_of(git_repo), third, git_repo.first)
    assert found is not None and found.backwards
    assert [subject for _, subject in found.commits] == ["third", "second"] and found.more == 0


async def test_a_compare_link_is_made_from_the_environment(git_repo):
    url = "https://git.example.com/shop/compare/{from}...{to}"
    found = await changes(env_of(git_repo, compare_url=url), git_repo.first, git_repo.second)
    assert found.compare_url == f"https://git.example.com/shop/compare/{git_repo.first}...{git_repo.second}"


async def test_nothing_to_compare_is_none(git_repo, tmp_path):
    env = env_of(git_repo)
    assert await changes(env, None, git_repo.second) is None  # nothing live yet
    assert await changes(env, git_repo.second, git_repo.second) is None
    assert await changes(env, git_repo.first, "f" * 40) is None  # unknown commit
    assert await changes(env_of(git_repo, repo=""), git_repo.first, git_repo.second) is None
    remote = Environment(name="p", script=Path("/bin/true"), repo="https://example.com/x.git")
    assert await changes(remote, git_repo.first, git_repo.second) is None
