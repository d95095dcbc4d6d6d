"""The bot under test: `python -m bot serve` (or `worker`) as a child process, and a REST client for it.

The bot runs in its own process so its memory (VmHWM from /proc) and CPU are its own, not the
harness's. Slack is the local workspace of bot/console/workspace.py, run by the harness on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.workspace import REPO

API_TOKEN = "bench-token-0123456789"
SIGNING_SECRET = "bench-signing-secret"
START_TIMEOUT = 60.0


class BotFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """`async with BotProcess(config, slack_api_url, log_path) as bot:` starts `deploybot serve`
    on a free loopback port and stops it (SIGTERM) on exit. `command="worker"` starts a process that
    serves no HTTP (whoever starts it waits for it among the runners); `args` go after the verb."""

    def __init__(
        self,
        config: Path,
        slack_api_url: str,
        log_path: Path,
        extra_env: dict | None = None,
        profile: Path | None = None,
        *,
        command: str = "serve",
        args: Sequence[str] = (),
    ):
        self.config = config
        self.command = command
        self.args = tuple(args)
        self.profile = profile
        self.profiler: asyncio.subprocess.Process | None = None
        self.slack_api_url = slack_api_url
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def slack_url(self) -> str:
        return f"{self.url}/slack/events"

    @property
    def serves_http(self) -> bool:
        return self.command == "serve"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> BotProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack_api_url,
            "DEPLOYBOT_API_TOKENS": f"bench:{API_TOKEN}",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("DATABASE_URL", None)
        env.pop("SLACK_APP_TOKEN", None)
        with open(self.log_path, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "--config",
                str(self.config),
                self.command,
                *(("--host", "127.0.0.1", "--port", str(self.port)) if self.serves_http else ()),
                *self.args,
                cwd=REPO,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            connector=aiohttp.TCPConnector(limit=100),
        )
        if not self.serves_http:
            await self._start_profiler()
            return
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise BotFailed(f"the bot exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        await self._start_profiler()
                        return
            await asyncio.sleep(0.1)
        raise BotFailed(f"the bot did not answer /healthz within {START_TIMEOUT:.0f}s; see {self.log_path}")

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.profiler is not None:
            await self.profiler.wait()  # py-spy writes its file once the bot has exited

    async def _start_profiler(self) -> None:
        """Sample the bot with py-spy (`--profile`): collapsed stacks, one line per stack."""
        if self.profile is None:
            return
        py_spy = Path(sys.executable).with_name("py-spy")
        self.profiler = await asyncio.create_subprocess_exec(
            str(py_spy), "record", "--pid", str(self.pid), "--rate", "200", "--threads", "--nonblocking",
            "--format", "raw", "--output", str(self.profile),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    # --- memory ------------------------------------------------------------------------------

    def memory_kib(self, field: str = "VmHWM") -> int:
        """A field of /proc/<pid>/status in KiB: VmHWM is the peak resident set since start."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise BotFailed(f"no {field} in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the bot has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # --- REST --------------------------------------------------------------------------------

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.request(method, f"{self.url}/api/v1/deploy/{path}", **kwargs) as response:
            return response.status, await response.json()

    async def trigger(self, environment: str, branch: str | None = None) -> dict:
        body = {"environment": environment, **({"branch": branch} if branch else {})}
        status, answer = await self.api("POST", "trigger", json=body)
        if status != 201:
            raise BotFailed(f"trigger {environment}: {status} {answer}")
        return answer

    async def status(self, deploy_id: int) -> dict:
        status, answer = await self.api("GET", f"status/{deploy_id}")
        if status != 200:
            raise BotFailed(f"status {deploy_id}: {status} {answer}")
        return answer

    async def record(self, deploy_id: int) -> dict:
        status, answer = await self.api("GET", f"history/{deploy_id}")
        if status != 200:
            raise BotFailed(f"history/{deploy_id}: {status} {answer}")
        return answer

    async def wait_finished(self, deploy_id: int, poll: float = 0.05, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await self.status(deploy_id)
            if status["finished"]:
                return await self.record(deploy_id)
            await asyncio.sleep(poll)
        raise BotFailed(f"deploy #{deploy_id} still running after {timeout:.0f}s")

    async def read_log(self, deploy_id: int, offset: int = 0) -> tuple[bytes, int, bool]:
        """The raw log bytes from `offset`: (data, next offset, complete)."""
        assert self.http is not None
        url = f"{self.url}/api/v1/deploy/logs/{deploy_id}"
        params = {"offset": str(offset), "format": "raw"}
        async with self.http.get(url, params=params) as response:
            if response.status != 200:
                raise BotFailed(f"logs/{deploy_id}: {response.status} {await response.text()}")
            data = await response.read()
            return data, int(response.headers["X-Next-Offset"]), response.headers["X-Log-Complete"] == "true"
