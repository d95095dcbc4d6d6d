"""The command line without Slack: one deploy streamed, cleanup, clear refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
