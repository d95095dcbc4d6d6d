"""The deploy queue, --force and the deployers rule on a real database (SQLite and PostgreSQL) with
real scripts: what is queued, in which order it starts, what is refused, and what is audited."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot import errors
from bot.deploy.events import DeployFinished, DeployQueued
from bot.deploy.service import DeployService
from storage import audit
from storage.models import AuditEvent, Deploy, Status, utcnow
from tests.conftest import ADMIN
from tests.engine.test_service import _service, row_count, script, wait_for_status

OTHER = "U0OTHER01"
# The branch decides what the script does: `slow…` waits until cancelled, `fail…` fails.
BY_BRANCH = """echo "[1/1] $DEPLOY_BRANCH"
case "$DEPLOY_BRANCH" in
  slow*) sleep 300 ;;
  fail*) echo "ERROR: boom" >&2; exit 3 ;;
esac
echo "deployed $DEPLOY_BRANCH"
"""


@pytest.fixture
def queue_config(make_config, tmp_path):
    def build(**production):
        env = {"script": script(tmp_path, "by_branch.sh", BY_BRANCH), **production}
        return make_config(environments={"production": env}, bot={"managers": [ADMIN]})

    return build


async def audit_rows(service: DeployService) -> list[AuditEvent]:
    async with service.db.session() as session:
        return list((await audit.page(session, page_size=100)).items)


async def queued_rows(service: DeployService) -> int:
    async with service.db.session() as session:
        query = select(func.count()).select_from(Deploy).where(Deploy.status == Status.QUEUED.value)
        return (await session.execute(query)).scalar_one()


async def test_a_busy_environment_queues_and_the_queue_starts_by_itself_oldest_first(queue_config):
    async with _service(queue_config()) as service:
        events = []
        service.events.subscribe(events.append)
        holder = await service.trigger("production", "slow", user=ADMIN)
        await wait_for_status(service, holder.id, Status.RUNNING)

        with pytest.raises(errors.EnvironmentBusy):  # without --queue: refused, nothing written
            await service.trigger("production", "refused", user=ADMIN)
        assert await row_count(service) == 1

        first = await service.trigger("production", "first", user=ADMIN, queue=True)
        second = await service.trigger("production", "second", user=OTHER, queue=True)
        assert (first.state, second.state) == (Status.QUEUED, Status.QUEUED)
        assert first.commit_hash is None and first.runner_id is None
        assert [await service.queue_position(d) for d in (first, second)] == [1, 2]
        assert [e.deploy.id for e in events if isinstance(e, DeployQueued)] == [first.id, second.id]
        await asyncio.sleep(1.5)  # the claim loop ticks meanwhile: nothing starts while it is held
        assert (await service.get(first.id)).state is Status.QUEUED

        await service.cancel(holder.id, user=ADMIN)
        done_first = await wait_for_status(service, first.id, Status.SUCCESS)
        done_second = await wait_for_status(service, second.id, Status.SUCCESS)
        assert done_first.completed_at <= done_second.started_at
        assert b"deployed second" in (await service.logs(second.id)).data
        assert done_second.deployed_by == OTHER


async def test_queue_when_free_simply_starts(queue_config):
    async with _service(queue_config()) as service:
        deploy = await service.trigger("production", "main", user=ADMIN, queue=True)
        assert deploy.state in (Status.PENDING, Status.RUNNING)
        assert (await wait_for_status(service, deploy.id, Status.SUCCESS)).branch == "main"


async def test_a_failed_deploy_does_not_stop_the_queue(queue_config):
    async with _service(queue_config()) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        await wait_for_status(service, holder.id, Status.RUNNING)
        failing = await service.trigger("production", "fail-1", user=ADMIN, queue=True)
        after = await service.trigger("production", "after", user=ADMIN, queue=True)
        await service.cancel(holder.id, user=ADMIN)
        assert (await wait_for_status(service, failing.id, Status.FAILED)).exit_code == 3
        assert (await wait_for_status(service, after.id, Status.SUCCESS)).branch == "after"


async def test_the_queue_limit_refuses_and_writes_nothing(queue_config):
    async with _service(queue_config(queue_limit=2)) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        for branch in ("a", "b"):
            await service.trigger("production", branch, user=ADMIN, queue=True)
        with pytest.raises(errors.QueueFull) as refused:
            await service.trigger("production", "c", user=ADMIN, queue=True)
        assert refused.value.code == "queue_full" and "2" in refused.value.message("en")
        assert await row_count(service) == 3 and await queued_rows(service) == 2
        await service.cancel(holder.id, user=ADMIN)


async def test_cancelling_a_queued_deploy_ends_it_at_once_and_is_audited(queue_config):
    async with _service(queue_config()) as service:
        events = []
        service.events.subscribe(events.append)
        holder = await service.trigger("production", "slow", user=ADMIN)
        mine = await service.trigger("production", "mine", user=OTHER, queue=True)
        theirs = await service.trigger("production", "theirs", user=ADMIN, queue=True)

        with pytest.raises(errors.NotPermitted):  # someone else's, and not a manager
            await service.cancel(theirs.id, user=OTHER)
        assert (await service.get(theirs.id)).state is Status.QUEUED

        cancelled = await service.cancel(mine.id, user=OTHER)
        assert cancelled.state is Status.CANCELLED and cancelled.cancelled_by == OTHER
        assert any(isinstance(e, DeployFinished) and e.deploy.id == mine.id for e in events)
        assert await service.queue_position(theirs) == 1
        by_manager = await service.cancel(theirs.id, user=ADMIN)  # a manager cancels anyone's
        assert by_manager.state is Status.CANCELLED
        with pytest.raises(errors.AlreadyFinished):
            await service.cancel(mine.id, user=OTHER)

        rows = await audit_rows(service)
        assert [(r.action, r.actor, r.deploy_id) for r in rows if r.action == "cancel"] == [
            ("cancel", ADMIN, theirs.id),
            ("cancel", OTHER, mine.id),
        ]
        assert any(r.action == "refused" and r.actor == OTHER for r in rows)
        await service.cancel(holder.id, user=ADMIN)
        await service.wait_idle()
        assert (await service.get(mine.id)).started_at is None, "a cancelled queued deploy never starts"


async def test_two_services_dequeuing_at_once_start_it_once(queue_config):
    config = queue_config()
    async with _service(config) as first, _service(config) as second:
        holder = await first.trigger("production", "slow", user=ADMIN)
        await wait_for_status(first, holder.id, Status.RUNNING)
        queued = await first.trigger("production", "next", user=ADMIN, queue=True)
        # Freed behind the services' backs, then both dequeue at the same moment.
        await first.cancel(holder.id, user=ADMIN)
        await wait_for_status(first, holder.id, Status.CANCELLED)
        started = await asyncio.gather(first.dequeuer.run(), second.dequeuer.run(), first.dequeuer.run())
        assert sum(len(s) for s in started) <= 1  # the claim loops may have been quicker still
        done = await wait_for_status(second, queued.id, Status.SUCCESS)
        assert done.exit_code == 0
        assert await row_count(first) == 2
        async with first.db.session() as session:
            active = select(func.count()).select_from(Deploy).where(Deploy.status != Status.SUCCESS.value)
            assert (await session.execute(active)).scalar_one() == 1  # only the cancelled holder


async def test_a_manager_may_force_past_a_branch_rule_and_it_is_audited(queue_config):
    async with _service(queue_config(allowed_branches=["main", "release/*"])) as service:
        deploy = await service.trigger("production", "hotfix", user=ADMIN, force="INC-7")
        done = await wait_for_status(service, deploy.id, Status.SUCCESS)
        assert (done.forced_by, done.force_reason) == (ADMIN, "INC-7")
        (row,) = [r for r in await audit_rows(service) if r.action == "force"]
        assert (row.actor, row.environment, row.deploy_id, row.detail) == (
            ADMIN,
            "production",
            deploy.id,
            "INC-7",
        )
        allowed = await service.trigger("production", "release/1", user=ADMIN, force="not needed")
        assert (await wait_for_status(service, allowed.id, Status.SUCCESS)).forced_by is None


@pytest.mark.parametrize(
    ("user", "force", "error"),
    [
        (OTHER, "INC-7", errors.NotPermitted),  # not a manager
        (OTHER, None, errors.BranchNotAllowed),
        (ADMIN, "", errors.InvalidInput),
        (ADMIN, "   ", errors.InvalidInput),
        (ADMIN, "x" * 501, errors.InvalidInput),
    ],
)
async def test_refused_forces_write_no_deploy(queue_config, user, force, error):
    async with _service(queue_config(allowed_branches=["main"])) as service:
        with pytest.raises(error):
            await service.trigger("production", "hotfix", user=user, force=force, queue=True)
        assert await row_count(service) == 0
        actions = [r.action for r in await audit_rows(service)]
        assert actions == ([] if error is errors.InvalidInput else ["refused"])


async def test_only_deployers_may_deploy_and_a_refusal_is_audited(queue_config):
    async with _service(queue_config(deployers=[ADMIN])) as service:
        with pytest.raises(errors.NotPermitted) as refused:
            await service.trigger("production", "main", user=OTHER, queue=True)
        assert refused.value.code == "forbidden"
        assert await row_count(service) == 0
        (row,) = await audit_rows(service)
        assert (row.actor, row.action, row.environment, row.deploy_id) == (
            OTHER,
            "refused",
            "production",
            None,
        )
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_status(service, deploy.id, Status.SUCCESS)


async def test_the_same_request_key_queues_once(queue_config):
    async with _service(queue_config()) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        clicks = await asyncio.gather(
            *(
                service.trigger("production", "x", user=ADMIN, queue=True, request_key="queue:T1")
                for _ in range(3)
            )
        )
        assert len({d.id for d in clicks}) == 1
        assert await queued_rows(service) == 1
        await service.cancel(holder.id, user=ADMIN)


async def test_audit_query_and_retention(queue_config):
    async with _service(queue_config(deployers=[ADMIN])) as service:
        for _ in range(3):
            with pytest.raises(errors.NotPermitted):
                await service.trigger("production", "main", user=OTHER)
        page = await service.audit("production", 1, 2)
        assert (page.total, len(page.items)) == (3, 2)
        assert page.items[0].id > page.items[1].id, "newest first"
        assert (await service.audit(None, 2, 2)).items[0].id == min(r.id for r in await audit_rows(service))
        for bad in (dict(environment="mars"), dict(page=0), dict(page_size=0), dict(page_size=101)):
            with pytest.raises((errors.UnknownEnvironment, errors.InvalidInput)):
                await service.audit(**bad)
        assert (await service.cleanup()).audit_deleted == 0  # younger than records_days
        async with service.db.session() as session:  # one of them from long ago
            oldest = min(r.id for r in await audit_rows(service))
            long_ago = utcnow() - timedelta(days=service.config.retention.records_days + 1)
            await session.execute(update(AuditEvent).where(AuditEvent.id == oldest).values(at=long_ago))
        assert (await service.cleanup()).audit_deleted == 1
        assert oldest not in {r.id for r in await audit_rows(service)}
        assert len(await audit_rows(service)) == 2
