"""Scripts under another account (`run_as`), against a real throwaway system user.

They run with its uid, gid, groups and home; they read neither the bot's /proc/<pid>/environ, nor
a 0600 secret file, nor the bot's SQLite database (created 0600); cancel and timeout still stop
their whole process group. A bot that cannot signal a group says so loudly, and a non-dumpable bot
keeps its environ even from a script under its own account. Skipped (with the reason) unless root.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.runtime import Runtime, harden, start_runtime
from bot.config import Config, parse_config, resolve_account
from bot.deploy.progress import Step
from bot.deploy.runner import Outcome, RunSpec, ScriptRun, script_environment
from storage.models import Deploy, Status
from tests.conftest import ADMIN, SCRIPTS, alive, gone
from tests.throwaway import Account, write_script

REPO = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-fake-bot-token-7f3a91c2"


def config_for(folder: Path, account: Account, environments: dict, **bot) -> Config:
    raw = {
        "bot": {
            "admins": [ADMIN],
            "database_url": f"sqlite+aiosqlite:///{folder / 'deploybot.db'}",
            "run_as": account.user,
            "heartbeat_seconds": 0.5,
            "lease_seconds": 3,
            **bot,
        },
        "environments": environments,
    }
    return parse_config(raw, folder / "deploybot.toml", {})


async def deploy_log(runtime: Runtime, environment: str) -> tuple[Deploy, str]:
    service = runtime.service
    deploy = await service.trigger(environment, "main", user=ADMIN)
    async with asyncio.timeout(30):
        while not (deploy := await service.get(deploy.id)).state.is_finished:
            await asyncio.sleep(0.05)
    return deploy, (await service.logs(deploy.id)).text


def fields(log: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in log.split("|")[1].split(";"))


async def test_a_script_runs_with_the_accounts_uid_gid_groups_and_home(account, folder, caplog):
    who = write_script(
        folder,
        "who.sh",
        'echo "|uid=$(id -u);gid=$(id -g);groups=$(id -G);home=$HOME;user=$USER;logname=$LOGNAME|"\n',
    )
    config = config_for(
        folder,
        account,
        {
            "production": {"script": str(who)},  # [bot] run_as
            "staging": {"script": str(who), "run_as": f"{account.user}:{account.extra_group}"},
            "local": {"script": str(who), "run_as": ""},  # the bot's own account
        },
    )
    caplog.set_level(logging.WARNING)
    runtime = await start_runtime(config, base_env=dict(os.environ))
    try:
        production = fields((await deploy_log(runtime, "production"))[1])
        staging = fields((await deploy_log(runtime, "staging"))[1])
        local = fields((await deploy_log(runtime, "local"))[1])
    finally:
        await runtime.close()

    assert production["uid"] == staging["uid"] == str(account.uid)
    assert production["gid"] == str(account.gid)
    assert set(production["groups"].split()) == {str(account.gid), str(account.extra_gid)}
    assert staging["gid"] == str(account.extra_gid)  # the group given wins over the primary one
    assert set(staging["groups"].split()) == {
        str(g) for g in os.getgrouplist(account.user, account.extra_gid)
    }
    for seen in (production, staging):
        assert (seen["home"], seen["user"], seen["logname"]) == (account.home, account.user, account.user)
    assert local["uid"] == "0"
    warnings = [r.getMessage() for r in caplog.records if "the bot's own user" in r.getMessage()]
    assert len(warnings) == 1 and "local" in warnings[0] and "production" not in warnings[0]


async def test_a_script_reads_neither_the_bots_environ_nor_its_secret_file_nor_its_database(
    account, folder, monkeypatch
):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)  # the test process is the bot
    secret = folder / "slack-bot-token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    public = folder / "public.txt"
    public.write_text("anyone may read this\n")
    public.chmod(0o644)
    probe = write_script(
        folder,
        "probe.sh",
        'echo "ppid=$PPID"\n'
        'for f in "/proc/$PPID/environ" "$@"; do\n'
        '  if cat "$f"; then echo "read $f"; else echo "denied $f"; fi\n'
        "done\n"
        "env\n",
    )
    db = folder / "deploybot.db"
    config = config_for(
        folder,
        account,
        {"production": {"script": str(probe), "args": [str(secret), str(db), f"{db}-wal", str(public)]}},
    )
    runtime = await start_runtime(config, base_env=dict(os.environ))
    try:
        deploy, log = await deploy_log(runtime, "production")
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (db, Path(f"{db}-wal"))}
    finally:
        await runtime.close()

    assert deploy.state is Status.SUCCESS, log
    assert f"ppid={os.getpid()}\n" in log  # the script's parent is the bot itself
    for path in (f"/proc/{os.getpid()}/environ", secret, db, f"{db}-wal"):
        assert f"denied {path}\n" in log, log
    assert "Permission denied" in log
    assert f"anyone may read this\nread {public}\n" in log  # the account does read what it may
    assert TOKEN not in log and "SLACK_" not in log
    assert set(modes.values()) == {0o600}  # the database the bot created, and its WAL


class Recorder:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.data = bytearray()

    async def started(self, pid: int) -> None:
        self.pid = pid

    async def output(self, data: bytes) -> None:
        self.data += data

    async def step(self, step: Step) -> None:
        pass

    async def commit(self, sha: str) -> None:
        pass


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_cancel_and_timeout_stop_the_whole_group_under_run_as(account, folder, how):
    script = folder / "ignore_term.sh"
    shutil.copy(SCRIPTS / "ignore_term.sh", script)
    script.chmod(0o755)
    spec = RunSpec(
        [str(script)],
        folder,
        script_environment(os.environ, {}),
        timeout=60 if how == "cancel" else 3,
        grace=0.5,
        account=resolve_account(account.user, "run_as"),
    )
    rec = Recorder()
    run = ScriptRun(spec, rec)
    task = asyncio.create_task(run.execute())
    async with asyncio.timeout(20):
        while b"child " not in rec.data or b"leader " not in rec.data:
            await asyncio.sleep(0.05)
    child = int(rec.data.split(b"child ")[1].split()[0])
    assert uid_of(rec.pid) == uid_of(child) == account.uid  # both really run as the other account
    if how == "cancel":
        run.cancel()
    result = await asyncio.wait_for(task, 20)
    assert result.outcome is (Outcome.CANCELLED if how == "cancel" else Outcome.TIMEOUT)
    assert result.exit_code == -signal.SIGKILL  # it ignored SIGTERM: the KILL reached it
    assert await gone(rec.pid)
    assert await gone(child)


# A bot without the right to signal a group (here: a process that left root for the throwaway
# account) must not pretend the cancel worked.
SIGNAL_AS_ACCOUNT = """
import logging, os, signal, sys
from bot.deploy.runner import _signal_group
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
uid, gid, pgid = map(int, sys.argv[1:4])
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
_signal_group(pgid, signal.SIGTERM)
"""


def test_a_signal_the_bot_may_not_send_is_logged_loudly(account):
    target = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        result = subprocess.run(
            [sys.executable, "-c", SIGNAL_AS_ACCOUNT, str(account.uid), str(account.gid), str(target.pid)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert f"ERROR cannot send SIGTERM to process group {target.pid}: permission denied" in result.stderr
        assert alive(target.pid)
    finally:
        target.kill()
        target.wait()


# The bot and its script under the same account: only the bot being non-dumpable keeps its
# environ from the script. The "bot" is a process that leaves root for the throwaway account
# (which leaves it non-dumpable: the comparison makes it dumpable again) with a token in the
# environment it was started with, and runs the script as a deploy would.
SAME_ACCOUNT_BOT = """
import ctypes, os, subprocess, sys
from bot.deploy.environ import PR_SET_DUMPABLE, mark_non_dumpable
uid, gid, script, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
if mode == "non-dumpable":
    assert mark_non_dumpable()
else:
    assert ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
out = subprocess.run([script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
sys.stdout.buffer.write(out.stdout)
"""


@pytest.mark.parametrize("mode", ["dumpable", "non-dumpable"])
def test_a_non_dumpable_bot_keeps_its_environ_from_a_script_under_its_own_account(account, folder, mode):
    script = write_script(
        folder,
        "read_parent.sh",
        'if tr "\\0" "\\n" < "/proc/$PPID/environ"; then echo READ; else echo DENIED; fi\n',
    )
    result = subprocess.run(
        [sys.executable, "-c", SAME_ACCOUNT_BOT, str(account.uid), str(account.gid), str(script), mode],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "SLACK_BOT_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    if mode == "dumpable":  # the comparison: the same script does read a dumpable bot's environ
        assert f"SLACK_BOT_TOKEN={TOKEN}" in result.stdout and "READ" in result.stdout
    else:
        assert "Permission denied" in result.stdout and "DENIED" in result.stdout
        assert TOKEN not in result.stdout


def test_start_up_warns_when_the_account_cannot_reach_its_script(account, tmp_path, caplog):
    hidden = write_script(tmp_path, "deploy.sh", "true\n")  # pytest's tmp folders are 0700
    config = config_for(tmp_path, account, {"production": {"script": str(hidden)}})
    caplog.set_level(logging.WARNING)
    harden(config)
    assert f"environment production: {account.user} cannot read and run {hidden}" in caplog.text
