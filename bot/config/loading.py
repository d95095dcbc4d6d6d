"""Reading the config: the TOML file checked key by key, then the secrets and accounts it names.

Every invalid value stops start-up with a `ConfigError` naming the file and the key (or, for a
secret, the variable).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Collection
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from bot.config.accounts import check_switch, missing_capabilities, resolve_account
from bot.config.model import (
    Config,
    ConfigError,
    ConfigFile,
    Environment,
    Freeze,
    NotifySink,
    RunAs,
    normalize_url,
)
from bot.config.secrets import bot_secrets, check_length, read_secret, resolve_secret, script_secrets

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _key_of(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value).resolve()


def _resolve_repo(base: Path, repo: str) -> str:
    if not repo or "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    path = Path(repo)
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_database(base: Path, url: str) -> str:
    url = normalize_url(url)
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def load_config(
    path: str | os.PathLike | None = None,
    environ: dict[str, str] | None = None,
    *,
    reserved_words: Collection[str] = (),
    runs: Collection[str] | None = None,
) -> Config:
    """Read and check the config file. `reserved_words` are the `/deploy` sub-commands (the
    grammar's), which no environment or alias may be named. `runs`: the environments (names or
    aliases) whose scripts this process runs, None for all; only theirs are checked here."""
    environ = dict(os.environ if environ is None else environ)
    chosen = Path(path or environ.get("DEPLOYBOT_CONFIG") or "deploybot.toml")
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    return parse_config(raw, chosen.resolve(), environ, reserved_words=reserved_words, runs=runs)


def parse_config(
    raw: dict,
    path: Path,
    environ: dict[str, str],
    *,
    reserved_words: Collection[str] = (),
    runs: Collection[str] | None = None,
    capabilities_missing: Callable[[], list[str]] = missing_capabilities,
) -> Config:
    """Check `raw` (the TOML, read from `path`) and resolve its secrets from `environ`.
    `capabilities_missing` says which capabilities run_as needs the bot lacks (tests replace it)."""
    base = path.parent
    secrets = bot_secrets(environ)  # read once, here: a bad secret fails before anything starts
    database_url = read_secret(environ, "DATABASE_URL")
    if database_url:
        raw = {**raw, "bot": {**raw.get("bot", {}), "database_url": database_url}}
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {_key_of(first['loc'])}: {first['msg']}") from None

    if not parsed.environments:
        raise ConfigError(f"{path}: environments: define at least one environment")
    bot = parsed.bot.model_copy(update={"database_url": _resolve_database(base, parsed.bot.database_url)})
    password_from = "DATABASE_URL" if database_url else f"{path}: bot.database_url"
    check_length(f"{password_from} (its password)", make_url(bot.database_url).password or "")
    bot_account = resolve_account(bot.run_as, f"{path}: bot.run_as") if bot.run_as else None

    environments = {
        name: _environment(path, name, env, reserved_words) for name, env in parsed.environments.items()
    }
    lookup = _lookup(path, environments, reserved_words)
    running = _running(path, lookup, runs)
    for name in running:
        _check_script(path, environments[name])
    environments = _with_secrets_and_accounts(path, environments, environ, bot_account, running)
    switching = [env.name for env in environments.values() if env.account is not None]
    if switching:
        first = parsed.environments[switching[0]]
        key = f"environments.{switching[0]}.run_as" if first.run_as else "bot.run_as"
        check_switch(f"{path}: {key}", capabilities_missing())
    bot = bot.model_copy(
        update={
            "metrics_token": resolve_secret(
                bot.metrics_token, environ, key=f"{path}: bot.metrics_token", base=base
            )
        }
    )
    freezes = tuple(_checked_freeze(path, n, f, lookup) for n, f in enumerate(parsed.freeze))
    notify = tuple(_resolved_sink(path, n, sink, lookup, environ) for n, sink in enumerate(parsed.notify))
    return Config(
        bot,
        parsed.retention,
        environments,
        secrets,
        path,
        lookup,
        runs=running,
        freezes=freezes,
        notify=notify,
    )


def _names(path: Path, key: str, words: tuple[str, ...], lookup: dict[str, str]) -> tuple[str, ...]:
    """Environment names (or aliases) of a [[freeze]] or [[notify]] entry, as names."""
    names = []
    for word in words:
        name = lookup.get(word.strip().lower())
        if name is None:
            raise ConfigError(f"{path}: {key}.environments: no environment '{word}'")
        names.append(name)
    return tuple(names)


def _checked_freeze(path: Path, n: int, freeze: Freeze, lookup: dict[str, str]) -> Freeze:
    names = _names(path, f"freeze[{n}]", freeze.environments, lookup)
    return freeze.model_copy(update={"environments": names})


def _resolved_sink(
    path: Path, n: int, sink: NotifySink, lookup: dict[str, str], environ: dict[str, str]
) -> NotifySink:
    key = f"{path}: notify[{n}]"
    resolved = {
        field: resolve_secret(getattr(sink, field), environ, key=f"{key}.{field}", base=path.parent)
        for field in ("url", "secret", "smtp_password")
        if getattr(sink, field)
    }
    if sink.kind != "email" and not resolved["url"].startswith(("https://", "http://")):
        raise ConfigError(f"{key}.url: must be an http(s) URL")
    names = _names(path, f"notify[{n}]", sink.environments, lookup)
    return sink.model_copy(update={**resolved, "environments": names})


def _running(path: Path, lookup: dict[str, str], runs: Collection[str] | None) -> frozenset[str]:
    """The environments this process runs, by their names; every one when `runs` is None."""
    if runs is None:
        return frozenset(lookup.values())
    running = set()
    for word in runs:
        name = lookup.get(word.strip().lower())
        if name is None:
            choices = ", ".join(sorted(set(lookup.values())))
            raise ConfigError(f"{path}: --environments: no environment '{word}' (there are: {choices})")
        running.add(name)
    return frozenset(running)


def _with_secrets_and_accounts(
    path: Path,
    environments: dict[str, Environment],
    environ: dict[str, str],
    bot_account: RunAs | None,
    running: frozenset[str],
) -> dict[str, Environment]:
    """Each environment this process runs with its `secrets` read from `environ`, the names every
    script but its own goes without, and the account its script runs under. Another process runs
    the others: their secrets and accounts may exist only where it runs."""
    withheld = frozenset(
        variable
        for env in environments.values()
        for name in env.secrets
        for variable in (name, f"{name}_FILE")
    )
    resolved: dict[str, Environment] = {}
    for name, env in environments.items():
        if name not in running:
            resolved[name] = env.resolved({}, withheld, None)
            continue
        key = f"{path}: environments.{name}"
        secret_env = script_secrets(env.secrets, environ, f"{key}.secrets")
        account = bot_account
        if env.run_as is not None:
            account = resolve_account(env.run_as, f"{key}.run_as") if env.run_as else None
        resolved[name] = env.resolved(secret_env, withheld, account)
    return resolved


def _environment(path: Path, name: str, env: Environment, reserved_words: Collection[str]) -> Environment:
    """`env` with its paths resolved from the config file's folder, after checking them."""
    base = path.parent
    key = f"environments.{name}"
    if not ENV_NAME.match(name):
        raise ConfigError(f"{path}: {key}: names use lowercase letters, digits, '-' and '_'")
    if name in reserved_words:
        raise ConfigError(f"{path}: {key}: '{name}' is a /deploy sub-command")
    return env.model_copy(
        update={
            "name": name,
            "script": _resolve(base, env.script),
            "workdir": _resolve(base, env.workdir),
            "repo": _resolve_repo(base, env.repo),
        }
    )


def _check_script(path: Path, env: Environment) -> None:
    """The script and folder of an environment this process runs are there and usable."""
    key = f"environments.{env.name}"
    if not env.script.is_file():
        raise ConfigError(f"{path}: {key}.script: no such file: {env.script}")
    if not os.access(env.script, os.X_OK):
        raise ConfigError(f"{path}: {key}.script: not executable: {env.script}")
    if env.workdir is not None and not env.workdir.is_dir():
        raise ConfigError(f"{path}: {key}.workdir: no such directory: {env.workdir}")


def _lookup(
    path: Path, environments: dict[str, Environment], reserved_words: Collection[str]
) -> dict[str, str]:
    """Every name and alias (lowercase) to the environment it names; an alias may name one only."""
    lookup = {name: name for name in environments}
    for name, env in environments.items():
        for word in env.aliases:
            word = word.strip().lower()
            key = f"environments.{name}.aliases"
            if word in reserved_words:
                raise ConfigError(f"{path}: {key}: '{word}' is a /deploy sub-command")
            if lookup.get(word, name) != name:
                raise ConfigError(f"{path}: {key}: '{word}' already names {lookup[word]}")
            lookup[word] = name
    return lookup
