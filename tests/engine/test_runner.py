"""The runner against real subprocesses: output, exit codes, signals, timeouts, environment; and
the one secret filter every subprocess of the engine (deploy scripts, git) goes through."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bot.deploy import git
from bot.deploy.environ import is_secret, without_secrets
from bot.deploy.progress import Step
from bot.deploy.runner import Outcome, RunSpec, ScriptRun, script_environment
from tests.conftest import SCRIPTS, alive, gone


class Recorder:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.data = bytearray()
        self.steps: list[Step] = []
        self.commits: list[str] = []

    async def started(self, pid: int) -> None:
        self.pid = pid

    async def output(self, data: bytes) -> None:
        self.data += data

    async def step(self, step: Step) -> None:
        self.steps.append(step)

    async def commit(self, sha: str) -> None:
        self.commits.append(sha)


def spec_for(
    tmp_path: Path, body: str, *, timeout: float = 30, grace: float = 1.0, env: dict | None = None
) -> RunSpec:
    script = tmp_path / "script.sh"
    script.write_text("#!/usr/bin/env bash\n" + body)
    script.chmod(0o755)
    return RunSpec([str(script)], tmp_path, script_environment(os.environ, env or {}), timeout, grace)


async def test_success_reports_steps_commit_and_output(tmp_path):
    sha = "a" * 40
    rec = Recorder()
    body = f'echo "[1/2] build"\necho hello\necho "DEPLOY_COMMIT={sha}"\necho "==> [2/2] ship it"\n'
    result = await ScriptRun(spec_for(tmp_path, body), rec).execute()
    assert result.outcome is Outcome.SUCCESS and result.exit_code == 0
    assert [(s.number, s.total, s.title) for s in rec.steps] == [(1, 2, "build"), (2, 2, "ship it")]
    assert rec.steps[1].lines_before == ("hello", f"DEPLOY_COMMIT={sha}")
    assert rec.commits == [sha]
    assert bytes(rec.data) == f"[1/2] build\nhello\nDEPLOY_COMMIT={sha}\n==> [2/2] ship it\n".encode()


async def test_failure_names_exit_code_and_error_line(tmp_path):
    rec = Recorder()
    result = await ScriptRun(
        RunSpec([str(SCRIPTS / "fail.sh")], SCRIPTS, dict(os.environ), 30), rec
    ).execute()
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == 3
    assert result.error_line == "ERROR: compiler exploded"
    assert result.tail[-1] == "cleaning up"


async def test_output_is_byte_exact_with_long_line_and_no_final_newline(tmp_path):
    rec = Recorder()
    # 1 MB on one line, invalid UTF-8, a CR, and a last line without newline
    body = (
        "head -c 1048576 /dev/zero | tr '\\0' 'x'\n"
        "printf '\\n\\xff\\xfe bad utf8\\r\\n'\n"
        "printf 'last line without newline'\n"
    )
    result = await ScriptRun(spec_for(tmp_path, body), rec).execute()
    expected = b"x" * 1048576 + b"\n\xff\xfe bad utf8\r\nlast line without newline"
    assert result.outcome is Outcome.SUCCESS
    assert bytes(rec.data) == expected
    assert result.tail[-1] == "last line without newline"
    assert len(result.tail[-3]) <= 500  # the 1 MB line is clipped for display, not in the log


async def test_cancel_kills_a_tree_that_ignores_sigterm(tmp_path):
    rec = Recorder()
    run = ScriptRun(RunSpec([str(SCRIPTS / "ignore_term.sh")], SCRIPTS, dict(os.environ), 60, grace=0.5), rec)
    task = asyncio.create_task(run.execute())
    while b"child " not in rec.data or b"leader " not in rec.data:
        await asyncio.sleep(0.05)
    child = int(rec.data.split(b"child ")[1].split()[0])
    assert alive(child)
    run.cancel()
    run.cancel()  # idempotent
    result = await asyncio.wait_for(task, 20)
    assert result.outcome is Outcome.CANCELLED
    assert result.exit_code == -signal.SIGKILL
    assert await gone(rec.pid)
    assert await gone(child)


async def test_cancel_before_the_script_starts_stops_it_at_once(tmp_path):
    rec = Recorder()
    run = ScriptRun(spec_for(tmp_path, "sleep 30\n"), rec)
    run.cancel()
    result = await asyncio.wait_for(run.execute(), 20)
    assert result.outcome is Outcome.CANCELLED


async def test_timeout_stops_the_group(tmp_path):
    rec = Recorder()
    result = await asyncio.wait_for(
        ScriptRun(spec_for(tmp_path, "echo started\nsleep 60\n", timeout=0.5, grace=0.5), rec).execute(), 20
    )
    assert result.outcome is Outcome.TIMEOUT
    assert b"started" in rec.data
    assert await gone(rec.pid)


async def test_leftover_background_process_is_killed_when_the_script_exits(tmp_path):
    rec = Recorder()
    body = 'sleep 300 &\necho "bg $!"\n'
    result = await asyncio.wait_for(ScriptRun(spec_for(tmp_path, body), rec).execute(), 20)
    assert result.outcome is Outcome.SUCCESS
    straggler = int(rec.data.split(b"bg ")[1].split()[0])
    assert await gone(straggler)


async def test_environment_has_no_secrets_and_stdin_is_empty(tmp_path):
    base = {
        "PATH": os.environ["PATH"],
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "DATABASE_URL": "postgresql://x",
        "DEPLOYBOT_API_TOKENS": "ci:abc",
        "KEEP_ME": "yes",
    }
    env = script_environment(base, {"DEPLOY_ID": "7"})
    rec = Recorder()
    spec = RunSpec([str(SCRIPTS / "env_dump.sh")], tmp_path, env, 30)
    script = tmp_path / "stdin.sh"
    script.write_text(
        "#!/usr/bin/env bash\nif read -r line; then echo \"stdin: $line\"; else echo 'stdin empty'; fi\n"
    )
    script.chmod(0o755)
    await ScriptRun(spec, rec).execute()
    out = rec.data.decode()
    assert "KEEP_ME=yes" in out and "DEPLOY_ID=7" in out
    assert "xoxb-secret" not in out and "postgresql://x" not in out and "ci:abc" not in out
    assert out.strip().endswith(str(tmp_path))  # cwd
    rec2 = Recorder()
    await ScriptRun(RunSpec([str(script)], tmp_path, env, 30), rec2).execute()
    assert rec2.data == b"stdin empty\n"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("SLACK_BOT_TOKEN", True),
        ("SLACK_SIGNING_SECRET", True),
        ("DEPLOYBOT_API_TOKENS", True),
        ("DATABASE_URL", True),
        ("PATH", False),
        ("HOME", False),
        ("MY_SLACK_CHANNEL", False),
        ("DATABASE_URL_HINT", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret(name) is secret
    assert (name in without_secrets({name: "x", "KEEP": "y"})) is not secret


async def test_git_runs_without_the_bots_secrets(tmp_path, monkeypatch, git_repo):
    """The git the bot starts (and so every hook, ssh or helper git starts) never sees its secrets:
    a `git` first on PATH records the environment it was given, then runs the real one."""
    real_git = shutil.which("git")
    seen = tmp_path / "git.env"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f'#!/bin/sh\nenv >> "{seen}"\nexec "{real_git}" "$@"\n')
    (bin_dir / "git").chmod(0o755)
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "SLACK_APP_TOKEN": "xapp-secret",
        "DATABASE_URL": "postgresql://deploybot:hunter2@db/deploybot",
        "DEPLOYBOT_API_TOKENS": "ci:abc123",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEEP_ME", "yes")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    assert await git.resolve_branch(str(git_repo.path), "main") == git_repo.second
    assert await git.commit_exists(str(git_repo.path), git_repo.first)

    text = seen.read_text()
    runs = text.count("GIT_TERMINAL_PROMPT=0")
    assert runs == 2  # both git runs went through the recorder
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
    assert "KEEP_ME" in names
    assert not names & set(secrets)
    for value in secrets.values():
        assert value not in text


async def test_a_missing_interpreter_is_a_spawn_failure(tmp_path):
    result = await ScriptRun(RunSpec([str(tmp_path / "nope.sh")], tmp_path, {}, 30), Recorder()).execute()
    assert result.outcome is Outcome.SPAWN_FAILED
    assert "nope.sh" in result.detail


@pytest.mark.parametrize("pattern", [None, r"^STEP (?P<n>\d+) OF (?P<m>\d+) - (?P<title>.*)$"])
async def test_custom_step_pattern_replaces_the_default(tmp_path, pattern):
    rec = Recorder()
    spec = spec_for(tmp_path, 'echo "[1/2] default"\necho "STEP 2 OF 2 - custom"\n')
    spec = RunSpec(spec.argv, spec.cwd, spec.env, spec.timeout, step_pattern=pattern)
    await ScriptRun(spec, rec).execute()
    titles = [s.title for s in rec.steps]
    assert titles == (["default"] if pattern is None else ["custom"])


async def test_stop_orphan_only_touches_the_deploys_own_script(tmp_path):
    from bot.deploy.runner import stop_orphan

    rec = Recorder()
    run = ScriptRun(spec_for(tmp_path, "echo up\nsleep 30\n", env={"DEPLOY_ID": "41"}), rec)
    task = asyncio.create_task(run.execute())
    while rec.pid is None or b"up" not in rec.data:
        await asyncio.sleep(0.05)
    assert stop_orphan(rec.pid, 42) is False  # another deploy's id: a recycled pid is left alone
    assert stop_orphan(os.getpid(), 41) is False
    assert stop_orphan(rec.pid, 41) is True
    result = await asyncio.wait_for(task, 20)
    assert result.exit_code == -signal.SIGKILL


async def test_stop_orphan_kills_the_group_its_leader_left_behind(tmp_path):
    """A dead bot's script exited, but a child it started in the background still runs."""
    from bot.deploy.runner import stop_orphan

    child_pid = tmp_path / "child.pid"
    script = tmp_path / "script.sh"
    script.write_text(f"#!/bin/sh\nsleep 60 >/dev/null 2>&1 &\necho $! > {child_pid}\n")
    script.chmod(0o755)
    # Started as the bot starts scripts (its own session), by a "bot" that is gone by now.
    leader = subprocess.Popen(
        [str(script)], start_new_session=True, env={**os.environ, "DEPLOY_ID": "77"}, stdin=subprocess.DEVNULL
    )
    leader.wait(10)
    child = int(child_pid.read_text())
    assert alive(child) and not alive(leader.pid)
    assert stop_orphan(leader.pid, 78) is False  # another deploy's group is left alone
    assert alive(child)
    assert stop_orphan(leader.pid, 77) is True
    assert await gone(child)
