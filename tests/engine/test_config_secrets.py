"""Secrets and accounts in the config: every secret from its variable or a `_FILE`, `env:`/`file:`
references, per-environment `secrets` (which reach their own script only, through the real
service), `run_as` lookups, and a clear refusal, naming the variable or key, for each bad input."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import re
from pathlib import Path

import pytest

from bot.config import Config, ConfigError, parse_config, resolve_secret
from bot.deploy.execution import run_spec
from bot.deploy.service import DeployService
from storage.db import Database
from storage.models import Deploy
from tests.conftest import ADMIN, SCRIPTS

STEPS = str(SCRIPTS / "steps.sh")
ME = pwd.getpwuid(os.geteuid())


def parse(tmp_path: Path, environ: dict, environments: dict | None = None, **bot) -> Config:
    raw = {
        "bot": {"admins": [ADMIN], "database_url": f"sqlite:///{tmp_path / 'd.db'}", **bot},
        "environments": environments or {"production": {"script": STEPS}},
    }
    return parse_config(raw, tmp_path / "deploybot.toml", environ, capabilities_missing=list)


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


# --- the bot's own secrets -------------------------------------------------------------------------

OWN = {  # variable: (a value, how the config shows it)
    "SLACK_BOT_TOKEN": ("xoxb-123-456", lambda c: c.secrets.slack_bot_token),
    "SLACK_APP_TOKEN": ("xapp-1-A-123", lambda c: c.secrets.slack_app_token),
    "SLACK_SIGNING_SECRET": ("8f742231b10e", lambda c: c.secrets.slack_signing_secret),
    "DATABASE_URL": ("postgresql://u:s3cret-pw@db/deploys", lambda c: c.database_url.replace("+asyncpg", "")),
    "DEPLOYBOT_API_TOKENS": (
        "ci:token-123456",
        lambda c: ",".join(f"{n}:{t}" for t, n in c.secrets.api_tokens.items()),
    ),
    "DEPLOYBOT_WEBHOOK_SECRET": ("whsec-abcdef", lambda c: c.secrets.webhook_secret),
}


@pytest.mark.parametrize("name", OWN)
@pytest.mark.parametrize("source", ["variable", "file"])
def test_every_secret_comes_from_its_variable_or_its_file(tmp_path, name, source):
    value, shown = OWN[name]
    if source == "variable":
        environ = {name: value}
    else:  # a trailing newline, as an editor or `echo` leaves it, is not part of the secret
        environ = {f"{name}_FILE": secret_file(tmp_path, "secret", value + "\n")}
    assert shown(parse(tmp_path, environ)) == value


@pytest.mark.parametrize("name", OWN)
def test_a_secret_set_twice_or_in_a_file_that_cannot_be_read_names_the_variable(tmp_path, name):
    value = OWN[name][0]
    path = secret_file(tmp_path, "secret", value)
    with pytest.raises(ConfigError, match=f"^{name} and {name}_FILE are both set"):
        parse(tmp_path, {name: value, f"{name}_FILE": path})
    with pytest.raises(ConfigError, match=f"^{name}_FILE: cannot read {tmp_path}/missing: No such file"):
        parse(tmp_path, {f"{name}_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=f"^{name}_FILE: cannot read {tmp_path}: Is a directory"):
        parse(tmp_path, {f"{name}_FILE": str(tmp_path)})
    with pytest.raises(ConfigError, match=f"^{name}_FILE: {tmp_path}/empty is empty"):
        parse(tmp_path, {f"{name}_FILE": secret_file(tmp_path, "empty", "\n")})


@pytest.mark.parametrize(
    ("environ", "bot", "named"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb"}, {}, "SLACK_BOT_TOKEN: secret values must be at least 6"),
        ({"SLACK_APP_TOKEN": "xapp"}, {}, "SLACK_APP_TOKEN: secret values must be at least 6"),
        ({"SLACK_SIGNING_SECRET": "abc"}, {}, "SLACK_SIGNING_SECRET: secret values must be at least 6"),
        ({"DEPLOYBOT_WEBHOOK_SECRET": "12345"}, {}, "DEPLOYBOT_WEBHOOK_SECRET: secret values"),
        ({"DATABASE_URL": "postgresql://u:pw@db/x"}, {}, "DATABASE_URL (its password): secret values"),
        ({}, {"database_url": "postgresql://u:pw@db/x"}, "bot.database_url (its password): secret values"),
    ],
)
def test_a_secret_too_short_to_mask_is_refused(tmp_path, environ, bot, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        parse(tmp_path, environ, **bot)


def test_empty_or_unset_secrets_are_not_refused(tmp_path):
    config = parse(tmp_path, {"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": ""})
    assert config.secrets.slack_bot_token == "" and config.secret_values() == frozenset()


def test_the_masking_set_holds_every_secret_value_and_nothing_else(tmp_path):
    environ = {
        "SLACK_BOT_TOKEN": "xoxb-123-456",
        "DEPLOYBOT_API_TOKENS": "ci:token-123456",
        "DEPLOYBOT_WEBHOOK_SECRET_FILE": secret_file(tmp_path, "webhook", "whsec-abcdef\n"),
        "DATABASE_URL": "postgresql://u:s3cret-pw@db/deploys",
        "APP_KEY": "app-key-value",
    }
    config = parse(tmp_path, environ, environments={"production": {"script": STEPS, "secrets": ["APP_KEY"]}})
    assert config.secret_values() == {
        "xoxb-123-456",
        "token-123456",
        "whsec-abcdef",
        "s3cret-pw",
        "app-key-value",
    }
    assert "app-key-value" not in repr(config) and "whsec-abcdef" not in repr(config)


# --- per-environment secrets -----------------------------------------------------------------------


def test_an_environments_secrets_come_from_the_environment_or_a_file(tmp_path):
    environ = {"APP_KEY": "app-key-value", "DB_PASSWORD_FILE": secret_file(tmp_path, "db", "db-password\n")}
    config = parse(
        tmp_path,
        environ,
        environments={
            "production": {"script": STEPS, "secrets": ["APP_KEY", "DB_PASSWORD"]},
            "staging": {"script": STEPS},
        },
    )
    production, staging = config.environments["production"], config.environments["staging"]
    assert production.secret_env == {"APP_KEY": "app-key-value", "DB_PASSWORD": "db-password"}
    assert staging.secret_env == {}
    withheld = {"APP_KEY", "APP_KEY_FILE", "DB_PASSWORD", "DB_PASSWORD_FILE"}
    assert production.withheld == staging.withheld == withheld


@pytest.mark.parametrize(
    ("name", "environ", "error"),
    [
        (
            "SLACK_BOT_TOKEN",
            {"SLACK_BOT_TOKEN": "xoxb-123-456"},
            "SLACK_BOT_TOKEN is one of the bot's own secrets",
        ),
        (
            "SLACK_WEBHOOK",
            {"SLACK_WEBHOOK": "https://hooks"},
            "SLACK_WEBHOOK is one of the bot's own secrets",
        ),
        ("DATABASE_URL", {}, "DATABASE_URL is one of the bot's own secrets"),
        ("DEPLOYBOT_API_TOKENS", {}, "DEPLOYBOT_API_TOKENS is one of the bot's own secrets"),
        ("APP KEY", {}, "'APP KEY' is not a variable name"),
        ("APP_KEY", {}, "APP_KEY is not set \\(neither APP_KEY nor APP_KEY_FILE\\)"),
        ("APP_KEY", {"APP_KEY": ""}, "APP_KEY is not set"),
        ("APP_KEY", {"APP_KEY": "short"}, "APP_KEY: secret values must be at least 6"),
        (
            "APP_KEY",
            {"APP_KEY": "app-key-value", "APP_KEY_FILE": "/x"},
            "APP_KEY and APP_KEY_FILE are both set",
        ),
        ("APP_KEY", {"APP_KEY_FILE": "/nonexistent/key"}, "APP_KEY_FILE: cannot read /nonexistent/key"),
    ],
)
def test_a_bad_environment_secret_names_the_key_and_the_variable(tmp_path, name, environ, error):
    with pytest.raises(ConfigError) as failed:
        parse(tmp_path, environ, environments={"production": {"script": STEPS, "secrets": [name]}})
    assert str(failed.value).startswith(f"{tmp_path / 'deploybot.toml'}: environments.production.secrets: ")
    assert re.search(error, str(failed.value)), str(failed.value)


PRINT_SECRETS = """#!/bin/sh
# Digests, not values: whatever masks secret values in stored logs must not hide what is checked.
for name in APP_KEY APP_KEY_FILE STAGING_KEY STAGING_KEY_FILE; do
  eval "value=\\${$name-unset}"
  if [ "$value" = unset ]; then echo "$name unset"; else printf '%s' "$value" | sha256sum | sed "s/^/$name /; s/ *-$//"; fi
done
"""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def test_each_script_gets_its_own_secrets_and_no_other_environments(make_config, tmp_path, db_url):
    script = tmp_path / "print_secrets.sh"
    script.write_text(PRINT_SECRETS)
    script.chmod(0o755)
    key_file = secret_file(tmp_path, "staging-key", "staging-key-value\n")
    environ = {"APP_KEY": "app-key-value", "STAGING_KEY_FILE": key_file}
    config = make_config(
        environments={
            "production": {"script": str(script), "secrets": ["APP_KEY"]},
            "staging": {"script": str(script), "secrets": ["STAGING_KEY"]},
            "review": {"script": str(script)},
        },
        environ=environ,
    )
    db = Database(config.database_url)
    # the bot's own environment holds them all, as it would in production
    service = DeployService(config, db, base_env={**os.environ, **environ})
    await service.start()
    try:
        seen = {env: await _printed(service, env) for env in ("production", "staging", "review")}
    finally:
        await service.close()
        await db.dispose()
    unset = {"APP_KEY_FILE": "unset", "STAGING_KEY_FILE": "unset"}
    assert seen["production"] == {**unset, "APP_KEY": digest("app-key-value"), "STAGING_KEY": "unset"}
    assert seen["staging"] == {**unset, "APP_KEY": "unset", "STAGING_KEY": digest("staging-key-value")}
    assert seen["review"] == {**unset, "APP_KEY": "unset", "STAGING_KEY": "unset"}


async def _printed(service: DeployService, environment: str) -> dict[str, str]:
    deploy: Deploy = await service.trigger(environment, "main", user=ADMIN)
    async with asyncio.timeout(30):
        while not (deploy := await service.get(deploy.id)).state.is_finished:
            await asyncio.sleep(0.05)
    lines = (await service.logs(deploy.id)).text.splitlines()
    return dict(line.split(" ", 1) for line in lines)


def test_run_spec_carries_the_secrets_and_the_account(tmp_path):
    config = parse(
        tmp_path,
        {"APP_KEY": "app-key-value"},
        environments={"production": {"script": STEPS, "secrets": ["APP_KEY"], "run_as": ME.pw_name}},
    )
    deploy = Deploy(id=7, environment="production", branch="main", deployed_by=ADMIN)
    spec = run_spec(deploy, config.environments["production"], {"PATH": "/bin", "APP_KEY_FILE": "/k"}, 1.0)
    assert spec.env["APP_KEY"] == "app-key-value" and "APP_KEY_FILE" not in spec.env
    assert spec.env["PATH"] == "/bin" and spec.env["DEPLOY_ID"] == "7"
    assert spec.account is not None and spec.account.uid == ME.pw_uid


# --- env: and file: in the TOML --------------------------------------------------------------------


def test_resolve_secret_reads_a_variable_a_file_or_takes_the_value(tmp_path):
    environ = {
        "HOOK_URL": "https://hooks.example.com/abc",
        "SMTP_FILE": secret_file(tmp_path, "smtp", "smtp-pass\n"),
    }
    assert resolve_secret("env:HOOK_URL", environ, key="notify.url") == "https://hooks.example.com/abc"
    assert resolve_secret("env:SMTP", environ, key="notify.smtp_password") == "smtp-pass"
    assert resolve_secret(f"file:{tmp_path}/smtp", {}, key="k") == "smtp-pass"
    assert resolve_secret("file:smtp", {}, key="k", base=tmp_path) == "smtp-pass"  # from the config's folder
    assert resolve_secret("a-literal-value", {}, key="k") == "a-literal-value"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("env:NOPE", "notify.url: NOPE is not set (neither NOPE nor NOPE_FILE)"),
        ("env:", "notify.url: '' is not a variable name"),
        ("file:/nonexistent/secret", "notify.url: cannot read /nonexistent/secret"),
        ("short", "notify.url: secret values must be at least 6"),
        ("env:BOTH", "notify.url: BOTH and BOTH_FILE are both set"),
    ],
)
def test_resolve_secret_names_the_key_in_its_errors(value, error):
    with pytest.raises(ConfigError) as failed:
        resolve_secret(value, {"BOTH": "value-one", "BOTH_FILE": "/x"}, key="notify.url")
    assert str(failed.value).startswith(error)


# --- run_as ----------------------------------------------------------------------------------------


def test_run_as_in_bot_applies_to_every_environment_unless_overridden(tmp_path):
    config = parse(
        tmp_path,
        {},
        environments={
            "production": {"script": STEPS},
            "local": {"script": STEPS, "run_as": ""},
            "numeric": {"script": STEPS, "run_as": f"{ME.pw_uid}:{ME.pw_gid}"},
        },
        run_as=ME.pw_name,
    )
    production = config.environments["production"].account
    assert (production.user, production.uid, production.gid) == (ME.pw_name, ME.pw_uid, ME.pw_gid)
    assert set(production.groups) == set(os.getgrouplist(ME.pw_name, ME.pw_gid))
    assert production.home == ME.pw_dir
    assert config.environments["local"].account is None
    assert config.environments["numeric"].account.user == ME.pw_name


@pytest.mark.parametrize(
    ("bot", "env", "error"),
    [
        ("nobody-such-user-x", None, "bot.run_as: unknown user 'nobody-such-user-x'"),
        (None, "nobody-such-user-x", "environments.production.run_as: unknown user 'nobody-such-user-x'"),
        (
            None,
            f"{ME.pw_name}:no-such-group-x",
            "environments.production.run_as: unknown group 'no-such-group-x'",
        ),
        (None, "999999", "environments.production.run_as: unknown user '999999'"),
    ],
)
def test_an_unknown_account_names_the_key(tmp_path, bot, env, error):
    production = {"script": STEPS} | ({"run_as": env} if env is not None else {})
    extra = {"run_as": bot} if bot is not None else {}
    with pytest.raises(ConfigError) as failed:
        parse(tmp_path, {}, environments={"production": production}, **extra)
    assert str(failed.value) == f"{tmp_path / 'deploybot.toml'}: {error}"


@pytest.mark.parametrize(
    ("bot", "env", "key"),
    [(ME.pw_name, None, "bot.run_as"), ("", ME.pw_name, "environments.production.run_as")],
)
def test_run_as_without_the_capabilities_to_switch_accounts_is_refused(tmp_path, bot, env, key):
    production = {"script": STEPS} | ({"run_as": env} if env is not None else {})
    raw = {"bot": {"admins": [ADMIN], "run_as": bot}, "environments": {"production": production}}
    path = tmp_path / "deploybot.toml"
    with pytest.raises(ConfigError) as failed:
        parse_config(raw, path, {}, capabilities_missing=lambda: ["CAP_KILL", "CAP_SETUID"])
    assert str(failed.value) == (
        f"{path}: {key}: running scripts under another account needs a bot running as root or with "
        "CAP_SETUID, CAP_SETGID and CAP_KILL; this one lacks CAP_KILL, CAP_SETUID"
    )
    # without run_as nothing is asked of the bot
    raw["bot"]["run_as"] = ""
    raw["environments"]["production"].pop("run_as", None)
    parse_config(raw, path, {}, capabilities_missing=lambda: ["CAP_KILL", "CAP_SETUID"])
