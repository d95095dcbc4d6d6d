"""The deploy service on a real database (SQLite and PostgreSQL) with real scripts."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot import errors
from bot.deploy.events import DeployCreated, DeployFinished, DeployStarted, StepChanged
from bot.deploy.service import DeployService
from storage import repository as repo
from storage.db import REQUEST_POOL, Database
from storage.models import Deploy, Status
from tests.conftest import ADMIN, SCRIPTS, gone


async def row_count(service: DeployService) -> int:
    async with service.db.session() as session:
        return (await session.execute(select(func.count()).select_from(Deploy))).scalar_one()


async def wait_for_status(
    service: DeployService, deploy_id: int, *states: Status, timeout: float = 30
) -> Deploy:
    async with asyncio.timeout(timeout):
        while True:
            deploy = await service.get(deploy_id)
            if deploy.state in states:
                return deploy
            await asyncio.sleep(0.05)


async def wait_for_log(service: DeployService, deploy_id: int, needle: bytes, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while needle not in (await service.logs(deploy_id)).data:
            await asyncio.sleep(0.05)


def script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def repo_config(make_config, git_repo):
    return make_config(
        environments={
            "production": {
                "label": "生产环境",
                "aliases": ["prod"],
                "script": str(SCRIPTS / "steps.sh"),
                "repo": str(git_repo.path),
            },
        }
    )


@pytest.fixture
async def repo_service(repo_config):
    db = Database(repo_config.database_url)
    svc = DeployService(repo_config, db, base_env=dict(os.environ))
    await svc.start()
    yield svc
    await svc.close()
    await db.dispose()


# --- the happy path --------------------------------------------------------------------------------


async def test_success_pins_the_commit_and_records_steps(repo_service, git_repo):
    events = []
    repo_service.events.subscribe(events.append)
    deploy = await repo_service.trigger(
        "prod", "main", user=ADMIN, description="first release", skip_build=True
    )
    assert deploy.commit_hash == git_repo.second
    await repo_service.wait_idle()

    done = await repo_service.get(deploy.id)
    assert done.state is Status.SUCCESS
    assert (done.step_current, done.step_total, done.step_title) == (7, 7, "step 7")
    assert done.started_at and done.completed_at and done.duration is not None
    assert done.duration == int((done.completed_at - done.started_at).total_seconds())
    assert done.environment == "production" and done.deployed_by == ADMIN
    log = (await repo_service.logs(deploy.id)).text
    assert f"at {git_repo.second} by {ADMIN} skip_build=1 skip_migrations=0 rollback_of=\n" in log
    kinds = [type(e) for e in events]
    assert kinds[:2] == [DeployCreated, DeployStarted]
    assert kinds.count(StepChanged) == 7 and kinds[-1] is DeployFinished
    steps = [e for e in events if isinstance(e, StepChanged)]
    assert steps[1].previous.number == 1
    assert steps[1].step.lines_before == ("working on step 1 for production",)


async def test_a_tag_or_full_sha_can_be_deployed(repo_service, git_repo):
    deploy = await repo_service.trigger("production", git_repo.first, user=ADMIN)
    assert deploy.commit_hash == git_repo.first
    await repo_service.wait_idle()


async def test_script_reported_commit_is_recorded(make_config, tmp_path):
    sha = "b" * 40
    config = make_config(
        environments={"production": {"script": script(tmp_path, "r.sh", f"echo DEPLOY_COMMIT={sha}\n")}}
    )
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        assert deploy.commit_hash is None
        await service.wait_idle()
        assert (await service.get(deploy.id)).commit_hash == sha


async def test_failure_records_exit_code_and_error_line(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "fail.sh")}})
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        assert done.state is Status.FAILED
        assert done.exit_code == 3
        assert done.error_message == "脚本退出码 3: ERROR: compiler exploded"


async def test_log_is_stored_byte_exact_and_read_back_by_offset(make_config, tmp_path):
    body = (
        "head -c 2621440 /dev/urandom | base64 -w 0\n"  # one ~3.3 MB line: spans several chunks
        "printf '\\n\\xff\\xfe \\xe4\\xb8\\xad\\xe6\\x96\\x87\\n'\n"
        "printf 'no newline at the end'\n"
    )
    path = script(tmp_path, "big.sh", body + "")
    config = make_config(environments={"production": {"script": path}})
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        whole = b"".join([piece async for piece in service.iter_log(deploy.id)])
        assert len(whole) == done.log_size
        assert whole.endswith(b"\n\xff\xfe \xe4\xb8\xad\xe6\x96\x87\nno newline at the end")
        # arbitrary offsets and limits reassemble the same bytes
        pieces, offset = [], 0
        while True:
            view = await service.logs(deploy.id, offset, limit=777_777)
            pieces.append(view.data)
            offset = view.next_offset
            if view.complete:
                break
        assert b"".join(pieces) == whole
        middle = await service.logs(deploy.id, 1_048_570, limit=20)
        assert middle.data == whole[1_048_570:1_048_590]
        past = await service.logs(deploy.id, len(whole) + 10)
        assert past.data == b"" and past.complete


# --- cancel, timeout, shutdown ---------------------------------------------------------------------


async def test_cancel_stops_a_script_that_ignores_sigterm(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "ignore_term.sh")}})
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_log(service, deploy.id, b"child ")
        log = (await service.logs(deploy.id)).data
        child = int(log.split(b"child ")[1].split()[0])
        await service.cancel(deploy.id, user="U0OTHER01")
        done = await wait_for_status(service, deploy.id, Status.CANCELLED)
        assert done.cancelled_by == "U0OTHER01"
        assert done.error_message == "已被 U0OTHER01 取消"
        assert b"leader" in (await service.logs(deploy.id)).data  # logs kept
        await service.wait_idle()
        assert await gone(child)
        with pytest.raises(errors.AlreadyFinished):
            await service.cancel(deploy.id, user=ADMIN)
        with pytest.raises(errors.DeployNotFound):
            await service.cancel(deploy.id + 100, user=ADMIN)


async def test_timeout_fails_the_deploy(make_config):
    config = make_config(
        environments={"production": {"script": str(SCRIPTS / "sleepy.sh"), "timeout_minutes": 0.01}}
    )
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        assert done.state is Status.FAILED
        assert "超时" in done.error_message and "0.01" in done.error_message


async def test_stopping_the_bot_ends_running_deploys_as_interrupted(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}})
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_status(service, deploy.id, Status.RUNNING)
        await service.close()
        done = await service.get(deploy.id)
        assert done.state is Status.FAILED
        assert done.error_message.startswith("interrupted")


async def test_cancel_reaches_a_deploy_owned_by_another_process(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}})
    async with _service(config) as owner, _service(config) as other:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_status(other, deploy.id, Status.RUNNING)
        await other.cancel(deploy.id, user="U0OTHER01")
        done = await wait_for_status(other, deploy.id, Status.CANCELLED)
        assert done.cancelled_by == "U0OTHER01"


async def test_a_flood_of_requests_cannot_starve_a_running_deploy(make_config):
    """Requests that take every pooled connection and keep it (a burst of Slack or REST calls on a
    slow database) leave running deploys their own: the deploy still stores its log and ends."""
    config = make_config()
    async with _service(config, STEP_SLEEP="0.2") as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_log(service, deploy.id, b"[1/7]")
        capacity = REQUEST_POOL["pool_size"] + REQUEST_POOL["max_overflow"]
        held = [await service.db.engine.connect() for _ in range(capacity)]
        try:
            async with asyncio.timeout(20):
                await service.wait_idle()
        finally:
            for conn in held:
                await conn.close()
        done = await service.get(deploy.id)
        assert done.state is Status.SUCCESS, done.error_message
        assert b"deployed main" in (await service.logs(deploy.id)).data


# --- one deploy per environment --------------------------------------------------------------------


async def test_two_services_racing_for_one_environment_start_exactly_one(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}})
    async with _service(config) as first, _service(config) as second:
        results = await asyncio.gather(
            first.trigger("production", "main", user=ADMIN),
            second.trigger("production", "main", user="U0OTHER01"),
            return_exceptions=True,
        )
        started = [r for r in results if isinstance(r, Deploy)]
        refused = [r for r in results if isinstance(r, errors.EnvironmentBusy)]
        assert len(started) == 1 and len(refused) == 1, results
        message = refused[0].message("zh")
        assert f"#{started[0].id}" in message and f"/deploy cancel {started[0].id}" in message
        assert await row_count(first) == 1
        await first.cancel(started[0].id, user=ADMIN)


async def test_the_database_refuses_a_second_active_deploy(db):
    async with db.session() as session:
        await repo.insert_deploy(session, environment="production", branch="main", deployed_by=ADMIN)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await repo.insert_deploy(session, environment="production", branch="other", deployed_by=ADMIN)
    async with db.session() as session:  # another environment is free
        await repo.insert_deploy(session, environment="staging", branch="main", deployed_by=ADMIN)


async def test_a_lost_insert_race_retries_when_the_winner_has_finished(make_config):
    """The rival deploy appears after the busy check and ends before the refusal is written:
    the insert fails on the unique index, the environment is free again, so the trigger retries."""
    config = make_config()
    async with _service(config) as service:
        checks = 0
        rival: list[int] = []
        real_check = service.active

        async def racing_check(environment):
            nonlocal checks
            checks += 1
            async with service.db.session() as session:
                if checks == 1:  # another bot inserts right after our check
                    row = await repo.insert_deploy(
                        session, environment=environment, branch="main", deployed_by="U0OTHER01"
                    )
                    rival.append(row.id)
                elif checks == 2:  # ... and its deploy ends before we look again
                    await repo.transition(session, rival[0], Status.FAILED, error_message="boom")
            return None if checks == 1 else await real_check(environment)

        service.active = racing_check
        deploy = await service.trigger("production", "main", user=ADMIN)
        assert deploy.id != rival[0] and checks == 2
        done = await wait_for_status(service, deploy.id, Status.SUCCESS)
        assert done.deployed_by == ADMIN
        assert await row_count(service) == 2


async def test_the_same_request_key_starts_one_deploy(service):
    first = await service.trigger("production", "main", user=ADMIN, request_key="slack:T1")
    again = await service.trigger("production", "main", user=ADMIN, request_key="slack:T1")
    assert again.id == first.id
    assert await row_count(service) == 1
    await service.wait_idle()


# --- rollback --------------------------------------------------------------------------------------


async def test_rollback_redeploys_the_earlier_commit(repo_service, git_repo):
    old = await repo_service.trigger("prod", "old", user=ADMIN)
    await repo_service.wait_idle()
    new = await repo_service.trigger("prod", "main", user=ADMIN)
    await repo_service.wait_idle()
    new = await repo_service.get(new.id)

    target = await repo_service.rollback_target_for(new)
    assert target.id == old.id
    back = await repo_service.rollback(target.id, user="U0OTHER01")
    assert back.commit_hash == git_repo.first
    assert back.rollback_of == old.id
    assert back.description == f"回滚到 #{old.id} ({git_repo.first[:7]})"
    await repo_service.wait_idle()
    done = await repo_service.get(back.id)
    assert done.state is Status.SUCCESS
    assert f"at {git_repo.first} by U0OTHER01" in (await repo_service.logs(back.id)).text
    assert f"rollback_of={old.id}" in (await repo_service.logs(back.id)).text
    assert (await repo_service.last_success("production")).id == back.id


async def test_rollback_refuses_bad_targets_and_writes_nothing(repo_service, git_repo, make_config):
    ok = await repo_service.trigger("prod", "main", user=ADMIN)
    await repo_service.wait_idle()
    async with repo_service.db.session() as session:
        failed = await repo.insert_deploy(
            session, environment="production", branch="x", deployed_by=ADMIN, commit_hash=git_repo.first
        )
        await repo.transition(session, failed.id, Status.FAILED)
        nocommit = await repo.insert_deploy(session, environment="production", branch="y", deployed_by=ADMIN)
        await repo.transition(session, nocommit.id, Status.RUNNING)
        await repo.transition(session, nocommit.id, Status.SUCCESS)
    before = await row_count(repo_service)

    with pytest.raises(errors.RollbackNotEligible, match="status is Failed"):
        await repo_service.rollback(failed.id, user=ADMIN)
    with pytest.raises(errors.RollbackNotEligible, match="no recorded commit"):
        await repo_service.rollback(nocommit.id, user=ADMIN)
    with pytest.raises(errors.DeployNotFound):
        await repo_service.rollback(9999, user=ADMIN)
    git_repo.drop_second()  # history rewritten: the deployed commit is gone
    with pytest.raises(errors.CommitMissing) as missing:
        await repo_service.rollback(ok.id, user=ADMIN)
    assert git_repo.second[:7] in missing.value.message("zh")
    assert await row_count(repo_service) == before
    assert repo_service.running_ids == []


# --- bad input changes nothing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"environment": "moon"}, errors.UnknownEnvironment),
        ({"environment": ""}, errors.UnknownEnvironment),
        ({"branch": "-rf"}, errors.InvalidBranch),
        ({"branch": "a..b"}, errors.InvalidBranch),
        ({"branch": "feat; rm -rf /"}, errors.InvalidBranch),
        ({"branch": "has space"}, errors.InvalidBranch),
        ({"branch": "$(reboot)"}, errors.InvalidBranch),
        ({"branch": "x" * 101}, errors.InvalidBranch),
        ({"branch": "refs/heads/.hidden"}, errors.InvalidBranch),
        ({"branch": "topic.lock"}, errors.InvalidBranch),
        ({"branch": "no-such-branch"}, errors.UnknownBranch),
        ({"description": "x" * 2001}, errors.DescriptionTooLong),
        ({"description": "nul\x00byte"}, errors.InvalidInput),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(repo_service, kwargs, error):
    args = {"environment": "production", "branch": "main", **kwargs}
    with pytest.raises(error) as refused:
        await repo_service.trigger(args.pop("environment"), args.pop("branch"), user=ADMIN, **args)
    assert refused.value.message("zh") and refused.value.message("en")
    assert refused.value.message("zh") != refused.value.message("en")
    assert await row_count(repo_service) == 0
    assert repo_service.running_ids == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"environment": "moon"}, errors.UnknownEnvironment),
        ({"status": "exploded"}, errors.InvalidInput),
        ({"page": 0}, errors.InvalidInput),
        ({"page_size": 101}, errors.InvalidInput),
    ],
)
async def test_bad_history_filters_are_refused(service, kwargs, error):
    with pytest.raises(error):
        await service.history(**kwargs)


async def test_an_unreadable_repository_is_refused(make_config, tmp_path):
    config = make_config(
        environments={"production": {"script": str(SCRIPTS / "steps.sh"), "repo": str(tmp_path / "missing")}}
    )
    async with _service(config) as service:
        with pytest.raises(errors.RepoUnavailable):
            await service.trigger("production", "main", user=ADMIN)
        assert await row_count(service) == 0


# --- plumbing --------------------------------------------------------------------------------------


class _service:
    """A started DeployService on its own connection pool, closed on exit (a second bot process)."""

    def __init__(self, config, **environ: str) -> None:
        self.config = config
        self.environ = {**os.environ, **environ}

    async def __aenter__(self) -> DeployService:
        self.db = Database(self.config.database_url)
        self.service = DeployService(self.config, self.db, base_env=self.environ)
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc) -> None:
        await self.service.close()
        await self.db.dispose()
