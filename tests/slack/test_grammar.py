"""The /deploy grammar: pure parsing, no Slack and no database."""

from __future__ import annotations

import pytest

from bot.config import Config, parse_config
from bot.i18n import t
from bot.slack import grammar
from bot.slack.grammar import (
    CancelDeploy,
    OpenModal,
    RollbackTo,
    ShowHelp,
    ShowHistory,
    ShowLogs,
    ShowStatus,
    StartDeploy,
    UsageError,
    help_rows,
    parse,
)
from tests.conftest import SCRIPTS


@pytest.fixture
def config(tmp_path) -> Config:
    raw = {
        "bot": {"admins": ["U0ADMIN01"], "database_url": "sqlite+aiosqlite:///:memory:"},
        "environments": {
            "production": {
                "label": "生产环境",
                "aliases": ["prod", "生产"],
                "script": str(SCRIPTS / "steps.sh"),
            },
            "staging": {"label": "预发布环境", "script": str(SCRIPTS / "steps.sh")},
        },
    }
    return parse_config(raw, tmp_path / "deploybot.toml", {})


def refused(text: str, config: Config) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(text, config)
    return caught.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", OpenModal()),
        ("   ", OpenModal()),
        ("production", StartDeploy("production")),
        ("prod main", StartDeploy("production", "main")),
        ("PROD release/2025.11", StartDeploy("production", "release/2025.11")),
        ("生产 main --skip-build", StartDeploy("production", "main", skip_build=True)),
        (
            "staging main --skip-migrations --skip-build fix  the login   bug",
            StartDeploy(
                "staging", "main", skip_build=True, skip_migrations=True, description="fix  the login   bug"
            ),
        ),
        ("staging --skip-build", StartDeploy("staging", None, skip_build=True)),
        ("staging main hotfix for #12", StartDeploy("staging", "main", description="hotfix for #12")),
        ("history", ShowHistory()),
        ("history production", ShowHistory("production")),
        ("history prod failed 3", ShowHistory("production", "failed", 3)),
        ("history 2", ShowHistory(page=2)),
        ("history 部署失败", ShowHistory(status="failed")),
        ("history all success", ShowHistory(status="success")),
        ("status", ShowStatus(None)),
        ("status 42", ShowStatus(42)),
        ("status #42", ShowStatus(42)),
        ("logs #7", ShowLogs(7)),
        ("cancel 9", CancelDeploy(9)),
        ("rollback 41", RollbackTo(41)),
        ("rollback #41 bad   release, see INC-7", RollbackTo(41, "bad   release, see INC-7")),
        ("help", ShowHelp()),
        ("HELP", ShowHelp()),
    ],
)
def test_accepted(text: str, expected: grammar.Command, config: Config) -> None:
    assert parse(text, config) == expected


def test_unknown_word_names_commands_and_environments_and_shows_all_usage(config: Config) -> None:
    error = refused("deploy-it main", config)
    assert error.message_key == "cmd.error.unknown_word"
    message = error.message("zh")
    assert "deploy-it" in message and "production" in message and "history" in message
    assert error.usage == grammar.FULL_USAGE
    assert "/deploy history [env] [status] [page]" in error.usage


@pytest.mark.parametrize(
    ("text", "key", "usage"),
    [
        ("production ma..in", "error.invalid_branch", "/deploy <env>"),
        ("production -rf", "error.invalid_branch", "/deploy <env>"),
        ("production main --skip-everything", "cmd.error.unknown_flag", "/deploy <env>"),
        ("logs", "cmd.error.missing_id", "/deploy logs <id>"),
        ("logs abc", "cmd.error.bad_id", "/deploy logs <id>"),
        ("cancel 0", "cmd.error.bad_id", "/deploy cancel <id>"),
        ("cancel 12 13", "cmd.error.extra_words", "/deploy cancel <id>"),
        ("rollback #x", "cmd.error.bad_id", "/deploy rollback <id> [reason]"),
        ("status 99999999999", "cmd.error.bad_id", "/deploy status [id]"),
        ("history mars", "cmd.error.history_word", "/deploy history"),
        ("history failed success", "cmd.error.history_twice", "/deploy history"),
        ("history 0", "cmd.error.bad_page", "/deploy history"),
    ],
)
def test_refused_with_the_right_usage(text: str, key: str, usage: str, config: Config) -> None:
    error = refused(text, config)
    assert error.message_key == key
    assert error.usage.startswith(usage)
    assert error.message("zh") and error.message("en")


def test_bad_branch_says_why_in_the_locale(config: Config) -> None:
    error = refused("production feature;rm", config)
    assert "feature;rm" in error.message("en") and "not allowed" in error.message("en")
    assert "不允许" in error.message("zh")


def test_help_comes_from_the_parser_table(config: Config) -> None:
    rows = help_rows("zh")
    assert [syntax for syntax, _ in rows] == [form.syntax for form in grammar.GRAMMAR]
    assert dict(rows)["/deploy help"] == t("zh", "cmd.help.help")
    assert dict(help_rows("en"))["/deploy cancel <id>"] == "Cancel a running deploy"
    # every syntax in the help parses when its placeholders are filled in
    samples = {
        "/deploy": "",
        "/deploy <env> [branch] [--skip-build] [--skip-migrations] [--queue] [--force <reason>] [at <time> | in <delay>] [description…]": (
            "staging main --skip-build --queue --force why in 10m x"
        ),
        "/deploy history [env] [status] [page]": "history staging failed 2",
        "/deploy status [id]": "status 3",
        "/deploy logs <id>": "logs 3",
        "/deploy cancel <id>": "cancel 3",
        "/deploy rollback <id> [reason]": "rollback 3 why",
        "/deploy schedule": "schedule",
        "/deploy runners": "runners",
        "/deploy audit [env] [page]": "audit staging 2",
        "/deploy lock <env> [duration] [reason…]": "lock staging 30m release check",
        "/deploy unlock <env>": "unlock staging",
        "/deploy locks": "locks",
        "/deploy help": "help",
    }
    assert set(samples) == {syntax for syntax, _ in rows}
    for text in samples.values():
        parse(text, config)
