"""SIGTERM drains `deploybot serve`: it stops taking requests, lets its deploys finish, then exits; a
second SIGTERM ends what still runs as interrupted. Real processes, real databases, local Slack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.i18n import t
from storage import repository as repo
from storage.db import Database
from storage.models import Status
from tests.conftest import ADMIN, SCRIPTS, free_port
from tests.fakeslack import FakeSlack

TOKEN = "drain-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, db_url: str, slack: FakeSlack, sleep: str) -> AsyncIterator[tuple]:
    """`deploybot serve` as a child process, once it answers /healthz: (process, url, http client).
    Killed on the way out if a test left it running."""
    config = tmp_path / "deploybot.toml"
    config.write_text(
        f'[bot]\nadmins = ["{ADMIN}"]\ndatabase_url = "{db_url}"\nnotify_channel = "C0DEPLOY1"\n'
        f'[environments.production]\nscript = "{SCRIPTS / "sleepy.sh"}"\n'
    )
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-drain-test",
        "SLACK_SIGNING_SECRET": "drain-signing-secret",
        "SLACK_API_URL": slack.api_url,
        "DEPLOYBOT_API_TOKENS": f"ci:{TOKEN}",
        "SLEEP_SECONDS": sleep,
    }
    for name in ("DATABASE_URL", "SLACK_APP_TOKEN"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port),
        cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("deploybot serve did not start")
            yield proc, url, http
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def running_deploy(url: str, http: aiohttp.ClientSession) -> int:
    async with http.post(f"{url}/api/v1/deploy/trigger", json={"environment": "production"}) as response:
        assert response.status == 201, await response.text()
        deploy_id = (await response.json())["id"]
    for _ in range(200):
        async with http.get(f"{url}/api/v1/deploy/status/{deploy_id}") as response:
            if (await response.json())["status"] == "running":
                return deploy_id
        await asyncio.sleep(0.05)
    pytest.fail("the deploy never ran")


async def final_row(db_url: str, deploy_id: int):
    db = Database(db_url)
    try:
        async with db.session() as session:
            return await repo.get_deploy(session, deploy_id)
    finally:
        await db.dispose()


async def test_sigterm_lets_a_running_deploy_finish_then_exits(tmp_path, db_url):
    async with FakeSlack() as slack:
        async with serving(tmp_path, db_url, slack, sleep="3") as (proc, url, http):
            deploy_id = await running_deploy(url, http)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert proc.returncode is None, "it waits for the deploy"
            with pytest.raises(aiohttp.ClientError):  # and takes no more requests meanwhile
                async with http.get(f"{url}/healthz") as response:
                    await response.read()
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        deploy = await final_row(db_url, deploy_id)
        assert deploy.state is Status.SUCCESS
        card = slack.card("C0DEPLOY1", deploy.slack_ts)
        assert t("zh", "status.success") in card["text"]


async def test_a_second_sigterm_interrupts_the_drain(tmp_path, db_url):
    async with FakeSlack() as slack:
        async with serving(tmp_path, db_url, slack, sleep="300") as (proc, url, http):
            deploy_id = await running_deploy(url, http)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert proc.returncode is None
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        deploy = await final_row(db_url, deploy_id)
        assert deploy.state is Status.FAILED
        assert deploy.error_message == t("zh", "outcome.interrupted")
