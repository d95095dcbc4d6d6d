"""The facts a reader needs to weigh the numbers: CPU, memory, OS, Python, SQLite, PostgreSQL."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.workspace import pg_execute


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "?"


async def machine_facts(pg_admin_url: str) -> dict:
    try:
        postgresql = str(await pg_execute(pg_admin_url, "SHOW server_version")).split()[0]
    except Exception as exc:  # the figures on PostgreSQL will say why they failed
        postgresql = f"unreachable ({type(exc).__name__})"
    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgresql,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
