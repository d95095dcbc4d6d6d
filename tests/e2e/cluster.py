"""Several real `deploybot serve` and `deploybot worker` processes on one PostgreSQL, for the
end-to-end tests of DESIGN §12.

    async with Cluster(tmp_path, db_url, slack, {"production": WAITER}, lease_seconds=3) as cluster:
        a, b = await asyncio.gather(cluster.serve("a"), cluster.serve("b", no_runner=True))
        status, body = await cluster.trigger(b, "production")

Each process is a child of the test with one config for all, its own port (serve), its own
`PID_FILE` and its own log file (shown when it fails to start). It counts as started once its row
is in `deploy_runners`, which also gives its own pid (under `faketime` the bot is the wrapper's
child) and its runner id. On the way out every child is continued (a stopped one would ignore the
kill) and killed, and every script the deploys of the test left behind is killed too: a bot killed
with SIGKILL leaves its script running in its own process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.deploy.runner import stop_orphan
from storage import repository as repo
from storage import runners
from storage.db import Database
from storage.models import Deploy, Runner
from tests.conftest import ADMIN, free_port

TOKEN = "cluster-token-0123456789"
CHANNEL = "C0DEPLOY1"
REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 30.0
API = "/api/v1"


@dataclass
class Member:
    """One bot process of the cluster."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    pid_file: Path
    url: str | None = None  # serve only
    pid: int = 0  # the bot's own pid, from its runner row
    runner_id: str = ""
    host: str = ""

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class Cluster:
    def __init__(
        self, tmp_path: Path, db_url: str, slack: Any, environments: dict[str, Path], **bot: float
    ) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.slack = slack  # tests.fakeslack.FakeSlack
        self.environments = environments
        self.bot = bot
        self.members: list[Member] = []
        self.config = tmp_path / "cluster.toml"
        self.db = Database(db_url)
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Cluster:
        self.config.write_text(
            f'[bot]\nadmins = ["{ADMIN}"]\ndatabase_url = "{self.db_url}"\nnotify_channel = "{CHANNEL}"\n'
            + "".join(f"{key} = {value}\n" for key, value in self.bot.items())
            + "".join(
                f'[environments.{name}]\nscript = "{script}"\n' for name, script in self.environments.items()
            )
        )
        # Migrated once here: the processes then start together on a schema that is there.
        await self.db.upgrade()
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            for member in self.members:
                await _kill(member)
            await self._stop_scripts()
        finally:
            if self.http is not None:
                await self.http.close()
            await self.db.dispose()

    # --- starting processes --------------------------------------------------------------------

    async def serve(
        self, name: str, *, no_runner: bool = False, environments: str | None = None, **environ: str
    ) -> Member:
        """`deploybot serve [--no-runner | --environments ...]`, once it answers /healthz and is
        registered."""
        port = free_port()
        argv = ["serve", "--port", str(port)] + (["--no-runner"] if no_runner else [])
        argv += ["--environments", environments] if environments else []
        member = await self._spawn(name, argv, (), environ)
        member.url = f"http://127.0.0.1:{port}"
        await self._registered(member)
        for _ in range(int(START_SECONDS * 10)):
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{member.url}/healthz") as response:
                    if response.status == 200:
                        return member
            await asyncio.sleep(0.1)
        pytest.fail(f"{name} did not answer /healthz:\n{member.output()}")

    async def worker(
        self,
        name: str,
        *,
        environments: str | None = None,
        prefix: tuple[str, ...] = (),
        **environ: str,
    ) -> Member:
        """`deploybot worker [--environments ...]`, run through `prefix` (faketime, unshare), once
        it is registered."""
        argv = ["worker"] + (["--environments", environments] if environments else [])
        member = await self._spawn(name, argv, prefix, environ)
        await self._registered(member)
        return member

    async def _spawn(
        self, name: str, argv: list[str], prefix: tuple[str, ...], environ: dict[str, str]
    ) -> Member:
        log = self.tmp_path / f"{name}.log"
        pid_file = self.tmp_path / f"{name}.pid"
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-cluster-test",
            "SLACK_SIGNING_SECRET": "cluster-signing-secret",
            "SLACK_API_URL": self.slack.api_url,
            "DEPLOYBOT_API_TOKENS": f"ci:{TOKEN}",
            "PID_FILE": str(pid_file),
            **environ,
        }
        for variable in ("DATABASE_URL", "SLACK_APP_TOKEN"):
            env.pop(variable, None)
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *prefix, sys.executable, "-m", "bot", "--config", str(self.config), *argv,
                cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        member = Member(name, proc, log, pid_file)
        self.members.append(member)
        return member

    async def _registered(self, member: Member) -> None:
        """Wait for the member's row in deploy_runners: the bot's pid is the child's or, under a
        wrapper that forks (faketime), its child's."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while loop.time() < deadline:
            if member.proc.returncode is not None:
                break
            async with self.db.session() as session:
                for row in await runners.live(session):
                    if row.pid == member.proc.pid or _parent(row.pid) == member.proc.pid:
                        member.pid, member.runner_id, member.host = row.pid, row.runner_id, row.host
                        return
            await asyncio.sleep(0.1)
        pytest.fail(f"{member.name} did not register (exit {member.proc.returncode}):\n{member.output()}")

    # --- asking and looking --------------------------------------------------------------------

    async def trigger(self, member: Member, environment: str) -> tuple[int, dict]:
        async with self.http.post(
            f"{member.url}{API}/deploy/trigger", json={"environment": environment}
        ) as response:
            return response.status, await response.json()

    async def cancel(self, member: Member, deploy_id: int) -> tuple[int, dict]:
        async with self.http.post(f"{member.url}{API}/deploy/cancel/{deploy_id}") as response:
            return response.status, await response.json()

    async def log_text(self, member: Member, deploy_id: int) -> str:
        async with self.http.get(f"{member.url}{API}/deploy/logs/{deploy_id}") as response:
            assert response.status == 200, await response.text()
            return (await response.json())["text"]

    async def row(self, deploy_id: int) -> Deploy:
        async with self.db.session() as session:
            return await repo.get_deploy(session, deploy_id, include_deleted=True)

    async def rows(self) -> list[Deploy]:
        async with self.db.session() as session:
            return list((await session.execute(select(Deploy).order_by(Deploy.id))).scalars())

    async def runner(self, member: Member) -> Runner | None:
        async with self.db.session() as session:
            return await session.get(Runner, member.runner_id)

    async def wait_for(self, deploy_id: int, *statuses: str, timeout: float = 20) -> Deploy:
        """The deploy's row once its status is one of `statuses`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            deploy = await self.row(deploy_id)
            if deploy.status in statuses:
                return deploy
            if loop.time() > deadline:
                pytest.fail(f"deploy #{deploy_id} is {deploy.status}, not {'/'.join(statuses)}{self._logs()}")
            await asyncio.sleep(0.1)

    def _logs(self) -> str:
        return "".join(f"\n--- {m.name} ---\n{m.output()}" for m in self.members)

    # --- the way out ---------------------------------------------------------------------------

    async def _stop_scripts(self) -> None:
        for deploy in await self.rows():
            if deploy.runner_pid:
                stop_orphan(deploy.runner_pid, deploy.id)


async def script_pid(member: Member, timeout: float = 20) -> int:
    """The pid pid_and_wait.sh wrote to the member's PID_FILE."""
    async with asyncio.timeout(timeout):
        while not member.pid_file.exists() or not member.pid_file.read_text().strip():
            await asyncio.sleep(0.05)
    return int(member.pid_file.read_text())


def group_gone(pgid: int) -> bool:
    """Whether no process of group `pgid` runs any more."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # A member that exited after its parent did is reparented to init, and this machine's init may
    # not reap it: such a zombie still counts for killpg. Only a member that is not one runs.
    return not any(state != "Z" for state in _group_states(pgid))


def _group_states(pgid: int) -> list[str]:
    states = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            states.append(fields[0])
    return states


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


async def _kill(member: Member) -> None:
    proc = member.proc
    for pid in {member.pid, proc.pid} - {0}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a stopped process does not act on SIGKILL until continued
            os.kill(pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
