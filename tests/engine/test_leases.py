"""Leases judged by the database's clock, and reaping that never kills a live owner's script
(DESIGN §2, §12), on a real database (SQLite and PostgreSQL) with real scripts and processes.

- storage: the claim takes the lease, a renewal extends only its owner's active deploys, writes
  that name an owner change nothing once the deploy is not its own, and the reaper's
  compare-and-set loses to a renewal that came in first;
- the clock: a lease is expired or not by the database's time only, however far this process's
  clock is off (monkeypatched here; a whole process under faketime below);
- a lost lease: an owner paused past its lease is reaped by another service without its live
  script being killed; once it runs again it stops the script itself and writes nothing more,
  found by its renewal or by its next write; an owner paused in the middle of a write holds the
  reaper up for seconds only; the same with a real `python -m bot deploy` process stopped with
  SIGSTOP;
- the migration keeps the count triggers.

Who counts as a provably dead owner is tested in test_identity.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import DBAPIError

from bot.deploy.events import DeployFinished, DeployLost
from storage import repository as repo
from storage.db import BACKGROUND_IDLE_IN_TRANSACTION_MS, Database
from storage.models import Deploy, LogChunk, Status, db_now, seconds_after
from tests.conftest import ADMIN, SCRIPTS, alive, gone
from tests.engine.test_service import _service, wait_for_status

WAITER = str(SCRIPTS / "pid_and_wait.sh")


async def insert_leased(session, environment: str, runner: str, lease: float = 10) -> Deploy:
    return await repo.insert_deploy(
        session,
        environment=environment,
        branch="main",
        deployed_by=ADMIN,
        runner_id=runner,
        lease_seconds=lease,
    )


async def set_lease(db, deploy_id: int, seconds_from_now: float) -> None:
    """Move a deploy's lease to the database's now plus `seconds_from_now` (negative: expired)."""
    async with db.session() as session:
        await session.execute(
            update(Deploy)
            .where(Deploy.id == deploy_id)
            .values(lease_expires_at=seconds_after(db_now(), seconds_from_now))
        )


async def row(db, deploy_id: int) -> Deploy:
    async with db.session() as session:
        return await repo.get_deploy(session, deploy_id, include_deleted=True)


# --- storage ---------------------------------------------------------------------------------------


async def test_the_claim_takes_the_lease_and_a_renewal_extends_only_its_owners(db):
    async with db.session() as session:
        mine = await insert_leased(session, "a", "A")
        theirs = await insert_leased(session, "b", "B")
        ended = await insert_leased(session, "c", "A")
    async with db.session() as session:
        assert not await repo.claim(session, mine.id, "B", 10), "leased to A: B may not claim it"
        assert await repo.claim(session, mine.id, "A", 10, runner_host="h", runner_pid=42)
        assert await repo.claim(session, theirs.id, "B", 10)
        assert await repo.claim(session, ended.id, "A", 10)
        assert await repo.transition(session, ended.id, Status.SUCCESS, owner="A")
        await repo.request_cancel(session, mine.id, "U0CANCEL1")
    claimed = await row(db, mine.id)
    assert (claimed.status, claimed.runner_id, claimed.runner_pid) == ("running", "A", 42)
    assert claimed.lease_expires_at - claimed.started_at == timedelta(seconds=10)  # one clock, the database's

    for deploy_id in (mine.id, theirs.id, ended.id):
        await set_lease(db, deploy_id, -5)
    before = {d: (await row(db, d)).lease_expires_at for d in (theirs.id, ended.id)}
    async with db.session() as session:
        renewal = await repo.heartbeat(session, "A", [mine.id, theirs.id, ended.id], 10)
    assert renewal.renewed == {mine.id}
    assert renewal.cancels == {mine.id: "U0CANCEL1"}
    assert {d: (await row(db, d)).lease_expires_at for d in before} == before
    async with db.session() as session:
        assert [d.id for d in await repo.stale_deploys(session, 10)] == [theirs.id]


async def test_writes_that_name_an_owner_change_nothing_once_it_is_not_theirs(db):
    async with db.session() as session:
        deploy = await insert_leased(session, "a", "A")
        await repo.claim(session, deploy.id, "A", 10)
    with pytest.raises(repo.LeaseLost):
        async with db.session() as session:
            await repo.append_log(session, deploy.id, 0, b"from B\n", owner="B")
    with pytest.raises(repo.LeaseLost):
        async with db.session() as session:
            await repo.update_deploy(session, deploy.id, owner="B", step_current=3)
    async with db.session() as session:
        assert not await repo.transition(session, deploy.id, Status.SUCCESS, owner="B")
        chunks = (await session.execute(select(func.count()).select_from(LogChunk))).scalar_one()
    after = await row(db, deploy.id)
    assert (chunks, after.log_size, after.step_current, after.status) == (0, 0, None, "running")


async def test_the_reapers_compare_and_set_loses_to_a_renewal(db):
    async with db.session() as session:
        deploy = await insert_leased(session, "a", "A")
        await repo.claim(session, deploy.id, "A", 10)
    await set_lease(db, deploy.id, -1)  # A was slow: the lease ran out
    async with db.session() as session:
        assert [d.id for d in await repo.stale_deploys(session, 10)] == [deploy.id]
    async with db.session() as session:  # A renews between the reaper's look and its move
        assert (await repo.heartbeat(session, "A", [deploy.id], 10)).renewed == {deploy.id}
    async with db.session() as session:
        assert not await repo.reap(session, deploy.id, 10, error_message="interrupted")
    assert (await row(db, deploy.id)).status == "running"


# --- the clock -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [-86400.0, 86400.0], ids=["clock-a-day-behind", "clock-a-day-ahead"])
async def test_only_the_database_clock_says_whether_a_lease_expired(service, monkeypatch, shift):
    """This process's clock a day off either way: the reaper ends exactly the deploys whose lease
    the database says expired (and, for rows of a bot from before leases, whose last heartbeat is
    older than a lease by the database's clock)."""
    real_time = time.time

    def skewed() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=shift)

    monkeypatch.setattr(time, "time", lambda: real_time() + shift)
    monkeypatch.setattr("storage.models.utcnow", skewed)
    monkeypatch.setattr("bot.deploy.queries.utcnow", skewed)
    ids = {}
    async with service.db.session() as session:
        for name in ("leased", "expired", "legacy-fresh", "legacy-stale"):
            legacy = name.startswith("legacy")
            deploy = await insert_leased(session, name, "elsewhere") if not legacy else None
            if legacy:  # no runner, no lease: as a bot from before migration 0006 wrote it
                deploy = await repo.insert_deploy(session, environment=name, branch="m", deployed_by=ADMIN)
            await repo.transition(session, deploy.id, Status.RUNNING)
            ids[name] = deploy.id
        await session.execute(
            update(Deploy)
            .where(Deploy.id == ids["legacy-stale"])
            .values(heartbeat_at=seconds_after(db_now(), -60))
        )
    await set_lease(service.db, ids["leased"], 60)
    await set_lease(service.db, ids["expired"], -1)
    assert sorted(await service.reap()) == sorted([ids["expired"], ids["legacy-stale"]])
    assert (await row(service.db, ids["leased"])).status == "running"
    assert (await row(service.db, ids["legacy-fresh"])).status == "running"
    assert await service.reap() == []


# --- a lost lease ----------------------------------------------------------------------------------


def pause_renewals(service) -> None:
    """As if the process stopped renewing (paused, swapping, cut off from the database)."""
    service._heartbeat_task.cancel()


def resume_renewals(service) -> None:
    service._heartbeat_task = asyncio.create_task(service.leases.keep())


async def wait_for_pid(path, timeout: float = 20) -> int:
    async with asyncio.timeout(timeout):
        while not path.exists() or not path.read_text().strip():
            await asyncio.sleep(0.05)
    return int(path.read_text())


@pytest.mark.parametrize("found_by", ["renewal", "write"])
async def test_a_lost_lease_stops_the_script_and_writes_nothing_more(make_config, tmp_path, found_by):
    """A's deploy is reaped by B while A is paused: B leaves the script (its owner is alive).
    Once A runs again, its renewal (or, for a script that prints, its next log write) finds the
    lease gone: it kills the script within seconds and the row keeps B's verdict, with no chunk,
    step or final state of A's after it."""
    config = make_config(environments={"production": {"script": WAITER}})
    pid_file = tmp_path / "script.pid"
    environ = {"PID_FILE": str(pid_file), **({"TICK": "1"} if found_by == "write" else {})}
    async with _service(config, **environ) as a, _service(config) as b:
        a_events, b_events = [], []
        a.events.subscribe(a_events.append)
        b.events.subscribe(b_events.append)
        deploy = await a.trigger("production", "main", user=ADMIN)
        await wait_for_status(a, deploy.id, Status.RUNNING)
        pid = await wait_for_pid(pid_file)
        assert (await row(a.db, deploy.id)).runner_id == a.runner_id
        pause_renewals(a)
        await set_lease(a.db, deploy.id, -1)
        assert await b.reap() == [deploy.id]
        assert alive(pid), "B killed the script of an owner that is alive"
        reaped = await row(a.db, deploy.id)
        if found_by == "renewal":
            resume_renewals(a)
        assert await gone(pid, timeout=3), "A kept running a script whose deploy was reaped"
        async with asyncio.timeout(10):
            await a.wait_idle()
        await asyncio.sleep(1)  # anything A might still write would land meanwhile
        done = await row(a.db, deploy.id)
        assert (done.status, done.error_message) == ("failed", reaped.error_message)
        assert done.error_message.startswith("interrupted")
        assert (done.log_size, done.completed_at, done.updated_at) == (
            reaped.log_size,
            reaped.completed_at,
            reaped.updated_at,
        )
        async with a.db.session() as session:
            stored = (
                await session.execute(
                    select(func.coalesce(func.sum(func.length(LogChunk.data)), 0)).where(
                        LogChunk.deploy_id == deploy.id
                    )
                )
            ).scalar_one()
        assert stored == done.log_size
        assert [type(e) for e in a_events if isinstance(e, DeployFinished | DeployLost)] == [DeployLost]
        assert [type(e) for e in b_events] == [DeployFinished]


async def test_a_process_that_stalled_past_its_lease_reaps_its_own_deploy(make_config, tmp_path):
    """The process's own reaper finds its own lease expired (it stalled, or the database was away
    for longer than a lease): it ends the deploy like any other's and stops its own script."""
    config = make_config(environments={"production": {"script": WAITER}})
    pid_file = tmp_path / "script.pid"
    async with _service(config, PID_FILE=str(pid_file)) as a:
        events = []
        a.events.subscribe(events.append)
        deploy = await a.trigger("production", "main", user=ADMIN)
        await wait_for_status(a, deploy.id, Status.RUNNING)
        pid = await wait_for_pid(pid_file)
        pause_renewals(a)
        await set_lease(a.db, deploy.id, -1)
        assert await a.reap() == [deploy.id]
        assert await gone(pid, timeout=3)
        async with asyncio.timeout(10):
            await a.wait_idle()
        done = await row(a.db, deploy.id)
        assert done.status == "failed" and done.error_message.startswith("interrupted")
        ends = [type(e) for e in events if isinstance(e, DeployFinished | DeployLost)]
        assert ends == [DeployFinished, DeployLost]  # the reaper's end, then the execution's stop


async def test_a_renewal_that_comes_in_first_saves_the_deploy(make_config, tmp_path, monkeypatch):
    """The reaper finds A's lease expired, but A renews before the reaper's move: the move
    does nothing, the deploy goes on and its script lives."""
    config = make_config(environments={"production": {"script": WAITER}})
    pid_file = tmp_path / "script.pid"
    async with _service(config, PID_FILE=str(pid_file)) as a, _service(config) as b:
        deploy = await a.trigger("production", "main", user=ADMIN)
        await wait_for_status(a, deploy.id, Status.RUNNING)
        pid = await wait_for_pid(pid_file)
        pause_renewals(a)
        await set_lease(a.db, deploy.id, -1)
        real = repo.stale_deploys

        async def then_a_renews(session, lease_seconds):
            found = await real(session, lease_seconds)
            await a.heartbeat()
            return found

        monkeypatch.setattr(repo, "stale_deploys", then_a_renews)
        assert await b.reap() == []
        resume_renewals(a)
        await asyncio.sleep(1)
        assert (await row(a.db, deploy.id)).status == "running" and alive(pid)
        await a.cancel(deploy.id, user=ADMIN)
        assert (await wait_for_status(a, deploy.id, Status.CANCELLED)).state is Status.CANCELLED


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_owner_paused_mid_write_does_not_hold_the_reaper_up(make_config, tmp_path):
    """An owner paused between a write and its commit holds the deploy's row lock. PostgreSQL ends
    that transaction after a few seconds (the bot's own connections allow no longer), so the reaper
    waits only that long, and the owner's commit fails instead of landing on the reaped row."""
    config = make_config()
    owner = Database(config.database_url)
    try:
        async with _service(config) as reaper:
            async with owner.session() as session:
                deploy = await insert_leased(session, "production", "paused")
                await repo.claim(session, deploy.id, "paused", 3)
            await set_lease(reaper.db, deploy.id, -1)  # the owner is late: its lease runs out
            with pytest.raises(DBAPIError):
                async with owner.session(background=True) as paused:
                    await repo.update_deploy(paused, deploy.id, owner="paused", step_current=2)
                    reaping = asyncio.create_task(reaper.reap())
                    await asyncio.wait([reaping], timeout=BACKGROUND_IDLE_IN_TRANSACTION_MS / 1000 + 5)
                    if not reaping.done():
                        await paused.rollback()  # let the reaper go, then fail
                        await reaping
                        pytest.fail("the reaper waited on the paused owner's lock")
                    assert reaping.result() == [deploy.id]
            done = await row(reaper.db, deploy.id)
            assert (done.status, done.step_current) == ("failed", None)
    finally:
        await owner.dispose()


# --- another process -------------------------------------------------------------------------------


def child_toml(tmp_path, database_url: str, **bot) -> str:
    settings = {"heartbeat_seconds": 1, "lease_seconds": 3, "reaper_interval_seconds": 1, **bot}
    path = tmp_path / "child.toml"
    path.write_text(
        f'[bot]\nadmins = ["{ADMIN}"]\ndatabase_url = "{database_url}"\n'
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
        + f'[environments.production]\nscript = "{WAITER}"\n'
        + f'[environments.staging]\nscript = "{SCRIPTS / "steps.sh"}"\n'
    )
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_bot_process_stopped_past_its_lease_stops_its_script_once_it_runs_again(
    make_config, tmp_path
):
    """`python -m bot deploy` stopped with SIGSTOP for longer than its lease: another bot reaps
    the deploy but leaves the script (its owner is alive, only stopped). After SIGCONT the child
    kills the script itself, writes nothing over the failed row, and exits with the failure."""
    config = make_config(environments={"production": {"script": WAITER}})
    pid_file = tmp_path / "script.pid"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "--config",
            child_toml(tmp_path, config.database_url),
            "deploy",
            "production",
        ],
        env={**os.environ, "PID_FILE": str(pid_file), "TICK": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with _service(config) as reaper:
            pid = await wait_for_pid(pid_file)
            deploy = (await reaper.history()).items[0]
            await wait_for_status(reaper, deploy.id, Status.RUNNING)
            child.send_signal(signal.SIGSTOP)
            async with asyncio.timeout(15):
                while deploy.id not in await reaper.reap():
                    await asyncio.sleep(0.25)
            reaped = await row(reaper.db, deploy.id)
            await asyncio.sleep(1)  # the script prints on into the stopped child's pipe
            assert alive(pid), "the reaper killed the script of a live (stopped) owner"
            child.send_signal(signal.SIGCONT)
            assert await gone(pid, timeout=5), "the child kept running a script whose deploy was reaped"
            returncode = await asyncio.to_thread(child.wait, 20)
            done = await row(reaper.db, deploy.id)
            assert (done.status, done.error_message) == ("failed", reaped.error_message)
            assert (done.log_size, done.completed_at, done.updated_at) == (
                reaped.log_size,
                reaped.completed_at,
                reaped.updated_at,
            )
            assert returncode == 1, child.stderr.read().decode(errors="replace")
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
            child.wait()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("faketime") is None, reason="faketime is not installed (apt-get install faketime)"
)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_bot_whose_clock_is_an_hour_ahead_reaps_no_live_deploy(make_config, tmp_path):
    """A second bot whose clock runs an hour ahead (faketime) starts, reaps every second and runs a
    deploy of its own: the first bot's live deploy is left running, its script untouched, and the
    second bot's own deploy lasts seconds by the database's clock, not an hour."""
    config = make_config(
        environments={"production": {"script": WAITER}, "staging": {"script": str(SCRIPTS / "steps.sh")}}
    )
    pid_file = tmp_path / "script.pid"
    async with _service(config, PID_FILE=str(pid_file)) as owner:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_status(owner, deploy.id, Status.RUNNING)
        pid = await wait_for_pid(pid_file)
        ahead = await asyncio.to_thread(
            subprocess.run,
            [
                "faketime",
                "-f",
                "+1h",
                sys.executable,
                "-m",
                "bot",
                "--config",
                child_toml(tmp_path, config.database_url),
            ]
            + ["deploy", "staging"],
            env={**os.environ, "STEP_SLEEP": "0.6", "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
            capture_output=True,
            timeout=120,
        )
        assert ahead.returncode == 0, ahead.stderr.decode(errors="replace")
        theirs = (await owner.history(environment="staging")).items[0]
        assert theirs.state is Status.SUCCESS and theirs.duration < 60
        assert (await row(owner.db, deploy.id)).status == "running" and alive(pid)
        await owner.cancel(deploy.id, user=ADMIN)
        await wait_for_status(owner, deploy.id, Status.CANCELLED)


# --- the migration ---------------------------------------------------------------------------------


async def test_the_lease_migration_keeps_the_count_triggers(db):
    """0006 adds its columns in place: on SQLite a table rebuild would drop 0004's triggers."""
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            query = (
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'deploy_counts_%'"
            )
            expected = 4
        else:
            query = "SELECT count(*) FROM pg_trigger WHERE tgname = 'deploy_counts_track'"
            expected = 1
        assert (await conn.exec_driver_sql(query)).scalar_one() == expected
        columns = await conn.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns("deploy_history")}
        )
    assert {"runner_id", "lease_expires_at"} <= columns
