"""Environment locks through the service (DESIGN §9), on SQLite and PostgreSQL: durations, lock,
extend and unlock with their audit rows, who may do what, the events, and the upkeep job that ends
expired locks and reminds holders, each exactly once with two processes running it at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.deploy.lock_events import LockExpired, LockReleased, LockReminder, LockTaken
from bot.deploy.scheduler import Scheduler
from bot.deploy.service import DeployService
from bot.errors import EnvironmentLocked, InvalidInput, LockedByOther, NotLocked, NotPermitted
from storage import audit
from storage.db import Database
from storage.models import AuditEvent, EnvironmentLock, Status, utcnow
from tests.conftest import ADMIN, SCRIPTS

OTHER = "U0OTHER02"
MANAGER = "U0BOSS003"


async def lock_rows(service: DeployService) -> list[EnvironmentLock]:
    async with service.db.session() as session:
        return list((await session.execute(select(EnvironmentLock))).scalars())


async def audit_rows(service: DeployService) -> list[AuditEvent]:
    async with service.db.session() as session:
        return list(reversed((await audit.page(session, page_size=100)).items))


def minutes_of(lock: EnvironmentLock) -> float:
    return (lock.expires_at - lock.locked_at).total_seconds() / 60


@pytest.fixture
async def governed(make_config) -> AsyncIterator[DeployService]:
    """Production deployable by ADMIN and OTHER only; MANAGER is the only manager."""
    environments = {
        "production": {
            "label": "生产环境",
            "aliases": ["prod"],
            "script": str(SCRIPTS / "steps.sh"),
            "deployers": [ADMIN, OTHER, MANAGER],
        },
        "staging": {"script": str(SCRIPTS / "steps.sh"), "deployers": [ADMIN]},
    }
    config = make_config(environments=environments, bot={"managers": [MANAGER]})
    db = Database(config.database_url)
    service = DeployService(config, db, base_env=dict(os.environ))
    await service.start()
    yield service
    await service.close()
    await db.dispose()


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "minutes"),
    [
        ("30m", 30),
        ("2h", 120),
        ("1d", 1440),
        ("7d", 10080),
        ("10080m", 10080),
        (" 1H ", 60),
        (None, 120),
        (45, 45),
    ],
)
async def test_durations(service, duration, minutes) -> None:
    lock = await service.locks.lock("prod", user=ADMIN, duration=duration, reason="release")
    assert lock.environment == "production" and lock.holder == ADMIN and lock.reason == "release"
    assert minutes_of(lock) == pytest.approx(minutes, abs=0.1)
    assert [row.environment for row in await lock_rows(service)] == ["production"]


@pytest.mark.parametrize(
    "duration", ["0m", "-1h", "99d", "8d", "10081m", "abc", "", "1.5h", "2 h", "h", 0, -5, 10081, True]
)
async def test_bad_durations_change_nothing(service, duration) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.locks.lock("production", user=ADMIN, duration=duration)
    assert "30m" in refused.value.message("en") and "7 天" in refused.value.message("zh")
    assert await lock_rows(service) == []
    assert await audit_rows(service) == []


@pytest.mark.parametrize("reason", ["x" * 501, "nul\x00byte"])
async def test_bad_reasons_change_nothing(service, reason) -> None:
    with pytest.raises(InvalidInput):
        await service.locks.lock("production", user=ADMIN, reason=reason)
    assert await lock_rows(service) == []


# --- lock, extend, unlock -------------------------------------------------------------------------


async def test_lock_extend_and_unlock_are_audited_and_published(service) -> None:
    events: list = []
    service.events.subscribe(events.append)

    first = await service.locks.lock("production", user=ADMIN, duration="30m", reason="release 4.2")
    again = await service.locks.lock("production", user=ADMIN, duration="3h")
    assert again.locked_at == first.locked_at, "an extension keeps when it was taken"
    assert minutes_of(again) == pytest.approx(180, abs=0.2)
    assert again.reason == "release 4.2", "extending without a reason keeps it"
    assert (await service.locks.current("prod")).expires_at == again.expires_at
    assert [lock.environment for lock in await service.locks.all()] == ["production"]

    released = await service.locks.unlock("production", user=ADMIN)
    assert released.holder == ADMIN
    assert await service.locks.current("production") is None and await lock_rows(service) == []

    taken = [e for e in events if isinstance(e, LockTaken)]
    assert [e.extended for e in taken] == [False, True]
    [gone] = [e for e in events if isinstance(e, LockReleased)]
    assert gone.by == ADMIN and gone.was_holder

    rows = await audit_rows(service)
    assert [(r.actor, r.action, r.environment) for r in rows] == [
        (ADMIN, "lock", "production"),
        (ADMIN, "extend", "production"),
        (ADMIN, "unlock", "production"),
    ]
    assert rows[0].detail.startswith("30m,") and "release 4.2" in rows[0].detail
    assert rows[1].detail.startswith("180m,")
    assert f"lock of {ADMIN}" in rows[2].detail


async def test_someone_elses_lock_is_refused_and_stays(governed) -> None:
    mine = await governed.locks.lock("production", user=ADMIN, duration="1h", reason="db upgrade")
    with pytest.raises(EnvironmentLocked) as refused:
        await governed.locks.lock("production", user=OTHER, duration="2h")
    assert refused.value.params["holder"] == ADMIN and refused.value.params["reason"] == "db upgrade"
    with pytest.raises(LockedByOther):
        await governed.locks.unlock("production", user=OTHER)
    [row] = await lock_rows(governed)
    assert (row.holder, row.expires_at) == (ADMIN, mine.expires_at)
    actions = [(r.actor, r.action) for r in await audit_rows(governed)]
    assert actions == [(ADMIN, "lock"), (OTHER, "refused")]


async def test_only_deployers_may_lock(governed) -> None:
    with pytest.raises(NotPermitted):
        await governed.locks.lock("staging", user=OTHER)
    assert await lock_rows(governed) == []
    assert [(r.actor, r.action) for r in await audit_rows(governed)] == [(OTHER, "refused")]


async def test_unlocking_what_is_not_locked(service) -> None:
    with pytest.raises(NotLocked):
        await service.locks.unlock("production", user=ADMIN)
    with pytest.raises(NotLocked):
        await service.locks.extend("production", user=ADMIN)


async def test_a_manager_unlocks_someone_elses_lock_and_the_event_says_so(governed) -> None:
    events: list = []
    governed.events.subscribe(events.append)
    await governed.locks.lock("production", user=OTHER, reason="load test")
    released = await governed.locks.unlock("prod", user=MANAGER)
    assert released.holder == OTHER and await lock_rows(governed) == []
    [event] = [e for e in events if isinstance(e, LockReleased)]
    assert (event.by, event.was_holder, event.lock.holder) == (MANAGER, False, OTHER)
    [row] = [r for r in await audit_rows(governed) if r.action == "unlock"]
    assert row.actor == MANAGER and f"lock of {OTHER}" in row.detail and "load test" in row.detail


async def test_extend_adds_an_hour_to_what_is_left(service) -> None:
    lock = await service.locks.lock("production", user=ADMIN, duration="20m")
    longer = await service.locks.extend("production", user=ADMIN)
    assert (longer.expires_at - lock.expires_at).total_seconds() == pytest.approx(3600, abs=5)
    assert [r.action for r in await audit_rows(service)] == ["lock", "extend"]


# --- deploys while locked -------------------------------------------------------------------------


async def test_a_trigger_by_someone_else_is_refused_while_locked_and_allowed_after(governed) -> None:
    await governed.locks.lock("production", user=ADMIN, duration="1h", reason="release")
    with pytest.raises(EnvironmentLocked):
        await governed.trigger("production", "main", user=OTHER)
    assert (await governed.history()).total == 0

    own = await governed.trigger("production", "main", user=ADMIN)  # the holder deploys
    await governed.wait_idle()
    assert (await governed.get(own.id)).state is Status.SUCCESS

    await governed.locks.unlock("production", user=ADMIN)
    theirs = await governed.trigger("production", "main", user=OTHER)
    await governed.wait_idle()
    assert (await governed.get(theirs.id)).state is Status.SUCCESS


# --- the upkeep job -------------------------------------------------------------------------------


async def test_reminder_and_expiry_each_once_with_two_processes(service, config) -> None:
    other_db = Database(config.database_url)
    other = DeployService(config, other_db, base_env=dict(os.environ))
    seen: list = []
    service.events.subscribe(seen.append)
    other.events.subscribe(seen.append)
    try:
        await service.locks.lock("production", user=ADMIN, duration="2h")
        await service.locks.lock("staging", user=ADMIN, duration="5m")  # within the reminder window

        await asyncio.gather(service.locks.tick(), other.locks.tick())
        await asyncio.gather(service.locks.tick(), other.locks.tick())
        reminders = [e for e in seen if isinstance(e, LockReminder)]
        assert [e.lock.environment for e in reminders] == ["staging"]
        assert not [e for e in seen if isinstance(e, LockExpired)]

        async with service.db.session() as session:
            past = utcnow() - timedelta(seconds=1)
            await session.execute(
                update(EnvironmentLock)
                .where(EnvironmentLock.environment == "staging")
                .values(expires_at=past)
            )
        assert await service.locks.current("staging") is None, "an expired lock holds nothing at once"
        await asyncio.gather(service.locks.tick(), other.locks.tick())
        await asyncio.gather(service.locks.tick(), other.locks.tick())
        expired = [e for e in seen if isinstance(e, LockExpired)]
        assert [(e.lock.environment, e.lock.holder) for e in expired] == [("staging", ADMIN)]
        assert [row.environment for row in await lock_rows(service)] == ["production"]
        assert len([e for e in seen if isinstance(e, LockReminder)]) == 1
        assert service.locks.known("production") is not None and service.locks.known("staging") is None
    finally:
        await other_db.dispose()


async def test_an_extension_earns_a_new_reminder(service) -> None:
    seen: list = []
    service.events.subscribe(seen.append)
    await service.locks.lock("production", user=ADMIN, duration="5m")
    await service.locks.tick()
    await service.locks.lock("production", user=ADMIN, duration="8m")
    await service.locks.tick()
    await service.locks.tick()
    assert len([e for e in seen if isinstance(e, LockReminder)]) == 2


async def test_every_process_but_the_cli_runs_the_lock_job(config, service) -> None:
    for locks, expected in ((True, "interval[0:00:30]"), (False, None)):
        scheduler = Scheduler(config, service, locks=locks)
        scheduler.start()
        try:
            assert scheduler.jobs().get("locks") == expected
        finally:
            scheduler.shutdown()
