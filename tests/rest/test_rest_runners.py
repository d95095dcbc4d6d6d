"""`GET /api/v1/runners` (DESIGN §12): the live bot processes on the database and the environments
each runs, over real HTTP to the app `deploybot serve` runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator

import pytest

from bot.deploy.service import DeployService
from handlers import openapi, schemas
from storage.db import Database
from tests.rest.test_rest import ENVIRON, Api, iso_utc, serving

RUNNERS = f"{schemas.API_PREFIX}/runners"


@pytest.fixture
async def api(make_config) -> AsyncIterator[Api]:
    async with serving(make_config(environ=ENVIRON)) as served:
        yield served


async def test_runners_need_a_token(api) -> None:
    response, body = await api.get(RUNNERS, auth=False)
    assert response.status == 401 and body["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response, body = await api.get(RUNNERS, auth=False, headers={"Authorization": "Bearer wrong"})
    assert response.status == 401


async def test_runners_list_this_process_and_another_on_the_same_database(api, make_config) -> None:
    response, body = await api.get(RUNNERS)
    assert response.status == 200, body
    [this] = body["runners"]
    assert this == {
        "runner_id": api.service.runner_id,
        "host": this["host"],
        "pid": os.getpid(),
        "role": "serve",
        "environments": ["production", "staging"],
        "draining": False,
        "started_at": this["started_at"],
        "seen_at": this["seen_at"],
        "this_process": True,
    }
    assert iso_utc(this["started_at"]) <= iso_utc(this["seen_at"])

    config = dataclasses.replace(make_config(), runs=frozenset({"staging"}))
    db = Database(config.database_url)
    worker = DeployService(config, db, base_env=dict(os.environ), role="worker")
    await worker.start()
    try:
        worker.drain()
        _, body = await api.get(RUNNERS)
    finally:
        await worker.close()
        await db.dispose()

    first, second = body["runners"]  # oldest first
    assert [r["this_process"] for r in body["runners"]] == [True, False]
    assert first["runner_id"] == api.service.runner_id
    assert (second["runner_id"], second["role"], second["environments"]) == (
        worker.runner_id,
        "worker",
        ["staging"],
    )
    iso_utc(second["started_at"]), iso_utc(second["seen_at"])

    _, body = await api.get(RUNNERS)  # a process that stopped is gone at once
    assert [r["runner_id"] for r in body["runners"]] == [api.service.runner_id]


async def test_the_document_describes_the_runners_listing() -> None:
    document = openapi.build_document()
    operation = document["paths"][RUNNERS]["get"]
    assert operation["operationId"] == "listRunners"
    assert set(operation["responses"]) == {"200", "400", "401", "500"}
    assert "RunnerRecord" in document["components"]["schemas"]
