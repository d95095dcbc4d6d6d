"""Schemathesis against the OpenAPI document the server serves: no server error, and every response
as the document describes it (status, content type, headers, body schema), for valid and invalid
input, with and without a token.

The server runs in a thread of its own (schemathesis calls it synchronously), on a real port, with
the real service, scripts and database, on SQLite and PostgreSQL. One successful deploy with a
pinned commit exists beforehand, so the examples in the document (id 1) reach the success paths.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings

from bot.app.runtime import create_web_app, start_runtime
from bot.config import Config
from bot.deploy.service import DeployService
from handlers.openapi import build_document
from tests.conftest import SCRIPTS

TOKEN = "secret-token-1"
MAX_EXAMPLES = 15

# What a request the document calls valid may still get: whether an environment, branch, id or page
# exists is only known at run time (400 unknown environment or branch, 400 page past the last,
# 404 no such deploy, 409 busy or finished, 422 not a rollback target).
ACCEPTED_FOR_VALID_INPUT = ["2xx", "400", "404", "409", "422"]

# Loaded from the builder the server serves (the fixture checks the served document is equal),
# because `schemathesis.pytest.from_fixture` does not run under pytest 9 (it sets `node._nodeid`).
schema = schemathesis.openapi.from_dict(
    build_document(),
    config=schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_FOR_VALID_INPUT}},
        }
    ),
)


@contextmanager
def served(config: Config, prepare: Callable[[DeployService], Awaitable[None]]) -> Iterator[str]:
    """`deploybot serve`'s web app on 127.0.0.1 in a thread with its own event loop; yields its URL."""
    started = threading.Event()
    state: dict = {}

    async def run() -> None:
        runtime = await start_runtime(config, base_env=dict(os.environ))
        runner = web.AppRunner(create_web_app(runtime))
        try:
            await prepare(runtime.service)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
            state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
            started.set()
            await state["stop"].wait()
        finally:
            await runner.cleanup()
            await runtime.close()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            state["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=main, name="rest-api-server", daemon=True)
    thread.start()
    started.wait(60)
    if "url" not in state:
        thread.join(10)
        raise RuntimeError(f"the server did not start: {state.get('error')!r}")
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(60)
    if "error" in state:
        raise state["error"]


async def one_successful_deploy(service: DeployService) -> None:
    deploy = await service.trigger("production", "main", user="U0ADMIN01")
    await service.wait_idle()
    assert (deploy.id, (await service.get(deploy.id)).status) == (1, "success")


@pytest.fixture
def api_url(make_config, git_repo) -> Iterator[str]:
    environments = {
        "production": {"aliases": ["prod"], "script": str(SCRIPTS / "steps.sh"), "repo": str(git_repo.path)},
        "staging": {"script": str(SCRIPTS / "steps.sh")},
    }
    config = make_config(environments=environments, environ={"DEPLOYBOT_API_TOKENS": f"ci:{TOKEN}"})
    with served(config, one_successful_deploy) as url:
        assert requests.get(f"{url}/api/v1/openapi.json", timeout=10).json() == schema.raw_schema
        yield url


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case, api_url):
    case.call_and_validate(base_url=api_url, timeout=30)
