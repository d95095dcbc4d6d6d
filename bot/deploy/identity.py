"""Who runs a deploy: the `runner_id` of a bot process, and whether that process is provably dead.

A reaper may kill a deploy script only when the process that ran it can no longer be alive: a
process that is merely slow (paused, swapping, its clock ahead) still thinks it owns the script.
Only the same machine since the same boot, in the same pid namespace, can prove that: its pid is
gone, or now belongs to a process that started at another moment (the pid was recycled). Anything
else (another host, another boot, another container's pids, an unreadable /proc) proves nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

_UNKNOWN = "-"  # a part this system cannot tell (no /proc): never equal to anything, so never proof


@dataclass(frozen=True)
class RunnerId:
    host: str
    boot_id: str  # /proc/sys/kernel/random/boot_id: changes at every boot
    pid_ns: str  # the pid namespace: a pid means this process only within it
    pid: int
    started: int  # when the process started, in clock ticks since boot: tells a recycled pid apart
    # Two services in one process (tests, a console next to a server) are two runners: each knows
    # only the deploys it started.
    instance: str

    @classmethod
    def current(cls) -> RunnerId:
        """A new runner id for this process (a new `instance` each call)."""
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            boot_id=_read("/proc/sys/kernel/random/boot_id"),
            pid_ns=_pid_namespace(),
            pid=pid,
            started=_start_time(pid) or 0,
            instance=secrets.token_hex(4),
        )

    @classmethod
    def parse(cls, text: str | None) -> RunnerId | None:
        """The runner id stored as `str(runner)`, or None for anything else (an older bot's row)."""
        parts = (text or "").split("/")
        if len(parts) != 6 or not parts[3].isdigit() or not parts[4].isdigit():
            return None
        host, boot_id, pid_ns, pid, started, instance = parts
        return cls(host, boot_id, pid_ns, int(pid), int(started), instance)

    def __str__(self) -> str:
        # Hostnames hold no "/", nor do the other parts: it splits back unambiguously.
        return f"{self.host}/{self.boot_id}/{self.pid_ns}/{self.pid}/{self.started}/{self.instance}"

    def same_machine(self, other: RunnerId) -> bool:
        """Whether pids of `other` mean the same processes as pids here."""
        return (
            self.host == other.host
            and self.boot_id == other.boot_id != _UNKNOWN
            and self.pid_ns == other.pid_ns != _UNKNOWN
        )


def owner_is_provably_dead(runner: RunnerId | None, here: RunnerId | None = None) -> bool:
    """Whether the process `runner` is certainly gone: same machine, boot and pid namespace as
    `here` (this process, by default), and its pid is gone or belongs to a younger process."""
    if runner is None:
        return False
    here = here or RunnerId.current()
    if not here.same_machine(runner) or runner.pid <= 0:
        return False
    if runner.pid == here.pid:
        return False  # this very process: alive, whichever of its services asks
    try:
        started = _start_time(runner.pid)
    except ProcessLookupError:
        return True  # no such process, or a zombie: it has exited
    # alive under that pid: proof only if it is another process than the owner (a recycled pid)
    return started is not None and runner.started != 0 and started != runner.started


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip() or _UNKNOWN
    except OSError:
        return _UNKNOWN


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").replace("/", "_")
    except OSError:
        return _UNKNOWN


def _start_time(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), or None when /proc does not
    say (hidden from this account). Raises ProcessLookupError when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        try:  # gone, or hidden (/proc mounted with hidepid): a signal 0 tells them apart
            os.kill(pid, 0)
        except PermissionError:
            return None
        raise ProcessLookupError(pid) from None  # os.kill raised it, or the pid is back: say gone
    except OSError:
        return None
    # the fields after the command's closing parenthesis: state (3rd field) ... starttime (22nd)
    fields = stat.rsplit(b") ", 1)[-1].split()
    if fields and fields[0] == b"Z":
        raise ProcessLookupError(pid)
    return int(fields[19]) if len(fields) > 19 else None
