"""`logs -f <id>` in the console: a running deploy's log followed live to its end; `logs <id>`
of a finished one; bad input and an unknown deploy refused."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot.console.session import Console
from tests.conftest import SCRIPTS
from tests.fakeslack import FakeSlack


@pytest.fixture
async def console(make_config, tmp_path) -> AsyncIterator[Console]:
    config = make_config(environments={"production": {"script": str(SCRIPTS / "stream_progress.sh")}})
    env = {**os.environ, "PAUSE_SECONDS": "0.2"}
    console = Console(config, base_env=env, files_dir=tmp_path / "files", slack=FakeSlack())
    await console.start()
    yield console
    await console.close()


async def test_logs_follow_shows_the_log_live_until_the_deploy_ends(console):
    deploy = await console.runtime.service.trigger("production", "main", user="U0ADMIN01")
    start = len(console.transcript)
    await console.feed(f"logs -f {deploy.id}")
    shown = "\n".join(console.transcript[start:])
    assert "部署开始 🚀" in shown and "progress 100% [==]" in shown and "progress  10%" not in shown
    assert "half a character: 中 done" in shown and "emoji 🚀 end without newline" in shown
    assert f"#{deploy.id}" in console.transcript[-1] and "—" in console.transcript[-1]
    again = len(console.transcript)
    await console.feed(f"logs {deploy.id}")
    assert console.transcript[again + 1 :] == console.transcript[start + 1 : again]


async def test_logs_refuses_bad_input_and_unknown_deploys(console):
    await console.feed("logs -f")
    await console.feed("logs -f abc")
    await console.feed("logs 424242")
    assert console.failures == 3
