"""The REST API end to end: real HTTP to the aiohttp app `deploybot serve` runs, the real service,
real scripts, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import codecs
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import errors
from bot.app.runtime import create_web_app, start_runtime
from bot.deploy.events import DeployCreated
from bot.deploy.queries import LogView
from bot.deploy.service import DeployService
from handlers import openapi, schemas
from handlers.rest import ERROR_STATUS, register_routes, status_of, token_name, whole_characters
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, Status
from tests.conftest import SCRIPTS

TOKEN = "secret-token-1"
ENVIRON = {"DEPLOYBOT_API_TOKENS": f"ci:{TOKEN}"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API = "/api/v1/deploy"
SLOW_LOG = (
    "[1/2] start 部署开始\nhalf a character: 中, done\n[2/2] emoji 🚀 launched\nend without newline"
).encode()


@dataclass
class Api:
    client: TestClient
    service: DeployService

    async def call(self, method: str, path: str, *, auth: bool = True, headers: dict | None = None, **kwargs):
        sent = {**(AUTH if auth else {}), **(headers or {})}
        response = await self.client.request(method, path, headers=sent, **kwargs)
        body = await response.json() if response.content_type == "application/json" else await response.read()
        return response, body

    async def get(self, path: str, **kwargs):
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs):
        return await self.call("POST", path, **kwargs)

    async def wait_finished(self, deploy_id: int, timeout: float = 30) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                _, body = await self.get(f"{API}/status/{deploy_id}")
                if body["finished"]:
                    return body
                await asyncio.sleep(0.05)

    async def rows(self) -> int:
        async with self.service.db.session() as session:
            return (await session.execute(select(func.count()).select_from(Deploy))).scalar_one()


@asynccontextmanager
async def serving(config, base_env: dict | None = None, app_hook=None) -> AsyncIterator[Api]:
    runtime = await start_runtime(config, base_env={**os.environ, **(base_env or {})})
    try:
        app = create_web_app(runtime)
        if app_hook:
            app_hook(app)
        async with TestClient(TestServer(app)) as client:
            yield Api(client, runtime.service)
    finally:
        await runtime.close()


@pytest.fixture
async def api(make_config) -> AsyncIterator[Api]:
    async with serving(make_config(environ=ENVIRON)) as served:
        yield served


async def add_deploy(service: DeployService, status: Status, environment="production", **fields) -> int:
    """A deploy row in a given state, without running anything."""
    fields.setdefault("branch", "main")
    fields.setdefault("deployed_by", "U0SOMEONE")
    async with service.db.session() as session:
        row = await repo.insert_deploy(session, environment=environment, **fields)
        if status is not Status.PENDING:
            await repo.transition(session, row.id, Status.RUNNING)
        if status.is_finished:
            await repo.transition(session, row.id, status)
        return row.id


def unfinished_bytes(data: bytes) -> int:
    """How many bytes at the end of `data` begin a UTF-8 character they do not finish."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    decoder.decode(data)
    return len(decoder.getstate()[0])


def iso_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert value.endswith("Z") and parsed.utcoffset().total_seconds() == 0
    return parsed


# --- success paths -------------------------------------------------------------------------------


async def test_trigger_then_status_record_history_and_logs(api):
    created = []
    api.service.events.subscribe(
        lambda event: created.append(event) if isinstance(event, DeployCreated) else None
    )
    response, body = await api.post(
        f"{API}/trigger",
        json={"environment": "prod", "branch": "main", "description": "from CI", "skip_build": True},
    )
    assert response.status == 201, body
    deploy_id = body["id"]
    assert body["environment"] == "production" and body["branch"] == "main"
    assert body["deployed_by"] == "api:ci" and body["source"] == "api"
    assert body["status"] == "pending" and body["skip_build"] is True and body["skip_migrations"] is False
    assert body["description"] == "from CI" and body["rollback_of"] is None
    iso_utc(body["created_at"])
    # the Slack notifier announces API deploys from this event
    assert [(e.deploy.id, e.deploy.source) for e in created] == [(deploy_id, "api")]

    status = await api.wait_finished(deploy_id)
    assert status["status"] == "success" and (status["step_current"], status["step_total"]) == (7, 7)
    assert status["exit_code"] == 0 and status["error_message"] is None

    response, record = await api.get(f"{API}/history/{deploy_id}")
    assert response.status == 200
    started, completed = iso_utc(record["started_at"]), iso_utc(record["completed_at"])
    assert record["duration"] == int((completed - started).total_seconds())
    assert record["log_size"] > 0 and record["deployed_by"] == "api:ci"

    response, page = await api.get(f"{API}/history")
    assert response.status == 200
    assert (page["total"], page["page"], page["page_size"], page["pages"]) == (1, 1, 20, 1)
    assert page["items"] == [record]

    response, logs = await api.get(f"{API}/logs/{deploy_id}")
    assert response.status == 200 and logs["complete"] is True and logs["offset"] == 0
    assert logs["next_offset"] == record["log_size"] == int(response.headers["X-Next-Offset"])
    assert response.headers["X-Log-Complete"] == "true"
    assert "deployed main at  by api:ci skip_build=1 skip_migrations=0" in logs["text"]
    response, raw = await api.get(f"{API}/logs/{deploy_id}?format=raw&offset=6")
    assert response.content_type == "text/plain" and raw == logs["text"].encode()[6:]


async def test_following_a_running_deploy_by_offset_gives_back_every_byte(make_config):
    config = make_config(
        environments={"production": {"script": str(SCRIPTS / "rest_utf8_slow.sh")}}, environ=ENVIRON
    )
    async with serving(config) as api:
        _, deploy = await api.post(f"{API}/trigger", json={"environment": "production"})
        texts, raw_parts = [], []
        json_offset = raw_offset = 0
        json_done = raw_done = held_back = False
        async with asyncio.timeout(30):
            while not (json_done and raw_done):
                response, raw = await api.get(
                    f"{API}/logs/{deploy['id']}", params={"offset": raw_offset, "format": "raw"}
                )
                raw_parts.append(raw)
                raw_offset = int(response.headers["X-Next-Offset"])
                raw_done = response.headers["X-Log-Complete"] == "true"
                _, page = await api.get(f"{API}/logs/{deploy['id']}", params={"offset": json_offset})
                assert page["offset"] == json_offset
                texts.append(page["text"])
                json_offset, json_done = page["next_offset"], page["complete"]
                # the stored log (as read just before) ends inside a character: JSON stops before it
                cut = unfinished_bytes(b"".join(raw_parts))
                held_back |= bool(cut) and json_offset == raw_offset - cut
                await asyncio.sleep(0.05)
        assert "".join(texts).encode() == SLOW_LOG
        assert b"".join(raw_parts) == SLOW_LOG
        assert "\ufffd" not in "".join(texts)
        assert held_back, "the follow never saw a stored chunk ending inside a character"
        final = await api.wait_finished(deploy["id"])
        assert final["status"] == "success" and final["log_size"] == len(SLOW_LOG)


async def test_a_character_cut_by_the_stored_log_is_returned_whole_once_complete(api):
    deploy_id = await add_deploy(api.service, Status.RUNNING)
    async with api.service.db.session() as session:
        await repo.append_log(session, deploy_id, 0, b"abc \xe4\xb8")
    url = f"{API}/logs/{deploy_id}"

    _, page = await api.get(url)
    assert (page["text"], page["next_offset"], page["complete"]) == ("abc ", 4, False)
    response, raw = await api.get(url, params={"format": "raw"})
    assert raw == b"abc \xe4\xb8" and response.headers["X-Next-Offset"] == "6"
    _, page = await api.get(url, params={"offset": 4})
    assert (page["text"], page["next_offset"]) == ("", 4)

    async with api.service.db.session() as session:
        await repo.append_log(session, deploy_id, 6, b"\xad\xf0\x9f")  # 中 complete, 🚀 begun
        await repo.transition(session, deploy_id, Status.SUCCESS)
    _, page = await api.get(url, params={"offset": 4})
    # finished: the unfinished emoji the script left is not held back forever
    assert (page["text"], page["next_offset"], page["complete"]) == ("中\ufffd", 9, True)
    _, page = await api.get(url, params={"offset": 9})
    assert (page["text"], page["next_offset"], page["complete"]) == ("", 9, True)


def test_whole_characters_holds_back_only_an_unfinished_character():
    deploy = Deploy(id=1, status="running")

    def view(data: bytes, complete: bool = False) -> LogView:
        return LogView(deploy, data, 10, 10 + len(data), complete)

    assert whole_characters(view("部署".encode())) == ("部署", 16)
    assert whole_characters(view("部署".encode()[:5])) == ("部", 13)
    assert whole_characters(view(b"\xf0\x9f\x9a")) == ("", 10)
    assert whole_characters(view(b"ok \xff\xfe x")) == ("ok \ufffd\ufffd x", 17)  # not UTF-8: replaced
    assert whole_characters(view(b"x\xf0\x9f", complete=True)) == ("x\ufffd", 13)


async def test_history_filters_pages_newest_first_and_hides_deleted(api):
    service = api.service
    ids = {}
    for name, env, status in [
        ("p1", "production", Status.SUCCESS),
        ("s1", "staging", Status.FAILED),
        ("p2", "production", Status.FAILED),
        ("p3", "production", Status.SUCCESS),
        ("gone", "production", Status.SUCCESS),
        ("p4", "production", Status.CANCELLED),
    ]:
        ids[name] = await add_deploy(service, status, env, branch=name)
    async with service.db.session() as session:
        await repo.update_deploy(session, ids["gone"], is_deleted="Y")

    async def listed(**params) -> dict:
        response, page = await api.get(f"{API}/history", params=params)
        assert response.status == 200, page
        return page

    page = await listed()
    assert page["total"] == 5 and [d["branch"] for d in page["items"]] == ["p4", "p3", "p2", "s1", "p1"]
    page = await listed(environment="prod")
    assert page["total"] == 4 and all(d["environment"] == "production" for d in page["items"])
    page = await listed(status="failed")
    assert [d["branch"] for d in page["items"]] == ["p2", "s1"]
    page = await listed(environment="staging", status="failed")
    assert [d["branch"] for d in page["items"]] == ["s1"]
    page = await listed(page=2, page_size=2)
    assert [d["branch"] for d in page["items"]] == ["p2", "s1"] and (page["total"], page["pages"]) == (5, 3)
    page = await listed(page=3, page_size=2)
    assert [d["branch"] for d in page["items"]] == ["p1"]
    response, body = await api.get(f"{API}/history", params={"page": 4, "page_size": 2})
    assert response.status == 400 and body["error"]["code"] == "invalid_input"
    assert "4" in body["error"]["message"] and "3" in body["error"]["message"]

    gone = ids["gone"]
    for method, path, kwargs in [
        ("GET", f"{API}/status/{gone}", {}),
        ("GET", f"{API}/history/{gone}", {}),
        ("GET", f"{API}/logs/{gone}", {}),
        ("POST", f"{API}/cancel/{gone}", {}),
        ("POST", f"{API}/rollback", {"json": {"deploy_id": gone}}),
    ]:
        response, body = await api.call(method, path, **kwargs)
        assert (response.status, body["error"]["code"]) == (404, "deploy_not_found"), path


async def test_an_empty_history_is_one_empty_page(api):
    response, page = await api.get(f"{API}/history")
    assert response.status == 200
    assert page == {"items": [], "total": 0, "page": 1, "page_size": 20, "pages": 1}


async def test_busy_environment_then_cancel_then_cancel_again(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}}, environ=ENVIRON)
    async with serving(config, base_env={"SLEEP_SECONDS": "60"}) as api:
        _, first = await api.post(f"{API}/trigger", json={"environment": "production"})
        response, body = await api.post(f"{API}/trigger", json={"environment": "production", "branch": "dev"})
        assert (response.status, body["error"]["code"]) == (409, "environment_busy")
        assert f"#{first['id']}" in body["error"]["message"] and "api:ci" in body["error"]["message"]
        assert await api.rows() == 1

        response, body = await api.post(f"{API}/cancel/{first['id']}")
        assert response.status == 202 and body["cancel_requested_by"] == "api:ci"
        final = await api.wait_finished(first["id"])
        assert final["status"] == "cancelled" and "api:ci" in final["error_message"]
        _, record = await api.get(f"{API}/history/{first['id']}")
        assert record["cancelled_by"] == "api:ci"

        response, body = await api.post(f"{API}/cancel/{first['id']}")
        assert (response.status, body["error"]["code"]) == (409, "deploy_finished")
        assert api.service.running_ids == [] and await api.rows() == 1


async def test_rollback_redeploys_a_success_and_refuses_bad_targets(make_config, git_repo):
    config = make_config(
        environments={"production": {"script": str(SCRIPTS / "steps.sh"), "repo": str(git_repo.path)}},
        environ=ENVIRON,
    )
    async with serving(config) as api:
        _, target = await api.post(f"{API}/trigger", json={"environment": "production"})
        assert target["commit_hash"] == git_repo.second
        await api.wait_finished(target["id"])

        response, rollback = await api.post(f"{API}/rollback", json={"deploy_id": target["id"]})
        assert response.status == 201, rollback
        assert rollback["rollback_of"] == target["id"] and rollback["commit_hash"] == git_repo.second
        assert rollback["deployed_by"] == "api:ci" and rollback["source"] == "api"
        assert rollback["description"] == f"回滚到 #{target['id']} ({git_repo.second[:7]})"
        assert (await api.wait_finished(rollback["id"]))["status"] == "success"

        failed = await add_deploy(api.service, Status.FAILED, commit_hash=git_repo.first)
        rows = await api.rows()
        response, body = await api.post(f"{API}/rollback", json={"deploy_id": failed, "description": "why"})
        assert (response.status, body["error"]["code"]) == (422, "rollback_not_eligible")

        git_repo.drop_second()
        response, body = await api.post(f"{API}/rollback", json={"deploy_id": target["id"]})
        assert (response.status, body["error"]["code"]) == (422, "commit_missing")
        response, body = await api.post(
            f"{API}/trigger", json={"environment": "production", "branch": "nope"}
        )
        assert (response.status, body["error"]["code"]) == (400, "unknown_branch")
        assert await api.rows() == rows and api.service.running_ids == []


# --- bad input: a clear 400/404/409/422 and nothing written --------------------------------------

TRIGGER_REFUSALS = [
    ({"environment": "moon"}, "unknown_environment"),
    ({"environment": ""}, "unknown_environment"),
    ({"environment": "production", "branch": "a..b"}, "invalid_branch"),
    ({"environment": "production", "branch": "-rf"}, "invalid_branch"),
    ({"environment": "production", "branch": "$(reboot)"}, "invalid_branch"),
    ({"environment": "production", "description": "x" * 2001}, "description_too_long"),
    ({"environment": "production", "description": "a\x00b"}, "invalid_input"),
    ({}, "invalid_input"),
    ({"environment": 5}, "invalid_input"),
    ({"environment": "production", "skip_build": "yes"}, "invalid_input"),
    ({"environment": "production", "skip_build": 1}, "invalid_input"),
    ({"environment": "production", "branch": ["main"]}, "invalid_input"),
    ({"environment": "production", "force": True}, "invalid_input"),
]
RAW_BODIES = [b"", b"not json", b"[1, 2]", b'"production"', b"null", b'{"environment": "\xff"}']


async def test_bad_input_is_refused_clearly_and_writes_nothing(api):
    finished = await add_deploy(api.service, Status.FAILED)
    rows = await api.rows()

    async def refused(method, path, status, code, **kwargs) -> dict:
        response, body = await api.call(method, path, **kwargs)
        assert (response.status, body["error"]["code"]) == (status, code), (path, kwargs, body)
        assert body["error"]["message"]
        return body

    for payload, code in TRIGGER_REFUSALS:
        await refused("POST", f"{API}/trigger", 400, code, json=payload)
    for raw in RAW_BODIES:
        await refused("POST", f"{API}/trigger", 400, "invalid_input", data=raw)
        await refused("POST", f"{API}/rollback", 400, "invalid_input", data=raw)
    for payload in [{"deploy_id": "1"}, {"deploy_id": 0}, {"deploy_id": 1.5}, {"deploy_id": 2**40}, {}]:
        await refused("POST", f"{API}/rollback", 400, "invalid_input", json=payload)
    await refused("POST", f"{API}/rollback", 404, "deploy_not_found", json={"deploy_id": 999})
    await refused("POST", f"{API}/rollback", 422, "rollback_not_eligible", json={"deploy_id": finished})
    description = {"deploy_id": finished, "description": "x" * 2001}
    await refused("POST", f"{API}/rollback", 400, "description_too_long", json=description)
    for bad_id in ["abc", "1.5", "0", "-1", "99999999999", "%20"]:
        for method, route in [("GET", "status"), ("GET", "logs"), ("GET", "history"), ("POST", "cancel")]:
            await refused(method, f"{API}/{route}/{bad_id}", 400, "invalid_input")
    for method, route in [("GET", "status"), ("GET", "logs"), ("GET", "history"), ("POST", "cancel")]:
        await refused(method, f"{API}/{route}/999", 404, "deploy_not_found")
    await refused("POST", f"{API}/cancel/{finished}", 409, "deploy_finished")
    for params in [{"offset": "-1"}, {"offset": "x"}, {"format": "xml"}]:
        await refused("GET", f"{API}/logs/{finished}", 400, "invalid_input", params=params)
    for params, code in [
        ({"page": "0"}, "invalid_input"),
        ({"page": "two"}, "invalid_input"),
        ({"page": "2"}, "invalid_input"),
        ({"page_size": "0"}, "invalid_input"),
        ({"page_size": "101"}, "invalid_input"),
        ({"status": "exploded"}, "invalid_input"),
        ({"environment": "moon"}, "unknown_environment"),
    ]:
        await refused("GET", f"{API}/history", 400, code, params=params)

    assert await api.rows() == rows and api.service.running_ids == []


async def test_error_messages_follow_the_locale(make_config):
    body = {"environment": "moon"}
    async with serving(make_config(environ=ENVIRON)) as api:
        _, zh = await api.post(f"{API}/trigger", json=body)
        _, en = await api.post(f"{API}/trigger", json=body, headers={"Accept-Language": "en-US,en;q=0.9"})
        _, mixed = await api.post(f"{API}/trigger", json=body, headers={"Accept-Language": "fr, zh;q=0.5"})
        _, field = await api.post(f"{API}/trigger", json={"environment": 5})
    assert zh["error"]["message"].startswith("未知的部署环境 `moon`")
    assert en["error"]["message"].startswith("Unknown environment `moon`")
    assert mixed["error"]["message"] == zh["error"]["message"]
    assert field["error"]["message"] == "输入无效：`environment` 必须是字符串"
    async with serving(make_config(environ=ENVIRON, bot={"locale": "en"})) as api:
        _, en_server = await api.get(f"{API}/history", params={"page_size": "500"})
        _, unauthorized = await api.get(f"{API}/history", auth=False)
    assert en_server["error"]["message"] == "Invalid input: `page_size` must be at most 100"
    assert unauthorized["error"]["message"].startswith("Missing or wrong API token")


# --- auth ----------------------------------------------------------------------------------------


def protected_calls(deploy_id: int) -> list[tuple[str, str, dict]]:
    calls = []
    for op in openapi.OPERATIONS:
        if op.public:
            continue
        body = {"json": {"environment": "production"}} if op.operation_id == "triggerDeploy" else {}
        if op.operation_id == "rollbackDeploy":
            body = {"json": {"deploy_id": deploy_id}}
        path = op.path.replace("{deploy_id}", str(deploy_id)).replace("{environment}", "production")
        calls.append((op.method, path, body))
    return calls


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-1",
        f"Basic {TOKEN}",
        f"bearer{TOKEN}",
        "Bearer ",
        f"Bearer {TOKEN}x",
        "Bearer é€",
    ],
)
async def test_every_deploy_endpoint_needs_a_valid_token(api, authorization):
    deploy_id = await add_deploy(api.service, Status.RUNNING)
    rows = await api.rows()
    headers = {"Authorization": authorization} if authorization else {}
    for method, path, kwargs in protected_calls(deploy_id):
        response, body = await api.call(method, path, auth=False, headers=headers, **kwargs)
        assert response.status == 401 and body["error"]["code"] == "unauthorized", (path, body)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await api.rows() == rows
    _, status = await api.get(f"{API}/status/{deploy_id}")
    assert status["status"] == "running" and status["cancel_requested_by"] is None


async def test_each_token_acts_under_its_own_name_and_no_tokens_means_no_access(make_config):
    environ = {"DEPLOYBOT_API_TOKENS": f"ci:{TOKEN}, release-bot:another-token-22"}
    async with serving(make_config(environ=environ)) as api:
        response, body = await api.post(
            f"{API}/trigger",
            json={"environment": "staging"},
            auth=False,
            headers={"Authorization": "bearer another-token-22"},
        )
        assert response.status == 201 and body["deployed_by"] == "api:release-bot"
        await api.wait_finished(body["id"])
    async with serving(make_config()) as api:
        response, _ = await api.get(f"{API}/history")
        assert response.status == 401
        response, _ = await api.get(f"{API}/history", auth=False, headers={"Authorization": "Bearer "})
        assert response.status == 401


def test_token_lookup():
    tokens = {"secret-token-1": "ci", "other-token-2": "cd"}
    assert token_name("Bearer secret-token-1", tokens) == "ci"
    assert token_name("  bearer   other-token-2 ", tokens) == "cd"
    assert token_name("Bearer secret-token-", tokens) is None
    assert token_name("Bearer \udcff", tokens) is None
    assert token_name(None, tokens) is None


# --- health, the document, and the error envelope ------------------------------------------------


async def test_health_and_document_need_no_token(api):
    response, body = await api.get("/healthz", auth=False)
    assert response.status == 200 and body == {"status": "ok", "database": "ok"}
    response, document = await api.get(f"{schemas.API_PREFIX}/openapi.json", auth=False)
    assert response.status == 200 and document["openapi"] == "3.1.0"
    routes = {
        (route.method, route.resource.canonical)
        for route in api.client.app.router.routes()
        if route.resource.canonical.startswith(("/api/", "/healthz"))
    }
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert routes == documented and len(documented) == len(openapi.OPERATIONS)
    for path, item in document["paths"].items():
        for operation in item.values():
            codes = set(operation["responses"])
            assert "500" in codes
            if operation.get("security") != []:
                assert {"400", "401"} <= codes, path
    trigger = document["components"]["schemas"]["TriggerRequest"]
    assert trigger["additionalProperties"] is False and trigger["required"] == ["environment"]
    assert trigger["properties"]["description"]["maxLength"] == 2000


async def test_health_asks_the_database_at_most_once_a_second(api, monkeypatch):
    pings = []
    real = api.service.db.ping

    async def counted() -> bool:
        pings.append(1)
        return await real()

    monkeypatch.setattr(api.service.db, "ping", counted)
    answers = await asyncio.gather(*(api.get("/healthz", auth=False) for _ in range(30)))
    assert all(response.status == 200 for response, _ in answers)
    assert len(pings) == 1
    await asyncio.sleep(1.05)
    await api.get("/healthz", auth=False)
    assert len(pings) == 2


async def test_health_reports_an_unreachable_database(config):
    service = DeployService(config, Database("postgresql://nobody@127.0.0.1:9/nothing"))
    app = web.Application()
    register_routes(app, service, config)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        assert response.status == 503
        assert await response.json() == {"status": "unavailable", "database": "unreachable"}
    await service.db.dispose()


async def test_http_errors_and_bugs_are_json(make_config, caplog):
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug with a secret in it")

    def add_broken(app: web.Application) -> None:
        app.router.add_get(f"{schemas.API_PREFIX}/broken", broken)

    async with serving(make_config(environ=ENVIRON), app_hook=add_broken) as api:
        response, body = await api.get(f"{API}/nothing-here")
        assert (response.status, body["error"]["code"]) == (404, "not_found")
        response, body = await api.call("DELETE", f"{API}/trigger")
        assert (response.status, body["error"]["code"]) == (405, "method_not_allowed")
        assert response.headers["Allow"] == "POST"
        response, body = await api.get(f"{API}/trigger")
        assert response.status == 405
        response, body = await api.post(f"{API}/trigger", data=b"x" * (2 * 1024 * 1024))
        assert (response.status, body["error"]["code"]) == (413, "payload_too_large")
        response, body = await api.get(f"{schemas.API_PREFIX}/broken")
        assert (response.status, body["error"]["code"]) == (500, "internal_error")
        assert "secret" not in body["error"]["message"]
        assert "a bug with a secret in it" in caplog.text
        assert await api.rows() == 0


def test_every_refusal_has_its_http_status():
    def subclasses(kind):
        for sub in kind.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert set(subclasses(errors.DeployError)) <= set(ERROR_STATUS)
    assert status_of(errors.EnvironmentBusy(environment="x", deploy_id=1, branch="b", user="u")) == 409
    assert status_of(errors.RollbackNotEligible(deploy_id=1, reason="r")) == 422
    assert status_of(errors.RepoUnavailable(environment="x", detail="d")) == 502
