"""The /deploy grammar's governance forms: flags anywhere before the description (--queue,
--force <reason>), their usage errors, and `/deploy audit [env] [page]`."""

from __future__ import annotations

import pytest

from bot.config import Config
from bot.slack import grammar
from bot.slack.grammar import ShowAudit, StartDeploy, parse
from tests.slack.test_grammar import config, refused

__all__ = ["config"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prod main --queue", StartDeploy("production", "main", queue=True)),
        ("prod --queue main", StartDeploy("production", "main", queue=True)),
        ("prod --queue", StartDeploy("production", None, queue=True)),
        (
            "prod --skip-build main --queue --skip-migrations ship it",
            StartDeploy(
                "production", "main", skip_build=True, skip_migrations=True, queue=True, description="ship it"
            ),
        ),
        ("prod main --force INC-7", StartDeploy("production", "main", force="INC-7")),
        ("prod --force INC-7 main", StartDeploy("production", "main", force="INC-7")),
        (
            "prod --force INC-7 feature/x --queue hot   fix",
            StartDeploy("production", "feature/x", queue=True, force="INC-7", description="hot   fix"),
        ),
        ("prod --QUEUE main", StartDeploy("production", "main", queue=True)),
        # after the description starts, a flag is text
        ("prod main fix --queue later", StartDeploy("production", "main", description="fix --queue later")),
        ("audit", ShowAudit()),
        ("AUDIT prod", ShowAudit("production")),
        ("audit 3", ShowAudit(page=3)),
        ("audit 2 staging", ShowAudit("staging", 2)),
    ],
)
def test_accepted(text: str, expected: grammar.Command, config: Config) -> None:
    assert parse(text, config) == expected


@pytest.mark.parametrize(
    ("text", "key", "usage"),
    [
        ("prod main --queue --queue", "cmd.error.flag_twice", "/deploy <env>"),
        ("prod --force a main --force b", "cmd.error.flag_twice", "/deploy <env>"),
        ("prod main --force", "cmd.error.force_reason", "/deploy <env>"),
        ("prod main --force --queue", "cmd.error.force_reason", "/deploy <env>"),
        ("prod --later main", "cmd.error.unknown_flag", "/deploy <env>"),
        ("audit mars", "cmd.error.audit_word", "/deploy audit"),
        ("audit prod staging", "cmd.error.history_twice", "/deploy audit"),
        ("audit 1 2", "cmd.error.history_twice", "/deploy audit"),
        ("audit 0", "cmd.error.bad_page", "/deploy audit"),
        ("audit 99999999999", "cmd.error.bad_page", "/deploy audit"),
        ("audit ²", "cmd.error.audit_word", "/deploy audit"),
    ],
)
def test_refused_with_the_right_usage(text: str, key: str, usage: str, config: Config) -> None:
    error = refused(text, config)
    assert error.message_key == key
    assert error.usage.startswith(usage)
    assert error.message("zh") and error.message("en")


def test_errors_name_the_flag_and_the_choices(config: Config) -> None:
    assert "`--queue`" in refused("prod --queue main --queue", config).message("en")
    unknown = refused("prod --later", config).message("zh")
    assert "--later" in unknown and "--queue" in unknown and "--force" in unknown
    assert "--force" in refused("prod --force", config).message("zh")


def test_audit_is_a_reserved_word() -> None:
    assert "audit" in grammar.RESERVED_WORDS
    # DESIGN §9's list of new reserved words, all of them
    assert {"lock", "unlock", "locks", "schedule", "audit", "runners"} <= grammar.RESERVED_WORDS
