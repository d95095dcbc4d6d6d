"""The REST API's governance: `"queue": true` (202 queued, 201 started, 409 queue_full), `"force"`
(a manager past a branch rule, 403 for anyone else, 400 for an empty reason), and
`GET /api/v1/audit`. Real HTTP, the real service and scripts, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from handlers import openapi
from storage.models import Status
from tests.engine.test_queue import BY_BRANCH
from tests.engine.test_service import script
from tests.rest.test_rest import API, TOKEN, Api, serving

OTHER_TOKEN = "secret-token-2"
ENVIRON = {"DEPLOYBOT_API_TOKENS": f"ci:{TOKEN},intern:{OTHER_TOKEN}"}
AS_INTERN = {"Authorization": f"Bearer {OTHER_TOKEN}"}


@pytest.fixture
async def api(make_config, tmp_path) -> AsyncIterator[Api]:
    production = {
        "script": script(tmp_path, "by_branch.sh", BY_BRANCH),
        "aliases": ["prod"],
        "allowed_branches": ["main", "slow", "release/*"],
        "queue_limit": 1,
    }
    config = make_config(
        environments={"production": production, "staging": {"script": script(tmp_path, "s.sh", BY_BRANCH)}},
        bot={"managers": ["api:ci"]},
        environ=ENVIRON,
    )
    async with serving(config) as served:
        yield served


async def trigger(api: Api, headers: dict | None = None, **body):
    return await api.call(
        "POST", f"{API}/trigger", json={"environment": "production", **body}, headers=headers
    )


async def test_queue_answers_202_then_starts_and_a_full_queue_answers_409(api) -> None:
    response, holder = await trigger(api, branch="slow")
    assert response.status == 201 and holder["status"] in ("pending", "running")

    response, body = await trigger(api, branch="main")
    assert (response.status, body["error"]["code"]) == (409, "environment_busy")
    response, queued = await trigger(api, branch="main", queue=True, description="after the slow one")
    assert response.status == 202
    assert (queued["status"], queued["commit_hash"], queued["description"]) == (
        "queued",
        None,
        "after the slow one",
    )
    response, body = await trigger(api, branch="release/2", queue=True)
    assert (response.status, body["error"]["code"]) == (409, "queue_full")
    assert await api.rows() == 2

    _, status = await api.get(f"{API}/status/{queued['id']}")
    assert status["status"] == "queued" and status["finished"] is False
    response, _ = await api.post(f"{API}/cancel/{holder['id']}")
    assert response.status == 202
    done = await api.wait_finished(queued["id"])
    assert done["status"] == "success"

    response, started = await trigger(api, branch="main", queue=True)  # free: it simply starts
    assert response.status == 201 and started["status"] in ("pending", "running")
    await api.wait_finished(started["id"])


async def test_force_by_a_manager_token_is_recorded_and_audited(api) -> None:
    response, body = await trigger(api, branch="hotfix")
    assert (response.status, body["error"]["code"]) == (409, "branch_not_allowed")
    assert "release/*" in body["error"]["message"]

    response, body = await trigger(api, branch="hotfix", force="   ")
    assert (response.status, body["error"]["code"]) == (400, "invalid_input")
    response, body = await trigger(api, branch="hotfix", force="x" * 501)
    assert response.status == 400
    response, body = await trigger(api, AS_INTERN, branch="hotfix", force="INC-7")
    assert (response.status, body["error"]["code"]) == (403, "forbidden")
    assert await api.rows() == 0, "nothing refused was written"

    response, forced = await trigger(api, branch="hotfix", force="INC-7")
    assert response.status == 201
    assert (forced["forced_by"], forced["force_reason"]) == ("api:ci", "INC-7")
    await api.wait_finished(forced["id"])

    response, trail = await api.get("/api/v1/audit?environment=prod")
    assert response.status == 200
    assert [(i["action"], i["actor"]) for i in trail["items"]] == [
        ("force", "api:ci"),
        ("refused", "api:intern"),
        ("refused", "api:ci"),
    ]
    assert trail["items"][0]["deploy_id"] == forced["id"] and trail["items"][0]["detail"] == "INC-7"
    assert (trail["total"], trail["page"], trail["pages"]) == (3, 1, 1)

    response, other = await api.get("/api/v1/audit?environment=staging")
    assert (response.status, other["total"], other["items"]) == (200, 0, [])
    response, paged = await api.get("/api/v1/audit?page=2&page_size=2")
    assert [i["action"] for i in paged["items"]] == ["refused"] and paged["pages"] == 2


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("environment=mars", 400, "unknown_environment"),
        ("page=0", 400, "invalid_input"),
        ("page=2", 400, "invalid_input"),
        ("page_size=101", 400, "invalid_input"),
        ("page=x", 400, "invalid_input"),
    ],
)
async def test_bad_audit_queries_are_refused(api, query, status, code) -> None:
    response, body = await api.get(f"/api/v1/audit?{query}")
    assert (response.status, body["error"]["code"]) == (status, code)


async def test_audit_needs_a_token(api) -> None:
    response, body = await api.get("/api/v1/audit", auth=False)
    assert (response.status, body["error"]["code"]) == (401, "unauthorized")


async def test_bad_trigger_bodies_change_nothing(api) -> None:
    for body in ({"queue": "yes"}, {"force": 7}, {"force": "a\x00b"}):
        response, answer = await trigger(api, branch="main", **body)
        assert (response.status, answer["error"]["code"]) == (400, "invalid_input")
    assert await api.rows() == 0


def test_the_document_describes_queue_force_and_audit() -> None:
    document = openapi.build_document()
    trigger_op = document["paths"]["/api/v1/deploy/trigger"]["post"]
    assert {"201", "202", "403", "409"} <= set(trigger_op["responses"])
    request = document["components"]["schemas"]["TriggerRequest"]["properties"]
    assert request["queue"]["type"] == "boolean" and "force" in request
    audit = document["paths"]["/api/v1/audit"]["get"]
    assert audit["operationId"] == "listAudit"
    assert {p["name"] for p in audit["parameters"]} == {"environment", "page", "page_size"}
    assert "AuditList" in document["components"]["schemas"]
    assert Status.QUEUED.value in document["components"]["schemas"]["Status"]["enum"]
