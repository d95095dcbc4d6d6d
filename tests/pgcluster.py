"""A throwaway PostgreSQL cluster that a test may stop and start: real outages, not mocks.

The installed server's `initdb` and `pg_ctl` refuse to run as root, so they run as `postgres`
through `runuser`, in a directory of our own under /tmp (pytest's tmp dirs are 0700 to root).
The cluster listens on a free loopback port with trust auth and is removed when closed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import free_port

USER = "postgres"


def server_bin() -> Path | None:
    """The folder of the installed server's programs ($PG_BIN, else PATH, else the newest
    Debian-style /usr/lib/postgresql/N/bin), or None when there is none."""
    candidates = [os.environ.get("PG_BIN", "")]
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def unavailable() -> str | None:
    """Why no cluster can be made here, or None when one can."""
    if os.geteuid() != 0:
        return "a throwaway PostgreSQL cluster needs root (to run initdb as the postgres user)"
    if server_bin() is None:
        return "PostgreSQL server programs (initdb, pg_ctl) are not installed"
    if shutil.which("runuser") is None:
        return "runuser is missing: cannot run initdb as the postgres user"
    return None


class PgCluster:
    def __init__(self) -> None:
        self.bin = server_bin()
        self.root = Path(tempfile.mkdtemp(prefix="deploybot-pg-"))
        self.root.chmod(0o755)  # mkdtemp makes it 0700; the server runs as postgres
        shutil.chown(self.root, USER)
        self.data = self.root / "data"
        self.port = free_port()
        try:
            self._pg("initdb", "-D", self.data, "-U", USER, "-A", "trust", "--no-sync", "-E", "UTF8")
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._pg("pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every connection at once, as a crash or failover would."""
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    USER,
                    "--",
                    self.bin / "pg_ctl",
                    "-D",
                    self.data,
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg(self, program: str, *args: object) -> None:
        argv = ["runuser", "-u", USER, "--", str(self.bin / program), *map(str, args)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr or done.stdout}")


def _version(folder: str) -> int:
    name = Path(folder).parent.name
    return int(name) if name.isdigit() else 0
