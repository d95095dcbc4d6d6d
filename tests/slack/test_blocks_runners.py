"""`/deploy runners` as Block Kit (bot/slack/blocks/runners.py): one section per live process,
this process and draining ones marked, the empty state, Slack's limits. Pure: rows in memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.i18n import t
from bot.slack.blocks.runners import MAX_ENVIRONMENTS, runners_message
from storage.models import Runner
from tests.slack.blocks_fixtures import LOCALES, T0, block_ids, check, text_of

HERE = "web-1/boot/ns/4242/99/aa11bb22"
NOW = T0 + timedelta(hours=2, seconds=5)


def runner(runner_id: str = HERE, **fields) -> Runner:
    """The process answering: `serve` on web-1, running production and staging, up for two hours."""
    row = {
        "runner_id": runner_id,
        "host": "web-1",
        "pid": 4242,
        "role": "serve",
        "environments": "production,staging",
        "draining": False,
        "started_at": T0,
        "seen_at": T0 + timedelta(hours=2, seconds=2),
        "expires_at": T0 + timedelta(hours=2, seconds=12),
    }
    row.update(fields)
    return Runner(**row)


def test_each_process_is_one_section_with_role_host_pid_environments_and_times(cfg) -> None:
    worker = runner(
        "job-1/boot/ns/77/5/cc33dd44", host="job-1", pid=77, role="worker", environments="testing"
    )
    message = check(runners_message([runner(), worker], cfg, "zh", this_runner=HERE, now=NOW))

    assert block_ids(message) == ["runners_title", "runners_summary", "runner_1", "runner_2"]
    assert message.text == t("zh", "ui.runners.text", count=2)
    first = text_of(message, "runner_1")
    assert "*服务进程*" in first and "主机 `web-1` · PID 4242" in first
    assert "*当前进程*" in first
    assert "生产环境 (`production`), 预发布环境 (`staging`)" in first
    assert "已运行 2小时0分（11-28 09:00 UTC 启动）" in first and "3秒前在线" in first
    assert "排空中" not in first and "boot" not in first, "no runner_id internals beyond host and pid"

    second = text_of(message, "runner_2")
    assert "*执行进程*" in second and "`job-1`" in second and "测试环境 (`testing`)" in second
    assert "当前进程" not in second


def test_a_draining_process_and_one_that_runs_nothing(cfg) -> None:
    other = runner("web-2/b/n/9/1/ee55ff66", host="web-2", pid=9, draining=True, environments="")
    message = check(runners_message([other], cfg, "zh", this_runner=HERE, now=NOW))
    text = text_of(message, "runner_1")
    assert text.startswith(":warning:") and "*排空中*" in text
    assert "负责的环境：无" in text and "当前进程" not in text


def test_english(cfg) -> None:
    message = check(
        runners_message([runner(draining=True, role="console")], cfg, "en", this_runner=HERE, now=NOW)
    )
    text = text_of(message, "runner_1")
    assert "*console*" in text and "host `web-1` · pid 4242" in text
    assert "*this process*" in text and "*draining*" in text
    assert "Runs: 生产环境 (`production`)" in text
    assert "up 2h 0m (started 11-28 09:00 UTC) · seen 3s ago" in text
    assert "Live processes: 1" in text_of(message, "runners_summary")


@pytest.mark.parametrize("locale", LOCALES)
def test_no_process_is_an_empty_state(cfg, locale) -> None:
    message = check(runners_message([], cfg, locale, this_runner=HERE, now=NOW))
    assert text_of(message, "runners_empty") == t(locale, "ui.runners.empty")


def test_what_other_processes_wrote_is_escaped_and_unknown_names_are_shown_as_they_are(cfg) -> None:
    odd = runner(
        "x/b/n/1/1/00000000",
        host="<!channel>&",
        role="<@U1>",
        environments="legacy,production",
        seen_at=NOW + timedelta(seconds=30),  # a clock ahead of ours: never "-30 s ago"
    )
    text = text_of(check(runners_message([odd], cfg, "en", this_runner=HERE, now=NOW)), "runner_1")
    assert "`&lt;!channel&gt;&amp;`" in text and "*&lt;@U1&gt;*" in text
    assert "`legacy`, 生产环境 (`production`)" in text
    assert "seen 0s ago" in text


def test_many_processes_and_environments_stay_within_slack_limits(cfg) -> None:
    names = ",".join(f"env-{i:03}" + "x" * 50 for i in range(300))
    many = [runner(f"h{i}/b/n/{i}/1/0", host="h" * 300, pid=i, environments=names) for i in range(80)]
    message = check(runners_message(many, cfg, "zh", this_runner=HERE, now=NOW))
    assert len(message.blocks) == 50
    assert text_of(message, "runners_more") == t("zh", "ui.runners.more", count=80 - 47)
    first = text_of(message, "runner_1")
    assert first.count("`env-") == MAX_ENVIRONMENTS and "…" in first
