"""Several real bot processes on one PostgreSQL (DESIGN §2, §12): `deploybot serve` processes and
`deploybot worker`s started as children (tests/e2e/cluster.py), driven through the REST API, with
the local fake Slack, real scripts, and signals sent to the processes themselves.

- concurrency: 100 triggers at once over two `serve` processes start exactly one deploy per
  environment, every other answer names it; a deploy asked of a process that does not run its
  environment is run by one that does;
- cancel: asked of one process, the owner (a worker) stops the script's whole group within 2 s;
- a paused owner (SIGSTOP past its lease), on this host and on "another" one (its own UTS namespace,
  another hostname): another process ends the deploy as interrupted but leaves the script, whose
  owner is alive or cannot be proved dead; continued, the owner stops the script itself and writes
  nothing over the ended row;
- a dead owner (SIGKILL): on this host another process ends the deploy within the lease's bound,
  keeps its log and stops the orphaned script; on another host it ends the deploy but leaves the
  script, since nothing proves its owner dead;
- draining: SIGTERM lets a worker's deploy finish, then the worker exits 0;
- a clock a minute ahead (faketime) changes neither a deploy's duration nor when its deploy is
  ended once the worker is killed.

Skipped, with the reason shown: the faketime case without `faketime`, the other-host cases when a
UTS namespace cannot be made here (`unshare --uts` needs root or user namespaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.i18n import t
from tests.conftest import SCRIPTS, alive, gone
from tests.e2e.cluster import Cluster, Member, group_gone, script_pid
from tests.fakeslack import FakeSlack

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

WAITER = SCRIPTS / "pid_and_wait.sh"
SLEEPY = SCRIPTS / "sleepy.sh"
STEPS = SCRIPTS / "steps.sh"
INTERRUPTED = t("zh", "outcome.interrupted")
SHORT_LEASE = {"lease_seconds": 3, "heartbeat_seconds": 1, "reaper_interval_seconds": 1}
OTHER_HOST = "otherhost"
# the worker in its own UTS namespace with another hostname; the same pid namespace, boot and /proc
UNSHARE = ("unshare", "--uts", "sh", "-c", f'hostname {OTHER_HOST} && exec "$@"', "sh")


@contextlib.asynccontextmanager
async def cluster_of(tmp_path: Path, db_url: str, environments: dict, **bot: float) -> AsyncIterator[Cluster]:
    async with FakeSlack() as slack, Cluster(tmp_path, db_url, slack, environments, **bot) as cluster:
        yield cluster


def other_host_unavailable() -> str | None:
    """Why a process cannot get another hostname here, or None when it can."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run([*UNSHARE, "hostname"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0 or probe.stdout.strip() != OTHER_HOST:
        return f"cannot make a UTS namespace with another hostname here: {probe.stderr.strip()}"
    return None


async def started(cluster: Cluster, front: Member, environment: str) -> int:
    status, body = await cluster.trigger(front, environment)
    assert status == 201, body
    return body["id"]


async def stays_alive(pid: int, seconds: float) -> None:
    """The process runs on for `seconds` (several looks of every reaper meanwhile)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        assert alive(pid), "a reaper killed the script of an owner it cannot prove dead"
        await asyncio.sleep(0.1)


def final_fields(deploy) -> tuple:
    return deploy.status, deploy.error_message, deploy.completed_at, deploy.log_size, deploy.updated_at


# --- concurrency -----------------------------------------------------------------------------------


async def test_a_hundred_triggers_over_two_processes_start_one_deploy_per_environment(tmp_path, db_url):
    environments = ("alpha", "beta", "gamma", "delta")
    async with cluster_of(
        tmp_path, db_url, dict.fromkeys(environments, SLEEPY), cancel_grace_seconds=1
    ) as cluster:
        a, b, worker = await asyncio.gather(
            cluster.serve("a", environments="alpha,beta"),
            cluster.serve("b", no_runner=True),
            cluster.worker("worker", environments="gamma,delta"),
        )
        asks = [((a, b)[n % 2], environments[n // 2 % 4]) for n in range(100)]
        answers = await asyncio.gather(*(cluster.trigger(front, env) for front, env in asks))

        rows = await cluster.rows()
        assert sorted(d.environment for d in rows) == sorted(environments), "one deploy per environment"
        deploy_of = {d.environment: d.id for d in rows}
        winners = {}
        for (front, env), (status, body) in zip(asks, answers, strict=True):
            if status == 201:
                assert body["id"] == deploy_of[env]
                winners[env] = front
                continue
            assert (status, body["error"]["code"]) == (409, "environment_busy"), body
            named = re.search(r"#(\d+)", body["error"]["message"])
            assert named and int(named.group(1)) == deploy_of[env], body["error"]["message"]
        assert sorted(winners) == sorted(environments), "exactly one trigger per environment won"

        for env in environments:
            deploy = await cluster.wait_for(deploy_of[env], "running", timeout=10)
            runner = deploy.runner_id
            # alpha and beta only A runs, gamma and delta only the worker (B runs nothing): each
            # deploy is run where its environment is, whichever front took the trigger
            owner = a if env in ("alpha", "beta") else worker
            assert runner == owner.runner_id, (env, winners[env], runner)
            assert runner.split("/")[3] == str(owner.proc.pid), "the row names the owner's pid"

        for n, env in enumerate(environments):  # a cancel reaches the owner from either front
            status, body = await cluster.cancel((a, b)[n % 2], deploy_of[env])
            assert status == 202, body
        for env in environments:
            await cluster.wait_for(deploy_of[env], "cancelled", timeout=10)


# --- cancel ----------------------------------------------------------------------------------------


async def test_a_cancel_asked_of_one_process_stops_the_script_group_of_another_within_2s(tmp_path, db_url):
    async with cluster_of(tmp_path, db_url, {"production": WAITER}, cancel_grace_seconds=1) as cluster:
        worker, front = await asyncio.gather(cluster.worker("worker"), cluster.serve("front", no_runner=True))
        deploy_id = await started(cluster, front, "production")
        running = await cluster.wait_for(deploy_id, "running")
        assert running.runner_id == worker.runner_id
        pgid = await script_pid(worker)
        assert os.getpgid(pgid) == pgid and not group_gone(pgid)

        status, body = await cluster.cancel(front, deploy_id)
        assert status == 202, body
        asked = time.monotonic()
        while not group_gone(pgid) and time.monotonic() - asked < 2:
            await asyncio.sleep(0.02)
        assert group_gone(pgid), "the script's process group still runs 2 s after the cancel"
        done = await cluster.wait_for(deploy_id, "cancelled", timeout=5)
        assert done.runner_id == worker.runner_id


# --- a paused owner --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["this-host", "other-host"])
async def test_an_owner_stopped_past_its_lease_is_reaped_and_stops_its_script_once_continued(
    tmp_path, db_url, host
):
    """Its lease runs out while it is stopped: another process ends the deploy as interrupted and
    leaves the script (its owner is alive, or on another host). Continued, the owner finds its
    lease gone, stops the script itself and writes nothing over the ended row."""
    prefix = ()
    if host == "other-host":
        if reason := other_host_unavailable():
            pytest.skip(reason)
        prefix = UNSHARE
    async with cluster_of(tmp_path, db_url, {"production": WAITER}, **SHORT_LEASE) as cluster:
        owner, front = await asyncio.gather(
            cluster.worker("owner", prefix=prefix, TICK="1"), cluster.serve("front", no_runner=True)
        )
        assert (owner.host == OTHER_HOST) == (host == "other-host"), owner.host
        deploy_id = await started(cluster, front, "production")
        running = await cluster.wait_for(deploy_id, "running")
        assert running.runner_id == owner.runner_id
        pid = await script_pid(owner)

        owner.send(signal.SIGSTOP)
        reaped = await cluster.wait_for(deploy_id, "failed", timeout=15)
        assert reaped.error_message == INTERRUPTED
        await stays_alive(pid, 2.5)
        owner.send(signal.SIGCONT)
        assert await gone(pid, timeout=5), "the owner kept running a script whose deploy was reaped"
        assert group_gone(pid)
        await asyncio.sleep(1.5)  # anything the owner might still write would land meanwhile
        assert final_fields(await cluster.row(deploy_id)) == final_fields(reaped)
        assert owner.proc.returncode is None and await cluster.runner(owner) is not None, "it runs on"


# --- a dead owner ----------------------------------------------------------------------------------


async def test_a_killed_owners_deploy_is_ended_by_another_process_which_stops_the_orphan(tmp_path, db_url):
    """Default lease (10 s), heartbeat and reaper (2 s): ended within 15 s of the kill (DESIGN §2),
    its log up to the kill kept and served by the other process, its script (in its own process
    group) killed: its owner is provably dead on this host."""
    async with cluster_of(tmp_path, db_url, {"production": WAITER}) as cluster:
        owner, other = await asyncio.gather(cluster.serve("owner"), cluster.serve("other", no_runner=True))
        deploy_id = await started(cluster, owner, "production")
        running = await cluster.wait_for(deploy_id, "running")
        assert running.runner_id == owner.runner_id
        pid = await script_pid(owner)
        before = ""
        async with asyncio.timeout(10):
            while f"waiting (pid {pid})" not in before:
                before = await cluster.log_text(other, deploy_id)
                await asyncio.sleep(0.2)

        owner.send(signal.SIGKILL)
        killed = time.monotonic()
        await owner.proc.wait()
        await asyncio.sleep(0.5)
        # A script that prints dies of SIGPIPE with its bot; this one prints nothing more, so it
        # outlives its bot and only the other process can stop it.
        assert alive(pid), "premise: the script outlives its killed bot"
        ended = await cluster.wait_for(deploy_id, "failed", "success", "cancelled", timeout=60)
        elapsed = time.monotonic() - killed
        assert (ended.status, ended.error_message) == ("failed", INTERRUPTED)
        assert elapsed <= 15, f"ended {elapsed:.1f} s after the kill"
        after = await cluster.log_text(other, deploy_id)
        assert after.startswith(before), "the log printed before the kill was lost"
        assert await gone(pid, timeout=5), "nobody stopped the script of a provably dead owner"
        assert group_gone(pid)


async def test_a_killed_owner_on_another_host_is_reaped_but_its_script_left(tmp_path, db_url):
    """The same death on "another host": nothing proves the owner dead from here, so the deploy
    is ended (its lease ran out) but its script is not touched."""
    if reason := other_host_unavailable():
        pytest.skip(reason)
    async with cluster_of(tmp_path, db_url, {"production": WAITER}, **SHORT_LEASE) as cluster:
        owner, front = await asyncio.gather(
            cluster.worker("owner", prefix=UNSHARE), cluster.serve("front", no_runner=True)
        )
        assert owner.host == OTHER_HOST
        deploy_id = await started(cluster, front, "production")
        await cluster.wait_for(deploy_id, "running")
        pid = await script_pid(owner)
        assert (await cluster.row(deploy_id)).runner_pid == pid

        owner.send(signal.SIGKILL)
        await owner.proc.wait()
        reaped = await cluster.wait_for(deploy_id, "failed", timeout=15)
        assert reaped.error_message == INTERRUPTED
        await stays_alive(pid, 3)  # the cluster kills it on the way out


# --- draining --------------------------------------------------------------------------------------


async def test_sigterm_lets_a_workers_deploy_finish_then_it_exits(tmp_path, db_url):
    """While it drains the worker runs no new deploy (a trigger for what only it runs is refused)
    and leaves the list of live processes once it has exited."""
    environments = {"production": SLEEPY, "staging": SLEEPY}
    async with cluster_of(tmp_path, db_url, environments) as cluster:
        worker, front = await asyncio.gather(
            cluster.worker("worker", SLEEP_SECONDS="4"), cluster.serve("front", no_runner=True)
        )
        deploy_id = await started(cluster, front, "production")
        running = await cluster.wait_for(deploy_id, "running")
        assert running.runner_id == worker.runner_id

        worker.send(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert worker.proc.returncode is None, "it waits for the deploy"
        async with asyncio.timeout(5):  # its next renewal says it drains
            while not (await cluster.runner(worker)).draining:
                await asyncio.sleep(0.1)
        status, body = await cluster.trigger(front, "staging")
        assert (status, body["error"]["code"]) == (409, "no_runner"), body
        assert (await cluster.row(deploy_id)).status == "running"

        assert await asyncio.wait_for(worker.proc.wait(), 30) == 0, worker.output()
        done = await cluster.row(deploy_id)
        assert (done.status, done.runner_id) == ("success", worker.runner_id)
        assert await cluster.runner(worker) is None


# --- another clock ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed")
async def test_a_worker_a_minute_ahead_runs_and_fails_over_like_any_other(tmp_path, db_url):
    """Every timestamp and lease comes from the database's clock: a deploy of the worker lasts
    what it lasted, and once the worker is killed its deploy is ended in the lease's time, not a
    minute later."""
    ahead = subprocess.run(
        ["faketime", "-f", "+60s", "date", "+%s"], capture_output=True, text=True, timeout=10
    )
    assert abs(int(ahead.stdout) - time.time() - 60) < 5, "premise: faketime moves the clock"
    environments = {"quick": STEPS, "long": WAITER}
    async with cluster_of(tmp_path, db_url, environments) as cluster:
        worker, front = await asyncio.gather(
            cluster.worker(
                "worker",
                prefix=("faketime", "-f", "+60s"),
                FAKETIME_DONT_FAKE_MONOTONIC="1",
                STEP_SLEEP="0.3",
            ),
            cluster.serve("front", no_runner=True),
        )
        quick = await cluster.wait_for(await started(cluster, front, "quick"), "success", timeout=30)
        assert quick.runner_id == worker.runner_id
        assert 1 <= quick.duration <= 10, quick.duration
        assert abs((quick.started_at - quick.created_at).total_seconds()) < 10

        deploy_id = await started(cluster, front, "long")
        await cluster.wait_for(deploy_id, "running")
        pid = await script_pid(worker)
        worker.send(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.sleep(0.5)
        assert alive(pid), "premise: the script outlives its killed bot"
        ended = await cluster.wait_for(deploy_id, "failed", "success", "cancelled", timeout=90)
        elapsed = time.monotonic() - killed
        assert (ended.status, ended.error_message) == ("failed", INTERRUPTED)
        assert elapsed <= 30, f"ended {elapsed:.1f} s after the kill"
        assert await gone(pid, timeout=5), "nobody stopped the script of a provably dead owner"
