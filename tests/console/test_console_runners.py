"""`/deploy runners` in `deploybot console`: the generic Block Kit renderer shows the listing of the
live processes, this console marked, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot.console.session import Console
from bot.i18n import t
from tests.fakeslack import FakeSlack


@pytest.fixture
async def console(make_config, tmp_path) -> AsyncIterator[Console]:
    fake = FakeSlack()
    console = Console(make_config(), base_env=dict(os.environ), files_dir=tmp_path / "files", slack=fake)
    await console.start()
    yield console
    await console.close()
    assert fake.violations == [], f"the bot sent Block Kit that Slack refuses: {fake.violations}"


async def test_runners_lists_the_console_process_and_its_environments(console) -> None:
    await console.feed("/deploy runners")
    lines = console.transcript
    shown = "\n".join(lines[max(i for i, line in enumerate(lines) if line == "> /deploy runners") + 1 :])
    assert t("zh", "ui.runners.title") in shown
    assert "仅你可见" in shown  # answered ephemerally
    assert "控制台" in shown and "当前进程" in shown
    assert f"PID {os.getpid()}" in shown
    assert "生产环境 (production), 预发布环境 (staging)" in shown
    assert console.failures == 0
