"""Scheduled deploys and freeze windows (DESIGN §10) on a real database (SQLite and PostgreSQL) with
real scripts: the time grammar and its bad input; a scheduled deploy starts at its time, once, also
after a restart and with several processes; one found too late is missed; a busy environment queues
it; a freeze refuses triggers (a manager may force) and holds a due deploy in the queue."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot import errors
from bot.config import Freeze
from bot.deploy import schedule
from bot.deploy.freeze import frozen
from bot.deploy.schedule import When
from bot.i18n import t
from storage.models import AuditEvent, Deploy, Status, db_now, seconds_after
from tests.conftest import ADMIN
from tests.engine.test_queue import BY_BRANCH, OTHER
from tests.engine.test_service import _service, row_count, script, wait_for_status

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 23:00 in Asia/Shanghai


@pytest.mark.parametrize(
    ("keyword", "words", "zone", "expected"),
    [
        ("in", ["30s"], "UTC", NOW + timedelta(seconds=30)),
        ("in", ["10m"], "UTC", NOW + timedelta(minutes=10)),
        ("in", ["2h"], "UTC", NOW + timedelta(hours=2)),
        ("at", ["22:00"], "UTC", datetime(2026, 11, 30, 22, 0, tzinfo=UTC)),
        ("at", ["14:00"], "UTC", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),  # past today: tomorrow
        ("at", ["22:00"], "Asia/Shanghai", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),  # 23:00 there now
        ("at", ["2026-12-01", "22:00"], "Asia/Shanghai", datetime(2026, 12, 1, 14, 0, tzinfo=UTC)),
    ],
)
def test_times_resolve_in_the_bots_timezone(keyword, words, zone, expected):
    when = schedule.parse_delay(words[0]) if keyword == "in" else schedule.parse_clock(*reversed(words))
    assert schedule.resolve(when, zone, NOW) == expected


@pytest.mark.parametrize(
    ("keyword", "words"),
    [("at", ["25:00"]), ("at", ["12:60"]), ("in", ["-5m"]), ("in", ["0s"]), ("at", ["2026-02-30", "10:00"])],
)
def test_bad_times_are_refused(keyword, words):
    with pytest.raises(errors.InvalidInput):
        schedule.parse_delay(words[0]) if keyword == "in" else schedule.parse_clock(*reversed(words))


@pytest.mark.parametrize(
    "when",
    [
        When("in", seconds=31 * 86400),
        When("at", clock=(10, 0), date=(2026, 11, 1)),
        When("at", clock=(9, 0), date=(2027, 1, 5)),
    ],
)
def test_past_or_too_far_is_refused(when):
    with pytest.raises(errors.InvalidInput):
        schedule.resolve(when, "UTC", NOW)


def test_words_that_are_no_times_stay_words():
    assert schedule.parse_delay("production") is None and schedule.parse_clock("lunch") is None


@pytest.fixture
def config(make_config, tmp_path):
    def build(**bot):
        production = {"script": script(tmp_path, "by_branch.sh", BY_BRANCH)}
        return make_config(environments={"production": production}, bot={"managers": [ADMIN], **bot})

    return build


async def test_a_scheduled_deploy_starts_at_its_time_once_with_two_processes(config):
    cfg = config()
    async with _service(cfg) as a, _service(cfg) as b:
        deploy = await a.trigger("production", "main", user=ADMIN, at=When("in", seconds=2))
        assert deploy.state is Status.SCHEDULED and deploy.scheduled_at is not None
        assert (await a.get(deploy.id)).commit_hash is None
        done = await wait_for_status(b, deploy.id, Status.SUCCESS, timeout=20)
        assert done.started_at - deploy.scheduled_at < timedelta(seconds=5)
        assert await row_count(a) == 1


async def test_a_scheduled_deploy_survives_a_restart_and_a_missed_one_ends_missed(config):
    cfg = config(misfire_grace_minutes=0.05)  # 3 s late at most
    async with _service(cfg) as first:
        kept = await first.trigger("production", "main", user=ADMIN, at=When("in", seconds=2))
        missed = await first.trigger("production", "other", user=OTHER, at=When("in", seconds=3))
        async with first.db.session() as session:  # the bot was down well past its time
            await session.execute(
                update(Deploy).where(Deploy.id == missed.id).values(scheduled_at=seconds_after(db_now(), -60))
            )
    await asyncio.sleep(2.5)  # nobody runs meanwhile: the first is due, within its grace
    async with _service(cfg) as second:
        assert (await wait_for_status(second, kept.id, Status.SUCCESS, timeout=20)).deployed_by == ADMIN
        gone = await wait_for_status(second, missed.id, Status.CANCELLED, timeout=20)
        assert gone.error_message == t(cfg.locale, "outcome.missed") and gone.started_at is None


async def test_a_busy_environment_queues_a_due_deploy(config):
    async with _service(config()) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        await wait_for_status(service, holder.id, Status.RUNNING)
        later = await service.trigger("production", "main", user=OTHER, at=When("in", seconds=1))
        await wait_for_status(service, later.id, Status.QUEUED, timeout=20)
        await service.cancel(holder.id, user=ADMIN)
        await wait_for_status(service, later.id, Status.SUCCESS, timeout=20)


async def test_a_scheduled_deploy_can_be_cancelled_before_its_time(config):
    async with _service(config()) as service:
        deploy = await service.trigger("production", "main", user=ADMIN, at=When("in", seconds=3600))
        done = await service.cancel(deploy.id, user=ADMIN)
        assert done.state is Status.CANCELLED and done.started_at is None


async def test_bad_times_create_nothing(config):
    async with _service(config()) as service:
        for when in (When("in", seconds=40 * 86400), datetime(2020, 1, 1, tzinfo=UTC)):
            with pytest.raises(errors.InvalidInput):
                await service.trigger("production", "main", user=ADMIN, at=when)
        assert await row_count(service) == 0


def frozen_now(cfg, **window):
    start = datetime.now(UTC) - timedelta(hours=1)
    entry = Freeze(start=start, end=start + timedelta(hours=3), reason="周五封网", **window)
    return dataclasses.replace(cfg, freezes=(entry,))


async def test_a_freeze_refuses_triggers_and_a_manager_may_force(config):
    cfg = frozen_now(config())
    async with _service(cfg) as service:
        with pytest.raises(errors.EnvironmentFrozen) as refused:
            await service.trigger("production", "main", user=OTHER)
        assert refused.value.code == "environment_frozen" and "周五封网" in refused.value.message("zh")
        assert await row_count(service) == 0
        with pytest.raises(errors.NotPermitted):  # only managers force
            await service.trigger("production", "main", user=OTHER, force="INC-9")
        forced = await service.trigger("production", "main", user=ADMIN, force="INC-9")
        assert (forced.forced_by, forced.force_reason) == (ADMIN, "INC-9")
        await wait_for_status(service, forced.id, Status.SUCCESS)
        async with service.db.session() as session:
            actions = [a for (a,) in await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))]
        assert actions == ["refused", "refused", "force"]


async def test_a_due_deploy_waits_in_the_queue_while_frozen(config):
    cfg = frozen_now(config())
    async with _service(cfg) as service:
        deploy = await service.trigger("production", "main", user=ADMIN, at=When("in", seconds=1))
        await wait_for_status(service, deploy.id, Status.QUEUED, timeout=20)
        await asyncio.sleep(2.5)  # several turns of the queue: still frozen, not missed
        assert (await service.get(deploy.id)).state is Status.QUEUED


def test_repeating_freeze_windows_follow_their_cron_in_the_bots_timezone(config):
    cfg = config(timezone="Asia/Shanghai")
    weekend = Freeze(cron="0 18 * * 5", hours=62, reason="weekend")  # Friday 18:00 to Monday 08:00
    cfg = dataclasses.replace(cfg, freezes=(weekend,))
    friday_evening = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)  # 19:00 Friday in Shanghai
    monday_morning = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 Monday in Shanghai
    window = frozen(cfg, "production", friday_evening)
    assert window is not None and window[1] == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert frozen(cfg, "production", monday_morning) is None
    assert frozen(cfg, "production", datetime(2026, 12, 4, 9, 0, tzinfo=UTC)) is None  # 17:00 Friday
