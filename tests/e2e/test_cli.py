"""The command line without Slack: one deploy streamed, cleanup, clear refusals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import pytest

from storage import runners
from storage.db import Database
from tests.conftest import SCRIPTS


@pytest.fixture
def toml(tmp_path, db_url):
    path = tmp_path / "deploybot.toml"
    path.write_text(
        f'[bot]\nadmins = ["U1"]\ndatabase_url = "{db_url}"\n'
        f'[environments.production]\naliases = ["prod"]\nscript = "{SCRIPTS / "steps.sh"}"\n'
        f'[environments.broken]\nscript = "{SCRIPTS / "fail.sh"}"\n'
    )
    return path


def deploybot(toml, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(toml), *args], capture_output=True, timeout=120
    )


def test_deploy_streams_the_log_and_exits_by_outcome(toml):
    ok = deploybot(toml, "deploy", "prod", "main", "--skip-build")
    assert ok.returncode == 0, ok.stderr
    assert b"[7/7] step 7\n" in ok.stdout and b"skip_build=1" in ok.stdout
    assert "部署成功".encode() in ok.stderr

    bad = deploybot(toml, "deploy", "broken")
    assert bad.returncode == 1
    assert b"ERROR: compiler exploded" in bad.stdout
    assert "脚本退出码 3".encode() in bad.stderr


def test_refusals_are_clear_and_start_nothing(toml):
    unknown = deploybot(toml, "deploy", "moon")
    assert unknown.returncode == 1
    assert "未知的部署环境 `moon`".encode() in unknown.stderr
    assert deploybot(toml, "deploy", "prod", "--", "-x").returncode != 0
    cleanup = deploybot(toml, "cleanup")
    assert cleanup.returncode == 0
    assert "清除了 0 个部署的日志".encode() in cleanup.stdout


def test_a_bad_config_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[bot]\nadmins = []\n[environments.production]\nscript = "/nope"\n')
    result = deploybot(path, "cleanup")
    assert result.returncode == 2
    assert f"{path}: bot:".encode() in result.stderr


def test_global_options_work_after_the_verb_too(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[bot]\nadmins = []\n[environments.production]\nscript = "/nope"\n')
    result = subprocess.run(
        [sys.executable, "-m", "bot", "cleanup", "--config", str(path), "-v"], capture_output=True, timeout=60
    )
    assert result.returncode == 2
    assert f"{path}: bot:".encode() in result.stderr


def test_an_environment_named_like_a_sub_command_is_refused(tmp_path):
    path = tmp_path / "deploybot.toml"
    path.write_text(f'[bot]\nadmins = ["U1"]\n[environments.history]\nscript = "{SCRIPTS / "steps.sh"}"\n')
    result = deploybot(path, "cleanup")
    assert result.returncode == 2
    assert b"environments.history: 'history' is a /deploy sub-command" in result.stderr


def test_worker_and_serve_without_runner_need_postgresql_and_say_so(tmp_path, toml, db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    no_token = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(toml), "worker"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert no_token.returncode == 2 and b"SLACK_BOT_TOKEN" in no_token.stderr
    env["SLACK_BOT_TOKEN"] = "xoxb-cli-test"
    env["SLACK_SIGNING_SECRET"] = "cli-test-secret"
    unknown = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(toml), "worker", "--environments", "moon"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert unknown.returncode == 2 and b"no environment 'moon'" in unknown.stderr
    if not db_url.startswith("sqlite"):
        return
    for args in (["worker"], ["serve", "--no-runner", "--port", "0"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(toml), *args],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert b"PostgreSQL" in result.stderr
    assert not (tmp_path / "deploybot.db").exists()  # refused before the database was touched


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_worker_checks_only_its_scripts_registers_and_leaves_on_sigterm(tmp_path, db_url):
    path = tmp_path / "worker.toml"
    path.write_text(
        f'[bot]\nadmins = ["U1"]\ndatabase_url = "{db_url}"\n'
        f'[environments.production]\nscript = "{SCRIPTS / "steps.sh"}"\n'
        '[environments.elsewhere]\nscript = "/opt/only/on/another/host.sh"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(SLACK_BOT_TOKEN="xoxb-cli-test", SLACK_API_URL="http://127.0.0.1:9/api/")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(path), "worker", "--environments", "production"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        registered = asyncio.run(_runners_when(db_url, lambda rows: rows))
        assert [(r.role, r.environment_names, r.pid) for r in registered] == [
            ("worker", ("production",), worker.pid)
        ]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr.read()
        assert asyncio.run(_runners_when(db_url, lambda rows: not rows)) == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


async def _runners_when(db_url: str, done, timeout: float = 30) -> list:
    db = Database(db_url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(Exception):  # the worker creates the schema
                    async with db.session() as session:
                        rows = await runners.live(session)
                    if done(rows):
                        return rows
                await asyncio.sleep(0.1)
    finally:
        await db.dispose()
