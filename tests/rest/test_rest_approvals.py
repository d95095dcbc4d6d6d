"""Approvals over REST: a token acts as `api:<name>`, never approves what it asked for, and the
first of approve and reject wins; refusals change nothing."""

from __future__ import annotations

import os

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app.runtime import create_web_app, start_runtime
from storage.models import Status
from tests.conftest import ADMIN, SCRIPTS
from tests.engine.test_service import wait_for_status

TOKENS = {"DEPLOYBOT_API_TOKENS": "ci:ci-token-0123456789,ops:ops-token-0123456789"}


@pytest.fixture
async def api(make_config):
    config = make_config(
        environments={
            "production": {
                "script": str(SCRIPTS / "steps.sh"),
                "approval": "required",
                "approvers": ["api:ops", ADMIN],
            }
        },
        environ=TOKENS,
    )
    runtime = await start_runtime(config, base_env=dict(os.environ))
    try:
        async with TestClient(TestServer(create_web_app(runtime))) as client:
            yield runtime, client
    finally:
        await runtime.close()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token-0123456789"}


async def test_approve_and_reject_over_rest(api):
    runtime, client = api
    response = await client.post(
        "/api/v1/deploy/trigger", json={"environment": "production"}, headers=auth("ci")
    )
    assert response.status == 201
    deploy = await response.json()
    assert deploy["status"] == "awaiting_approval"

    own = await client.post(f"/api/v1/deploy/approve/{deploy['id']}", headers=auth("ci"))
    assert own.status == 403 and (await own.json())["error"]["code"] == "forbidden"  # ci is no approver

    ok = await client.post(f"/api/v1/deploy/approve/{deploy['id']}", headers=auth("ops"))
    assert ok.status == 200 and (await ok.json())["status"] in ("pending", "running", "success")
    again = await client.post(f"/api/v1/deploy/reject/{deploy['id']}", headers=auth("ops"))
    assert again.status == 409 and (await again.json())["error"]["code"] == "not_awaiting_approval"
    done = await wait_for_status(runtime.service, deploy["id"], Status.SUCCESS)
    assert done.approved_by == "api:ops"


async def test_a_token_never_approves_what_it_asked_for(api):
    runtime, client = api
    response = await client.post(
        "/api/v1/deploy/trigger", json={"environment": "production"}, headers=auth("ops")
    )
    deploy = await response.json()
    own = await client.post(f"/api/v1/deploy/approve/{deploy['id']}", headers=auth("ops"))
    assert own.status == 403 and (await own.json())["error"]["code"] == "self_approval"
    assert (await runtime.service.get(deploy["id"])).state is Status.AWAITING_APPROVAL
    missing = await client.post("/api/v1/deploy/approve/999999", headers=auth("ops"))
    assert missing.status == 404
    rejected = await client.post(f"/api/v1/deploy/reject/{deploy['id']}", headers=auth("ops"))
    assert rejected.status == 200 and (await rejected.json())["status"] == "cancelled"
