"""The deploy script as a subprocess: started, streamed, timed out, cancelled, cleaned up.

Only this module starts deploy scripts. A script runs from its argv (no shell) in a new session, so
it and everything it starts form one process group that can be stopped as a whole: SIGTERM first,
SIGKILL after a grace period. When the script exits, whatever it left behind in its group is killed;
a service a script starts must detach with `setsid`, as a service manager would expect.

A gate (`::gate:: <question>`, DESIGN §9) pauses the script until it reads `continue` or `abort`
from the pipe whose read end it gets as `$DEPLOY_GATE_FD`: one pipe per run, written by `answer_gate`,
closed (EOF: abort) by a cancel, a kill or the end of the run. The deploy's timeout does not run
while a gate waits: its deadline moves on by the time spent waiting.

The runner knows nothing of storage or Slack: it reports through `RunEvents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.aio import within
from bot.deploy.environ import without_secrets
from bot.deploy.masking import SecretMasker
from bot.deploy.progress import CommitReported, GateReached, Marker, OutputScanner, Step

if TYPE_CHECKING:
    from bot.config import RunAs

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024  # a chatty script writes on while we store what it wrote
STREAM_LIMIT = READ_SIZE  # asyncio pauses the pipe past twice this much unread output
DRAIN_SECONDS = 2.0
GATE_FD_VARIABLE = "DEPLOY_GATE_FD"


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SPAWN_FAILED = "spawn_failed"


@dataclass(frozen=True)
class RunSpec:
    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    timeout: float
    grace: float = 10.0
    step_pattern: str | None = None
    mask: frozenset[str] = frozenset()  # secret values masked out of the output
    account: RunAs | None = None  # run_as: the script's uid, gid, groups and home


@dataclass
class RunResult:
    outcome: Outcome
    exit_code: int | None = None
    error_line: str = ""
    tail: list[str] = field(default_factory=list)
    detail: str = ""


class RunEvents(Protocol):
    async def started(self, pid: int) -> None: ...
    async def output(self, data: bytes) -> None: ...
    async def step(self, step: Step) -> None: ...
    async def commit(self, sha: str) -> None: ...
    async def gate(self, question: str) -> None: ...


def script_environment(base: Mapping[str, str], deploy_vars: Mapping[str, str]) -> dict[str, str]:
    """The bot's environment without its secrets, plus the deploy's own variables."""
    return {**without_secrets(base), **deploy_vars}


class ScriptRun:
    """One execution of one deploy script. `execute()` runs it to the end; `cancel()` may be called
    at any time, from any task, any number of times."""

    def __init__(self, spec: RunSpec, events: RunEvents) -> None:
        self.spec = spec
        self.events = events
        self.scanner = OutputScanner(spec.step_pattern)
        self._proc: asyncio.subprocess.Process | None = None
        self._cancel_requested = False
        self._killed = False
        self._timed_out = False
        self._stopping: asyncio.Task | None = None
        self._gate_fd: int | None = None  # the write end of the gate pipe, while the script may read
        self._gate_since: float | None = None  # loop time the waiting gate was reached: no timeout
        self._deadline = 0.0
        self._clock_moved = asyncio.Event()

    def answer_gate(self, answer: str) -> None:
        """Give the script waiting at a gate its answer (one line), and let its timeout run again."""
        fd = self._gate_fd
        if fd is not None:
            try:
                os.write(fd, answer.encode() + b"\n")
            except OSError as exc:  # it exited or closed its end: it reads nothing any more
                log.info("the gate answer %r reached no script: %s", answer, exc)
        self._resume()

    def _close_gate(self) -> None:
        """EOF on the gate pipe: a script waiting at a gate, or reaching one later, reads abort."""
        fd, self._gate_fd = self._gate_fd, None
        if fd is not None:
            os.close(fd)
        self._resume()

    def _pause(self) -> None:
        if self._gate_since is None and self._gate_fd is not None:
            self._gate_since = asyncio.get_running_loop().time()
            self._clock_moved.set()

    def _resume(self) -> None:
        if self._gate_since is not None:
            self._deadline += asyncio.get_running_loop().time() - self._gate_since
            self._gate_since = None
            self._clock_moved.set()

    def cancel(self) -> None:
        self._cancel_requested = True
        self._close_gate()
        if self._proc is not None and self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_group())

    def kill(self) -> None:
        """SIGKILL the script's whole group now, no grace: it may not run on for another moment
        (its deploy is no longer this process's, and may run again elsewhere)."""
        self._cancel_requested = self._killed = True
        self._close_gate()
        if self._proc is not None and self._proc.returncode is None:
            _signal_group(self._proc.pid, signal.SIGKILL)

    async def execute(self) -> RunResult:
        env, account_kwargs = dict(self.spec.env), {}
        if (account := self.spec.account) is not None:
            env.update(HOME=account.home, USER=account.user, LOGNAME=account.user)
            account_kwargs = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
        gate_read, self._gate_fd = os.pipe()  # both ends close on exec; the script gets the read end
        os.set_blocking(self._gate_fd, False)  # an answer never blocks the bot
        env[GATE_FD_VARIABLE] = str(gate_read)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                cwd=self.spec.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=STREAM_LIMIT,
                pass_fds=(gate_read,),
                **account_kwargs,
            )
        except OSError as exc:
            self._close_gate()
            return RunResult(Outcome.SPAWN_FAILED, detail=f"{self.spec.argv[0]}: {exc.strerror or exc}")
        finally:
            os.close(gate_read)

        proc = self._proc
        _widen_pipe(proc.stdout)
        pump = asyncio.create_task(self._pump(proc.stdout))
        try:
            await self.events.started(proc.pid)
            if self._killed:
                self.kill()
            elif self._cancel_requested:
                self.cancel()
            if not await self._exited_in_time(proc):
                self._timed_out = True
                await self._stop_group()
        finally:
            self._close_gate()
            # The script is gone (or we are being torn down): nothing of its group may outlive it.
            _signal_group(proc.pid, signal.SIGKILL)
            await _exited(proc)
            await within(asyncio.shield(pump), DRAIN_SECONDS)
            if not pump.done():
                # Something outside the group still holds the pipe open: stop listening to it.
                pump.cancel()
                proc._transport.close()  # no public way to drop the pipes of a finished process
            if self._stopping is not None:
                self._stopping.cancel()
            while proc.returncode is None:  # noqa: ASYNC110 - the child watcher records it just after exit
                await asyncio.sleep(0.01)
        for event in self.scanner.finish():
            await self._report(event)
        return self._result(proc.returncode)

    async def _exited_in_time(self, proc: asyncio.subprocess.Process) -> bool:
        """Wait for the script to exit: False when its timeout ran out first. The clock stands
        still while a gate waits for its answer."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.spec.timeout
        exited = asyncio.ensure_future(_exited(proc))
        try:
            while True:
                self._clock_moved.clear()
                left = None if self._gate_since is not None else self._deadline - loop.time()
                if left is not None and left <= 0:
                    return False
                moved = asyncio.ensure_future(self._clock_moved.wait())
                try:
                    await asyncio.wait({exited, moved}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    moved.cancel()
                if exited.done():
                    return True
        finally:
            exited.cancel()

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        # Secrets are masked before anything sees the output: the stored log and the scanner's
        # steps, error line and tail, which reach Slack. The masker may hold back the end of a read
        # (a secret split across two); it is let out by the next read or after a short while.
        masker = SecretMasker(self.spec.mask)
        loop = asyncio.get_running_loop()
        while True:
            wait = masker.due(loop.time())
            try:
                async with asyncio.timeout(wait):
                    data = await stream.read(READ_SIZE)
            except TimeoutError:  # a quiet script: what is held back goes out anyway
                await self._deliver(masker.release())
                continue
            if not data:
                break
            await self._deliver(masker.feed(data, loop.time()))
        await self._deliver(masker.flush())

    async def _deliver(self, data: bytes) -> None:
        """Output, masked already, to storage and the scanner."""
        if not data:
            return
        await self.events.output(data)
        for event in self.scanner.feed(data):
            await self._report(event)

    async def _report(self, event: Marker) -> None:
        if isinstance(event, CommitReported):
            await self.events.commit(event.sha)
        elif isinstance(event, GateReached):
            if self._gate_fd is None:  # cancelled, or the script is gone: nobody reads an answer
                return
            self._pause()
            await self.events.gate(event.question)
        else:
            await self.events.step(event)

    async def _stop_group(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        if not await within(_exited(proc), self.spec.grace):
            _signal_group(proc.pid, signal.SIGKILL)

    def _result(self, code: int | None) -> RunResult:
        tail = list(self.scanner.tail)
        if self._timed_out:
            outcome = Outcome.TIMEOUT
        elif self._cancel_requested and code != 0:
            outcome = Outcome.CANCELLED
        elif code == 0:
            outcome = Outcome.SUCCESS
        else:
            outcome = Outcome.FAILED
        return RunResult(outcome, code, self.scanner.last_error, tail)


def stop_orphan(pid: int, deploy_id: int) -> bool:
    """Kill the process group of a deploy script whose bot died, if any of it still runs here.

    The script led its own group (pgid = its pid), but it may have exited and left children
    behind. A member of the group must still carry that deploy's DEPLOY_ID in its environment, so
    a recycled pid is never touched. Returns True when a group was killed.
    """
    for member in _group_members(pid):
        try:
            environ = Path(f"/proc/{member}/environ").read_bytes()
        except PermissionError:
            # A script under another account (run_as) whose bot lacks root: its environ cannot be
            # read, so it cannot be told from a recycled pid. Leave it, but say so.
            log.error("deploy #%s: cannot verify pid %d (permission denied): left running", deploy_id, member)
            return False
        except OSError:
            continue
        if f"DEPLOY_ID={deploy_id}".encode() in environ.split(b"\0"):
            _signal_group(pid, signal.SIGKILL)
            return True
    return False


def _group_members(pgid: int) -> list[int]:
    """Pids of the processes in group `pgid` (the leader first, when it is still there)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        # the fields after the command's closing parenthesis: state, ppid, pgrp, …
        fields = stat.rsplit(b") ", 1)[-1].split()
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members, key=lambda member: member != pgid)


def _widen_pipe(stream: asyncio.StreamReader) -> None:
    """Grow the pipe from 64 KiB so reads are large and the script rarely waits on us (Linux)."""
    transport = getattr(stream, "_transport", None)
    fd = transport.get_extra_info("pipe").fileno() if transport else None
    if fd is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Wait for the script itself to exit. Unlike `proc.wait()`, this does not also wait for
    every holder of its output pipe to close it."""
    if proc.returncode is not None:
        return
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (old kernel or not Linux): poll
        while proc.returncode is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is gone already
    except PermissionError:
        # The group runs under another account (run_as) and the bot lost the right to signal it:
        # a cancel or timeout would leave the script running. Never silently.
        log.error(
            "cannot send %s to process group %d: permission denied; the script keeps running "
            "(run_as needs a bot running as root or with CAP_KILL)",
            sig.name,
            pgid,
        )
