"""Config: one typed object; every invalid value names the key and the file."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config
from bot.slack.grammar import RESERVED_WORDS
from tests.conftest import SCRIPTS

GOOD = f"""
[bot]
locale = "en"
admins = ["U012ABCDEF"]
database_url = "sqlite+aiosqlite:///state/deploybot.db"

[retention]
logs_days = 7
cron = "30 2 * * *"

[environments.production]
label = "生产环境"
aliases = ["prod", "生产"]
script = "{SCRIPTS / "steps.sh"}"
repo = "repo.git"
timeout_minutes = 15
commit_url = "https://git.example.com/app/commit/{{commit}}"

[environments.staging]
script = "{SCRIPTS / "steps.sh"}"
repo = "git@example.com:team/app.git"
"""


def write(tmp_path, text: str):
    path = tmp_path / "deploybot.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_paths_resolved_and_secrets_from_the_environment(tmp_path):
    environ = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "DEPLOYBOT_API_TOKENS": "ci:token-123456, deployer:token-abcdefg",
    }
    config = load_config(write(tmp_path, GOOD), environ)
    assert config.locale == "en"
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path / 'state/deploybot.db'}"
    assert config.retention.logs_days == 7 and config.retention.records_days == 90
    prod = config.environment("生产")
    assert prod is config.environment("PROD") is config.environments["production"]
    assert prod.repo == str(tmp_path / "repo.git")
    assert prod.timeout_seconds == 900 and prod.display == "生产环境"
    assert config.environment("staging").repo == "git@example.com:team/app.git"
    assert config.environment("nope") is None
    assert config.secrets.slack_bot_token == "xoxb-1"
    assert config.secrets.api_tokens == {"token-123456": "ci", "token-abcdefg": "deployer"}


def test_database_url_from_the_environment_wins(tmp_path):
    config = load_config(write(tmp_path, GOOD), {"DATABASE_URL": "postgresql://u@db/deploys"})
    assert config.database_url == "postgresql+asyncpg://u@db/deploys"


def test_config_path_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, GOOD)
    assert load_config(None, {}).path == tmp_path / "deploybot.toml"
    with pytest.raises(ConfigError, match="elsewhere.toml: config file not found"):
        load_config(None, {"DEPLOYBOT_CONFIG": "elsewhere.toml"})


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('locale = "en"', 'locale = "fr"'), "bot.locale"),
        (("[bot]", "[bot]\ncolour = 'blue'"), "bot.colour"),
        (('admins = ["U012ABCDEF"]', "admins = []"), "bot: "),
        (("timeout_minutes = 15", 'timeout_minutes = "soon"'), "environments.production.timeout_minutes"),
        (("timeout_minutes = 15", "timeout_minutes = 0"), "environments.production.timeout_minutes"),
        (('cron = "30 2 * * *"', 'cron = "every night"'), "retention.cron"),
        (("logs_days = 7", "logs_days = -1"), "retention.logs_days"),
        (
            (f'script = "{SCRIPTS / "steps.sh"}"\nrepo = "repo.git"', 'script = "missing.sh"'),
            "environments.production.script: no such file",
        ),
        (('aliases = ["prod", "生产"]', 'aliases = ["history"]'), "environments.production.aliases"),
        (('aliases = ["prod", "生产"]', 'aliases = ["staging"]'), "environments.production.aliases"),
        (
            ('commit_url = "https://git.example.com/app/commit/{commit}"', 'commit_url = "https://x"'),
            "environments.production.commit_url",
        ),
        (("[environments.staging]", "[environments.Bad_Name]"), "environments.Bad_Name"),
        (("timeout_minutes = 15", 'step_pattern = "[0-9"'), "environments.production.step_pattern"),
        (("timeout_minutes = 15", 'step_pattern = "step (\\\\d+)"'), "environments.production.step_pattern"),
        # compiles as a text regex, not as the bytes regex the scanner runs
        (
            ("timeout_minutes = 15", 'step_pattern = "\\\\u6b65 (?P<n>\\\\d+)"'),
            "environments.production.step_pattern",
        ),
    ],
)
def test_each_invalid_value_names_the_key_and_the_file(tmp_path, change, key):
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as failed:
        load_config(path, {}, reserved_words=RESERVED_WORDS)
    assert str(failed.value).startswith(f"{path}: ")
    assert key in str(failed.value)


def test_a_script_that_is_not_executable_is_refused(tmp_path):
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\n")
    path = write(tmp_path, f'[bot]\nadmins=["U1"]\n[environments.production]\nscript="{script}"\n')
    with pytest.raises(ConfigError, match="environments.production.script: not executable"):
        load_config(path, {})


def test_broken_toml_and_bad_tokens_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[bot\n"), {})
    with pytest.raises(ConfigError, match="DEPLOYBOT_API_TOKENS"):
        load_config(write(tmp_path, GOOD), {"DEPLOYBOT_API_TOKENS": "no-colon-here"})
    with pytest.raises(ConfigError, match="environments: define at least one"):
        load_config(write(tmp_path, '[bot]\nadmins=["U1"]\n[environments]\n'), {})
