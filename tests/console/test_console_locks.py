"""`/deploy lock`, `/deploy locks` and `/deploy unlock` in `deploybot console`: the generic Block Kit
renderer shows the answers, on SQLite and PostgreSQL."""

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


def shown_after(console: Console, command: str) -> str:
    lines = console.transcript
    return "\n".join(lines[max(i for i, line in enumerate(lines) if line == f"> {command}") + 1 :])


async def test_lock_list_and_unlock_in_the_console(console) -> None:
    await console.feed("/deploy lock production 1h 发版验证")
    shown = shown_after(console, "/deploy lock production 1h 发版验证")
    assert "已锁定 生产环境" in shown and "仅你可见" in shown and "发版验证" in shown

    await console.feed("/deploy locks")
    shown = shown_after(console, "/deploy locks")
    assert t("zh", "ui.locks.title") in shown and "production" in shown and "还有 1小时0分" in shown

    await console.feed("/deploy unlock production")
    assert "已解锁 生产环境" in shown_after(console, "/deploy unlock production")
    assert await console.runtime.service.locks.all() == []
    assert console.failures == 0
