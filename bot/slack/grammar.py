"""The `/deploy` grammar (DESIGN §6). Pure: text in, a command or a `UsageError` out.

One table, `GRAMMAR`, drives both the parser and `/deploy help`, so the help can never describe a
syntax the parser does not accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.config import Config
from bot.deploy import git, schedule
from bot.deploy.locks import parse_duration
from bot.deploy.schedule import When
from bot.errors import DeployError, InvalidBranch, InvalidInput
from bot.i18n import CATALOGUES, t
from storage.models import Status

MAX_ID = 2**31 - 1
ID = re.compile(r"^#?(\d{1,10})$")
FLAGS = {
    "--skip-build": "skip_build",
    "--skip-migrations": "skip_migrations",
    "--queue": "queue",
    "--force": "force",  # takes the next word as its reason
}
ALL = "all"


@dataclass(frozen=True)
class OpenModal:
    """`/deploy` alone: open the deploy modal."""


@dataclass(frozen=True)
class StartDeploy:
    env: str
    branch: str | None = None
    skip_build: bool = False
    skip_migrations: bool = False
    description: str = ""
    queue: bool = False  # wait in the environment's queue when it is busy
    force: str | None = None  # a manager's reason to pass a branch rule or a freeze
    when: When | None = None  # `at <time>` / `in <delay>`: scheduled for later


@dataclass(frozen=True)
class ShowHistory:
    env: str | None = None
    status: str | None = None
    page: int = 1


@dataclass(frozen=True)
class ShowStatus:
    id: int | None = None


@dataclass(frozen=True)
class ShowLogs:
    id: int


@dataclass(frozen=True)
class CancelDeploy:
    id: int


@dataclass(frozen=True)
class RollbackTo:
    id: int
    reason: str = ""


@dataclass(frozen=True)
class ShowSchedule:
    """`/deploy schedule`: the deploys waiting for their time."""


@dataclass(frozen=True)
class ShowRunners:
    """`/deploy runners`: the live bot processes and the environments each runs."""


@dataclass(frozen=True)
class ShowAudit:
    """`/deploy audit [env] [page]`: the audit trail, newest first."""

    env: str | None = None
    page: int = 1


@dataclass(frozen=True)
class LockEnvironment:
    """`/deploy lock <env> [duration] [reason…]`: minutes None is the default duration."""

    env: str
    minutes: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class UnlockEnvironment:
    env: str


@dataclass(frozen=True)
class ShowLocks:
    """`/deploy locks`: every locked environment."""


@dataclass(frozen=True)
class ShowHelp:
    pass


Command = (
    OpenModal
    | StartDeploy
    | ShowHistory
    | ShowStatus
    | ShowLogs
    | CancelDeploy
    | RollbackTo
    | ShowSchedule
    | ShowRunners
    | ShowAudit
    | LockEnvironment
    | UnlockEnvironment
    | ShowLocks
    | ShowHelp
)


class UsageError(Exception):
    """Bad `/deploy` input: what was wrong (a catalogue key) and the syntax that would have worked."""

    def __init__(self, message_key: str, params: dict | None = None, usage: str = "") -> None:
        self.message_key = message_key
        self.params = params or {}
        self.usage = usage
        super().__init__(message_key)

    def message(self, locale: str) -> str:
        return t(locale, self.message_key, **self.params)


@dataclass(frozen=True)
class _Word:
    """A token of the command text and where it starts, so free text keeps its own spacing."""

    text: str
    start: int


@dataclass(frozen=True)
class Form:
    word: str | None  # the sub-command word; None for `/deploy` and `/deploy <env> ...`
    syntax: str
    help_key: str
    parse: Callable[[list[_Word], str, Config, str], Command] = field(compare=False)


# --- one parser per form ------------------------------------------------------------------------


def _open(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    return OpenModal()


def _deploy(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    """Flags may stand anywhere before the description: the first word that is not a flag is the
    branch, the next one starts the description (which keeps its own spacing). `--force` takes
    the word after it as its reason. (`at <time>` / `in <delay>` will be read here too, as
    keywords only when the next word parses as a time.)"""
    env = config.environment(words[0].text)
    if env is None:  # parse() only routes here for known environments; keep the guard anyway
        raise _unknown_word(words[0].text, config)
    rest = words[1:]
    branch = None
    flags: dict[str, object] = {}
    while rest:
        word = rest.pop(0)
        if word.text.lower() in ("at", "in") and (when := _when(word.text.lower(), rest, syntax)):
            if "when" in flags:
                raise UsageError("cmd.error.flag_twice", {"flag": word.text.lower()}, syntax)
            flags["when"] = when
            continue
        if not word.text.startswith("--"):
            if branch is not None:
                rest.insert(0, word)
                break
            branch = _branch(word.text, syntax)
            continue
        flag = word.text.lower()
        if flag not in FLAGS:
            raise UsageError("cmd.error.unknown_flag", {"flag": flag[:40], "flags": ", ".join(FLAGS)}, syntax)
        if FLAGS[flag] in flags:
            raise UsageError("cmd.error.flag_twice", {"flag": flag}, syntax)
        if flag == "--force":
            if not rest or rest[0].text.startswith("--"):
                raise UsageError("cmd.error.force_reason", {}, syntax)
            flags["force"] = rest.pop(0).text
        else:
            flags[FLAGS[flag]] = True
    description = text[rest[0].start :].strip() if rest else ""
    return StartDeploy(env.name, branch, description=description, **flags)  # type: ignore[arg-type]


def _when(keyword: str, rest: list[_Word], syntax: str) -> When | None:
    """`at HH:MM`, `at YYYY-MM-DD HH:MM`, `in 10m`: the time, its words taken from `rest`; None
    (nothing taken) when the next word is not shaped like a time, so `at` stays an ordinary word.
    A time-shaped word that is no valid time (`at 25:00`, `in 0s`) is a usage error."""
    if not rest:
        return None
    try:
        if keyword == "in":
            when = schedule.parse_delay(rest[0].text)
            taken = 1
        elif len(rest) > 1 and (when := schedule.parse_clock(rest[1].text, date=rest[0].text)):
            taken = 2
        else:
            when = schedule.parse_clock(rest[0].text)
            taken = 1
    except DeployError as exc:
        raise UsageError("cmd.error.bad_time", {"detail": exc.params.get("detail")}, syntax) from None
    if when is not None:
        del rest[:taken]
    return when


def _history(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    found: dict[str, object] = {}

    def put(kind: str, value: object, word: str) -> None:
        if kind in found:
            raise UsageError("cmd.error.history_twice", {"word": word[:40]}, syntax)
        found[kind] = value

    for word in words[1:]:
        token = word.text
        if token.isdigit():
            page = int(token)
            if not 1 <= page <= 100_000:
                raise UsageError("cmd.error.bad_page", {"page": token[:12]}, syntax)
            put("page", page, token)
        elif token.lower() == ALL:
            continue
        elif (status := _status(token)) is not None:
            put("status", status, token)
        elif (env := config.environment(token)) is not None:
            put("env", env.name, token)
        else:
            raise UsageError(
                "cmd.error.history_word",
                {
                    "word": token[:40],
                    "envs": ", ".join(config.environments),
                    "statuses": ", ".join(s.value for s in Status),
                },
                syntax,
            )
    return ShowHistory(found.get("env"), found.get("status"), found.get("page", 1))  # type: ignore[arg-type]


def _status_of(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    _no_more(words, 2, syntax)
    return ShowStatus(_id(words[1].text, syntax) if len(words) > 1 else None)


def _logs(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    return ShowLogs(_required_id(words, syntax))


def _cancel(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    return CancelDeploy(_required_id(words, syntax, extra_ok=False))


def _rollback(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    deploy_id = _required_id(words, syntax, extra_ok=True)
    reason = text[words[2].start :].strip() if len(words) > 2 else ""
    return RollbackTo(deploy_id, reason)


def _schedule(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    _no_more(words, 1, syntax)
    return ShowSchedule()


def _runners(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    _no_more(words, 1, syntax)
    return ShowRunners()


def _audit(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    found: dict[str, object] = {}
    for word in words[1:]:
        token = word.text
        number = token.isascii() and token.isdigit()
        env = None if number else config.environment(token)
        if not number and env is None:
            raise UsageError(
                "cmd.error.audit_word", {"word": token[:40], "envs": ", ".join(config.environments)}, syntax
            )
        kind = "page" if env is None else "env"
        if kind in found:
            raise UsageError("cmd.error.history_twice", {"word": token[:40]}, syntax)
        if env is not None:
            found["env"] = env.name
        elif len(token) > 6 or not 1 <= (page := int(token)) <= 100_000:
            raise UsageError("cmd.error.bad_page", {"page": token[:12]}, syntax)
        else:
            found["page"] = page
    return ShowAudit(found.get("env"), found.get("page", 1))  # type: ignore[arg-type]


def _lock(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    """A word after the environment that starts with a digit or a sign is the duration (and must
    be a good one); any other word starts the reason."""
    env = _environment_word(words, config, syntax)
    minutes, rest = None, words[2:]
    if rest and rest[0].text[:1] in "0123456789+-":
        try:
            minutes = parse_duration(rest.pop(0).text)
        except InvalidInput as exc:
            raise UsageError(exc.key, exc.params, syntax) from None
    return LockEnvironment(env, minutes, text[rest[0].start :].strip() if rest else "")


def _unlock(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    env = _environment_word(words, config, syntax)
    _no_more(words, 2, syntax)
    return UnlockEnvironment(env)


def _locks(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    _no_more(words, 1, syntax)
    return ShowLocks()


def _help(words: list[_Word], text: str, config: Config, syntax: str) -> Command:
    return ShowHelp()


GRAMMAR: tuple[Form, ...] = (
    Form(None, "/deploy", "cmd.help.open", _open),
    Form(
        None,
        "/deploy <env> [branch] [--skip-build] [--skip-migrations] [--queue] [--force <reason>] [at <time> | in <delay>] [description…]",
        "cmd.help.deploy",
        _deploy,
    ),
    Form("history", "/deploy history [env] [status] [page]", "cmd.help.history", _history),
    Form("status", "/deploy status [id]", "cmd.help.status", _status_of),
    Form("logs", "/deploy logs <id>", "cmd.help.logs", _logs),
    Form("cancel", "/deploy cancel <id>", "cmd.help.cancel", _cancel),
    Form("rollback", "/deploy rollback <id> [reason]", "cmd.help.rollback", _rollback),
    Form("schedule", "/deploy schedule", "cmd.help.schedule", _schedule),
    Form("runners", "/deploy runners", "cmd.help.runners", _runners),
    Form("audit", "/deploy audit [env] [page]", "cmd.help.audit", _audit),
    Form("lock", "/deploy lock <env> [duration] [reason…]", "cmd.help.lock", _lock),
    Form("unlock", "/deploy unlock <env>", "cmd.help.unlock", _unlock),
    Form("locks", "/deploy locks", "cmd.help.locks", _locks),
    Form("help", "/deploy help", "cmd.help.help", _help),
)
USAGE: list[tuple[str, str]] = [(form.syntax, form.help_key) for form in GRAMMAR]
FULL_USAGE = "\n".join(form.syntax for form in GRAMMAR)
_BY_WORD = {form.word: form for form in GRAMMAR if form.word}
RESERVED_WORDS = frozenset(_BY_WORD)  # no environment or alias may be named like a sub-command
_OPEN, _DEPLOY = GRAMMAR[0], GRAMMAR[1]


def parse(text: str, config: Config) -> Command:
    """Parse what followed `/deploy`. Raises UsageError on anything the grammar does not accept."""
    words = [_Word(m.group(), m.start()) for m in re.finditer(r"\S+", text or "")]
    if not words:
        return _OPEN.parse(words, text, config, _OPEN.syntax)
    form = _BY_WORD.get(words[0].text.lower())
    if form is None:
        if config.environment(words[0].text) is None:
            raise _unknown_word(words[0].text, config)
        form = _DEPLOY
    return form.parse(words, text, config, form.syntax)


def help_rows(locale: str) -> list[tuple[str, str]]:
    """(syntax, description) rows for `/deploy help`, from the same table the parser uses."""
    return [(syntax, t(locale, key)) for syntax, key in USAGE]


# --- pieces -------------------------------------------------------------------------------------


def _unknown_word(word: str, config: Config) -> UsageError:
    return UsageError(
        "cmd.error.unknown_word",
        {
            "word": word[:40],
            "commands": ", ".join(_BY_WORD),
            "envs": ", ".join(config.environments),
        },
        FULL_USAGE,
    )


def _environment_word(words: list[_Word], config: Config, syntax: str) -> str:
    """The environment named by the word after the sub-command, by its name."""
    if len(words) < 2:
        raise UsageError("cmd.error.missing_env", {"envs": ", ".join(config.environments)}, syntax)
    env = config.environment(words[1].text)
    if env is None:
        choices = ", ".join(config.environments)
        params = {"name": words[1].text[:40], "choices": choices}
        raise UsageError("error.unknown_environment", params, syntax)
    return env.name


def _branch(branch: str, syntax: str) -> str:
    try:
        return git.check_branch(branch)
    except InvalidBranch as exc:
        raise UsageError(exc.key, exc.params, syntax) from None


def _id(token: str, syntax: str) -> int:
    match = ID.match(token)
    value = int(match.group(1)) if match else 0
    if not 1 <= value <= MAX_ID:
        raise UsageError("cmd.error.bad_id", {"value": token[:40]}, syntax)
    return value


def _required_id(words: list[_Word], syntax: str, *, extra_ok: bool = False) -> int:
    if len(words) < 2:
        raise UsageError("cmd.error.missing_id", {}, syntax)
    if not extra_ok:
        _no_more(words, 2, syntax)
    return _id(words[1].text, syntax)


def _no_more(words: list[_Word], allowed: int, syntax: str) -> None:
    if len(words) > allowed:
        raise UsageError(
            "cmd.error.extra_words", {"words": " ".join(w.text for w in words[allowed:])[:80]}, syntax
        )


def _status(token: str) -> str | None:
    """A status filter written as its value (`failed`) or its label in either language (`部署失败`)."""
    lowered = token.lower()
    for status in Status:
        labels = {status.value} | {cat[f"status.{status.value}"].lower() for cat in CATALOGUES.values()}
        if lowered in labels:
            return status.value
    return None
