"""The config of DESIGN §10 (and §11 for its secrets): [[freeze]] windows, [[notify]] sinks, the
bot's timezone, misfire grace and metrics token; every bad value names its key and stops start-up;
secret values from `env:`/`file:` join the masking set."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config
from tests.conftest import ADMIN, SCRIPTS


def raw(**extra):
    return {
        "bot": {"admins": [ADMIN], **extra.pop("bot", {})},
        "environments": {
            "production": {"script": str(SCRIPTS / "steps.sh"), "aliases": ["prod"]},
            "staging": {"script": str(SCRIPTS / "steps.sh")},
        },
        **extra,
    }


def test_freezes_and_sinks_are_read_with_their_secrets(tmp_path):
    secret_file = tmp_path / "hook"
    secret_file.write_text("https://hooks.example.com/T0/abcdef\n")
    config = parse_config(
        raw(
            bot={"timezone": "Asia/Shanghai", "metrics_token": "env:METRICS", "misfire_grace_minutes": 5},
            freeze=[
                {"environments": ["prod"], "cron": "0 18 * * 5", "hours": 62, "reason": "周末封网"},
                {
                    "start": "2026-12-24T00:00:00+08:00",
                    "end": "2026-12-27T00:00:00+08:00",
                    "reason": "holiday",
                },
            ],
            notify=[
                {"kind": "webhook", "url": "file:hook", "secret": "env:HOOK_SECRET", "events": ["failed"]},
                {
                    "kind": "email",
                    "to": ["ops@example.com"],
                    "smtp_host": "127.0.0.1",
                    "smtp_password": "env:SMTP",
                },
            ],
        ),
        tmp_path / "deploybot.toml",
        {"METRICS": "metrics-token-1", "HOOK_SECRET": "hook-secret-1", "SMTP": "smtp-password-1"},
    )
    assert config.bot.timezone == "Asia/Shanghai" and config.bot.metrics_token == "metrics-token-1"
    assert config.freezes[0].environments == ("production",) and config.freezes[1].environments == ()
    hook, mail = config.notify
    assert hook.url == "https://hooks.example.com/T0/abcdef" and hook.secret == "hook-secret-1"
    assert hook.events == ("failed",) and mail.events == ("success", "failed")
    assert {"metrics-token-1", "hook-secret-1", "smtp-password-1", hook.url} <= config.secret_values()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"bot": {"timezone": "Mars/Olympus"}}, "bot.timezone"),
        ({"freeze": [{"reason": "x"}]}, "freeze"),
        ({"freeze": [{"cron": "0 18 * * 5"}]}, "freeze"),
        ({"freeze": [{"start": "2026-12-02T00:00:00", "end": "2026-12-01T00:00:00"}]}, "freeze"),
        ({"freeze": [{"cron": "nope", "hours": 1}]}, "freeze"),
        (
            {"freeze": [{"environments": ["moon"], "cron": "0 18 * * 5", "hours": 1}]},
            "freeze[0].environments",
        ),
        ({"notify": [{"kind": "webhook"}]}, "notify"),
        ({"notify": [{"kind": "webhook", "url": "ftp://x.example.com"}]}, "notify"),
        ({"notify": [{"kind": "email", "to": ["a@example.com"]}]}, "notify"),
        (
            {"notify": [{"kind": "dingtalk", "url": "https://x.example.com", "events": ["exploded"]}]},
            "notify",
        ),
        ({"notify": [{"kind": "wecom", "url": "env:MISSING_HOOK"}]}, "notify[0].url"),
        ({"notify": [{"kind": "pager", "url": "https://x.example.com"}]}, "notify"),
    ],
)
def test_bad_automation_config_names_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw(**extra), tmp_path / "deploybot.toml", {})
