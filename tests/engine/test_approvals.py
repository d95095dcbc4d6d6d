"""Approval by a second pair of eyes (DESIGN §9), on a real database (SQLite and PostgreSQL) with
real scripts: a deploy waits holding its environment, unreaped; the requester never approves their
own; approval starts it, rejection and expiry end it cancelled; double clicks and approve racing
reject resolve to one outcome; every refusal changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from bot import errors
from bot.i18n import t
from storage.models import AuditEvent, Deploy, Status, db_now, seconds_after
from tests.conftest import ADMIN, SCRIPTS
from tests.engine.test_service import _service, wait_for_status

APPROVER = "U0APPROVE1"
OTHER_APPROVER = "U0APPROVE2"


def approval_config(make_config, **production):
    return make_config(
        environments={
            "production": {
                "script": str(SCRIPTS / "steps.sh"),
                "approval": "required",
                "approvers": [APPROVER, OTHER_APPROVER, ADMIN],
                **production,
            },
            "staging": {"script": str(SCRIPTS / "steps.sh")},
        }
    )


async def audit_actions(service) -> list[tuple[str, str]]:
    async with service.db.session() as session:
        rows = await session.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id))
        return [tuple(row) for row in rows]


async def test_a_deploy_waits_for_approval_holding_its_environment_and_is_never_reaped(make_config):
    config = approval_config(make_config)
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        assert deploy.state is Status.AWAITING_APPROVAL and deploy.lease_expires_at is None
        with pytest.raises(errors.EnvironmentBusy):
            await service.trigger("production", "main", user=OTHER_APPROVER)
        async with service.db.session() as session:  # however long it waits
            await session.execute(update(Deploy).values(created_at=seconds_after(db_now(), -600)))
        assert await service.reap() == []
        assert (await service.get(deploy.id)).state is Status.AWAITING_APPROVAL
        assert service.running_ids == []


async def test_approval_starts_it_and_is_recorded(make_config):
    config = approval_config(make_config)
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        approved = await service.approvals.approve(deploy.id, APPROVER)
        assert approved.approved_by == APPROVER and approved.approved_at is not None
        done = await wait_for_status(service, deploy.id, Status.SUCCESS)
        assert done.approved_by == APPROVER and done.log_size > 0
        assert (APPROVER, "approve") in await audit_actions(service)


async def test_the_requester_and_non_approvers_cannot_approve_and_nothing_changes(make_config):
    config = approval_config(make_config)
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        with pytest.raises(errors.SelfApproval) as own:
            await service.approvals.approve(deploy.id, ADMIN)
        assert own.value.code == "self_approval"
        with pytest.raises(errors.NotPermitted):
            await service.approvals.approve(deploy.id, "U0STRANGER")
        with pytest.raises(errors.NotPermitted):
            await service.approvals.reject(deploy.id, "U0STRANGER")
        still = await service.get(deploy.id)
        assert (still.state, still.approved_by) == (Status.AWAITING_APPROVAL, None)
        assert await audit_actions(service) == [
            (ADMIN, "refused"),
            ("U0STRANGER", "refused"),
            ("U0STRANGER", "refused"),
        ]


async def test_rejection_ends_it_cancelled_naming_who_and_nothing_ran(make_config):
    config = approval_config(make_config)
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        rejected = await service.approvals.reject(deploy.id, APPROVER)
        assert rejected.state is Status.CANCELLED
        assert rejected.error_message == t(config.locale, "outcome.rejected", user=APPROVER)
        assert rejected.started_at is None and rejected.log_size == 0
        for act in (service.approvals.approve, service.approvals.reject):  # too late for either
            with pytest.raises(errors.NotAwaitingApproval):
                await act(deploy.id, OTHER_APPROVER)
        # the environment is free again
        other = await service.trigger("production", "main", user=APPROVER)
        assert other.state is Status.AWAITING_APPROVAL


async def test_a_double_click_approves_once(make_config):
    config = approval_config(make_config)
    async with _service(config) as a, _service(config) as b:
        deploy = await a.trigger("production", "main", user=ADMIN)
        results = await asyncio.gather(
            *(svc.approvals.approve(deploy.id, APPROVER) for svc in (a, b, a, b)), return_exceptions=True
        )
        wins = [r for r in results if isinstance(r, Deploy)]
        assert len(wins) == 1, results
        assert all(isinstance(r, errors.NotAwaitingApproval) for r in results if r not in wins)
        await wait_for_status(a, deploy.id, Status.SUCCESS)
        assert [x for x in await audit_actions(a) if x[1] == "approve"] == [(APPROVER, "approve")]


async def test_approve_racing_reject_the_first_wins(make_config):
    config = approval_config(make_config)
    async with _service(config) as a, _service(config) as b:
        deploy = await a.trigger("production", "main", user=ADMIN)
        approve, reject = await asyncio.gather(
            a.approvals.approve(deploy.id, APPROVER),
            b.approvals.reject(deploy.id, OTHER_APPROVER),
            return_exceptions=True,
        )
        outcomes = [r for r in (approve, reject) if isinstance(r, Deploy)]
        assert len(outcomes) == 1, (approve, reject)
        final = await wait_for_status(a, deploy.id, Status.SUCCESS, Status.CANCELLED)
        if isinstance(approve, Deploy):
            assert final.state is Status.SUCCESS and final.cancelled_by is None
        else:
            assert final.state is Status.CANCELLED and final.approved_by is None and final.started_at is None


async def test_an_unanswered_request_expires(make_config):
    config = approval_config(make_config, approval_timeout_minutes=0.01)
    async with _service(config) as a, _service(config) as b:
        deploy = await a.trigger("production", "main", user=ADMIN)
        await asyncio.sleep(1.0)
        ended = await asyncio.gather(a.approvals.expire(), b.approvals.expire())
        assert sorted(ended[0] + ended[1]) == [deploy.id]  # one of them ended it, once
        done = await a.get(deploy.id)
        assert done.state is Status.CANCELLED
        assert done.error_message == t(config.locale, "outcome.approval_expired")
        with pytest.raises(errors.NotAwaitingApproval):
            await a.approvals.approve(deploy.id, APPROVER)


async def test_rollbacks_skip_approval_when_the_environment_says_so(make_config):
    config = approval_config(make_config, approval_for_rollback=False)
    async with _service(config) as service:
        first = await service.trigger("production", "main", user=ADMIN)
        await service.approvals.approve(first.id, APPROVER)
        await wait_for_status(service, first.id, Status.SUCCESS)
        async with service.db.session() as session:  # a commit to roll back to
            await session.execute(update(Deploy).where(Deploy.id == first.id).values(commit_hash="a" * 40))
        back = await service.rollback(first.id, user=ADMIN)
        assert back.state is Status.PENDING
        await wait_for_status(service, back.id, Status.SUCCESS)


async def test_the_requester_may_cancel_a_deploy_awaiting_approval(make_config):
    config = approval_config(make_config)
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        cancelled = await service.cancel(deploy.id, user=ADMIN)
        assert cancelled.state is Status.CANCELLED and cancelled.cancelled_by == ADMIN
        with pytest.raises(errors.NotAwaitingApproval):
            await service.approvals.approve(deploy.id, APPROVER)
