"""Secrets and accounts through the real command line: `*_FILE` variables read at start-up, an
environment's `secrets` reaching its script, a secret file that cannot be read stopping start-up,
and (as root) a deploy under `run_as` that cannot read the bot process's own environ."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from bot.config import is_bot_secret
from tests.throwaway import write_script

TOKEN = "xoxb-e2e-fake-token-51c0de"


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any of the bot's secrets, plus `extra`."""
    return {name: value for name, value in os.environ.items() if not is_bot_secret(name)} | extra


def deploybot(toml: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(toml), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def private_file(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_secrets_from_files_reach_start_up_and_only_the_script_that_names_them(tmp_path):
    script = write_script(
        tmp_path,
        "show.sh",
        'printf "%s" "$APP_KEY" | sha256sum | sed "s/ *-$//; s/^/app_key=/"\n'
        'echo "bot_secrets=$(env | grep -c -e ^SLACK_ -e ^DEPLOYBOT_ -e ^DATABASE_URL)"\n',
    )
    toml = tmp_path / "deploybot.toml"
    toml.write_text(
        f'[bot]\nadmins = ["U1"]\n'
        f'[environments.production]\nscript = "{script}"\nsecrets = ["APP_KEY"]\n'
        f'[environments.staging]\nscript = "{script}"\n'
    )
    environ = clean_environ(
        DATABASE_URL_FILE=private_file(tmp_path / "db", f"sqlite:///{tmp_path / 'state.db'}\n"),
        SLACK_BOT_TOKEN_FILE=private_file(tmp_path / "slack", TOKEN + "\n"),
        DEPLOYBOT_API_TOKENS_FILE=private_file(tmp_path / "api", "ci:api-token-123456\n"),
        APP_KEY_FILE=private_file(tmp_path / "app-key", "app-key-from-a-file\n"),
    )
    production = deploybot(toml, environ, "deploy", "production")
    assert production.returncode == 0, production.stderr
    assert f"app_key={hashlib.sha256(b'app-key-from-a-file').hexdigest()}\n" in production.stdout
    assert "bot_secrets=0\n" in production.stdout
    assert (tmp_path / "state.db").exists()  # DATABASE_URL_FILE was read

    staging = deploybot(toml, environ, "deploy", "staging")
    assert staging.returncode == 0, staging.stderr
    assert f"app_key={hashlib.sha256(b'').hexdigest()}\n" in staging.stdout  # APP_KEY is production's


def test_a_secret_file_that_cannot_be_read_stops_start_up(tmp_path):
    toml = tmp_path / "deploybot.toml"
    toml.write_text(
        f'[bot]\nadmins = ["U1"]\n[environments.production]\nscript = "{write_script(tmp_path, "d.sh", "")}"\n'
    )
    result = deploybot(toml, clean_environ(SLACK_BOT_TOKEN_FILE=str(tmp_path / "missing")), "cleanup")
    assert result.returncode == 2
    assert f"config error: SLACK_BOT_TOKEN_FILE: cannot read {tmp_path / 'missing'}" in result.stderr


def test_a_deploy_under_run_as_cannot_read_the_bot_process_environ(account, folder):
    probe = write_script(
        folder,
        "probe.sh",
        'echo "uid=$(id -u) home=$HOME"\n'
        'if cat "/proc/$PPID/environ"; then echo "read the bot"; else echo "denied the bot"; fi\n',
    )
    toml = folder / "deploybot.toml"
    toml.write_text(
        f'[bot]\nadmins = ["U1"]\nrun_as = "{account.user}"\n'
        f'database_url = "sqlite:///{folder / "state.db"}"\n'
        f'[environments.production]\nscript = "{probe}"\n'
        f'[environments.local]\nscript = "{probe}"\nrun_as = ""\n'
    )
    # the token is in the environment the bot process was started with: in /proc/<bot>/environ
    result = deploybot(toml, clean_environ(SLACK_BOT_TOKEN=TOKEN), "deploy", "production")
    assert result.returncode == 0, result.stderr
    assert f"uid={account.uid} home={account.home}\n" in result.stdout
    assert "Permission denied" in result.stdout and "denied the bot\n" in result.stdout
    assert TOKEN not in result.stdout and "SLACK_" not in result.stdout
    assert "the scripts of local run as the bot's own user" in result.stderr  # the start-up warning
