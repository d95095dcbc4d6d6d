"""Several processes on one database (DESIGN §12), as several services in one test, each on its own
connection pool, with real scripts: a deploy asked of a process that does not run its environment
is claimed and run by one that does; nobody running it is a clear refusal that leaves nothing
behind; a cancel reaches the owner through a signal (PostgreSQL) within moments, also after the
signal connection was cut; a deploy nobody claims ends with that said; live processes are listed.
Real processes are in tests/e2e/test_several_processes.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sqlalchemy import func, select, text

from bot import errors
from bot.config import ConfigError
from bot.i18n import t
from storage import repository as repo
from storage import runners
from storage.db import Database
from storage.models import Deploy, Status
from tests.conftest import ADMIN, SCRIPTS, gone
from tests.engine.test_leases import WAITER, row, wait_for_pid
from tests.engine.test_service import _service, wait_for_status


def only(config, *environments: str):
    """`config` for a process that runs only `environments` (`worker --environments`)."""
    return dataclasses.replace(config, runs=frozenset(environments))


def two_envs(make_config, **bot):
    return make_config(
        bot=bot or None,
        environments={"production": {"script": WAITER}, "staging": {"script": str(SCRIPTS / "steps.sh")}},
    )


async def deploy_count(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(Deploy))).scalar_one()


async def test_a_deploy_asked_of_a_process_that_does_not_run_it_is_run_by_one_that_does(
    make_config, tmp_path
):
    config = two_envs(make_config)
    pid_file = tmp_path / "pid"
    async with (
        _service(only(config, "staging")) as front,
        _service(only(config, "production"), PID_FILE=str(pid_file)) as back,
    ):
        deploy = await front.trigger("production", "main", user=ADMIN)
        assert deploy.runner_id is None and deploy.state is Status.PENDING
        running = await wait_for_status(front, deploy.id, Status.RUNNING)
        assert running.runner_id == back.runner_id
        assert back.running_ids == [deploy.id] and front.running_ids == []
        await wait_for_pid(pid_file)
        await front.cancel(deploy.id, user=ADMIN)
        done = await wait_for_status(front, deploy.id, Status.CANCELLED)
        assert ADMIN in (done.error_message or "")


async def test_no_live_process_running_the_environment_is_refused_and_leaves_nothing(make_config):
    config = two_envs(make_config)
    async with _service(only(config, "staging")) as front:
        with pytest.raises(errors.NoRunner) as refused:
            await front.trigger("production", "main", user=ADMIN)
        assert refused.value.code == "no_runner"
        assert "production" in refused.value.message("en")
        assert await deploy_count(front.db) == 0
        # a process that runs it but is draining counts as none
        async with _service(only(config, "production")) as back:
            back.drain()
            await back.cluster._keep_alive()  # its next renewal says so
            with pytest.raises(errors.NoRunner):
                await front.trigger("production", "main", user=ADMIN)
            assert await deploy_count(front.db) == 0


async def test_a_draining_process_hands_new_deploys_to_another(make_config, tmp_path):
    config = two_envs(make_config)
    async with _service(config) as old, _service(config, PID_FILE=str(tmp_path / "pid")) as new:
        old.drain()
        deploy = await old.trigger("production", "main", user=ADMIN)
        running = await wait_for_status(old, deploy.id, Status.RUNNING)
        assert running.runner_id == new.runner_id and old.running_ids == []
        await new.cancel(deploy.id, user=ADMIN)
        await wait_for_status(new, deploy.id, Status.CANCELLED)


async def test_one_deploy_is_claimed_by_exactly_one_of_many_claimers(make_config):
    config = two_envs(make_config)
    db = Database(config.database_url)
    await db.upgrade()
    try:
        async with db.session() as session:
            deploy = await repo.insert_deploy(
                session, environment="production", branch="main", deployed_by=ADMIN, lease_seconds=30
            )

        async def claim(n: int) -> list[Deploy]:
            async with db.session(background=True) as session:
                return await runners.claim_unowned(session, [deploy.id], f"runner-{n}", 30)

        results = await asyncio.gather(*(claim(n) for n in range(8)), return_exceptions=True)
        won = [r for r in results if isinstance(r, list) and r]
        assert len(won) == 1, results
        assert (await row(db, deploy.id)).runner_id == won[0][0].runner_id
    finally:
        await db.dispose()


async def test_a_deploy_nobody_claims_ends_saying_so(make_config):
    """The only process that ran the environment stopped after the trigger was accepted: the
    deploy's lease runs out and the reaper ends it, naming why."""
    config = two_envs(make_config)
    async with _service(only(config, "staging")) as front:
        async with _service(only(config, "production")) as back:
            back.cluster.claims = False  # alive, as far as the table says, but never claims
            deploy = await front.trigger("production", "main", user=ADMIN)
        async with asyncio.timeout(30):  # the lease (3 s) runs out; the reaper job does this
            while deploy.id not in await front.reap():
                await asyncio.sleep(0.2)
        done = await row(front.db, deploy.id)
        assert done.error_message == t(config.locale, "outcome.unclaimed")
        assert done.started_at is None


async def test_live_processes_are_listed_with_what_they_run(make_config):
    config = two_envs(make_config)
    async with _service(only(config, "staging")) as a, _service(config) as b:
        listed = {r.runner_id: r for r in await a.runners()}
        assert listed[a.runner_id].environment_names == ("staging",)
        assert listed[b.runner_id].environment_names == ("production", "staging")
        assert listed[a.runner_id].role == "serve" and not listed[a.runner_id].draining
    async with _service(config) as c:
        assert [r.runner_id for r in await c.runners()] == [c.runner_id]  # the others said goodbye


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_cancel_asked_of_another_process_reaches_the_owner_at_once(make_config, tmp_path):
    """With renewals every 5 s, only the signal can stop the script within the second asked
    (the bound here is 2.5 s, half a renewal period, to stay clear of a busy machine)."""
    config = two_envs(make_config, heartbeat_seconds=5, lease_seconds=20, cancel_grace_seconds=1)
    pid_file = tmp_path / "pid"
    async with _service(only(config, "staging")) as front, _service(config, PID_FILE=str(pid_file)) as owner:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        pid = await wait_for_pid(pid_file)
        await wait_for_status(owner, deploy.id, Status.RUNNING)
        await asyncio.sleep(0.5)  # past the renewal that follows the start
        began = time.monotonic()
        await front.cancel(deploy.id, user=ADMIN)
        assert await gone(pid, timeout=2.5), "the owner did not act on the cancel signal"
        assert time.monotonic() - began < 2.5
        await wait_for_status(front, deploy.id, Status.CANCELLED)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_signals_arrive_again_after_the_listening_connection_is_cut(make_config, tmp_path):
    config = two_envs(make_config, heartbeat_seconds=5, lease_seconds=20, cancel_grace_seconds=1)
    pid_file = tmp_path / "pid"
    async with _service(only(config, "staging")) as front, _service(config, PID_FILE=str(pid_file)) as owner:
        listener = owner.cluster._listener
        await asyncio.wait_for(listener.connected.wait(), 10)
        async with front.db.session() as session:
            cut = await session.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.server_pid}
            )
            assert cut.scalar_one()
        async with asyncio.timeout(10):
            while listener.connected.is_set():
                await asyncio.sleep(0.05)
            await listener.connected.wait()
        deploy = await owner.trigger("production", "main", user=ADMIN)
        pid = await wait_for_pid(pid_file)
        await wait_for_status(owner, deploy.id, Status.RUNNING)
        await asyncio.sleep(0.5)
        await front.cancel(deploy.id, user=ADMIN)
        assert await gone(pid, timeout=2.5), "no signal after the reconnect"


def test_a_process_checks_only_the_scripts_it_runs(tmp_path, db_url):
    from bot.config import parse_config

    raw = {
        "bot": {"admins": [ADMIN], "database_url": db_url},
        "environments": {
            "production": {"script": str(tmp_path / "elsewhere.sh"), "secrets": ["PROD_TOKEN"]},
            "staging": {"script": str(SCRIPTS / "steps.sh")},
        },
    }
    path = tmp_path / "deploybot.toml"
    with pytest.raises(ConfigError, match="production.script"):
        parse_config(raw, path, {})
    config = parse_config(raw, path, {}, runs=["staging"])  # production's script and secret live elsewhere
    assert config.runner_environments == {"staging"}
    with pytest.raises(ConfigError, match="no environment 'prod'"):
        parse_config(raw, path, {}, runs=["prod"])
    assert parse_config(raw, path, {}, runs=[]).runner_environments == frozenset()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_processes_started_together_on_an_empty_database_all_migrate_it(db_url):
    """Each would create the same tables: the migration lock lets one at a time through."""
    databases = [Database(db_url) for _ in range(5)]
    try:
        results = await asyncio.gather(*(db.ensure_schema() for db in databases), return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert await deploy_count(databases[0]) == 0
    finally:
        for db in databases:
            await db.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_follower_in_another_process_makes_the_owner_store_promptly(make_config, tmp_path):
    """No one follows the log in the owner's process; a stream served by another process says so
    with a signal, and the owner stores trickling output at once for a while."""
    from bot.deploy.logfollow import FOLLOWERS

    config = two_envs(make_config)
    pid_file = tmp_path / "pid"
    async with _service(only(config, "staging")) as front, _service(config, PID_FILE=str(pid_file)) as owner:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_pid(pid_file)
        assert not FOLLOWERS.followed(deploy.id)
        await front.announce_follow(deploy.id)
        async with asyncio.timeout(5):
            while not FOLLOWERS.followed(deploy.id):
                await asyncio.sleep(0.05)
        await owner.cancel(deploy.id, user=ADMIN)
        await wait_for_status(owner, deploy.id, Status.CANCELLED)
