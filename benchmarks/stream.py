"""P13: the live log stream. A script prints a timestamped line every 100 ms; a client follows the
deploy through `GET /logs/{id}/stream` (Server-Sent Events) on the process that runs it and notes
when each line's event arrives. On each database, in a fresh `deploybot serve`."""

from __future__ import annotations

import time

import aiohttp

from benchmarks.botprocess import API_TOKEN
from benchmarks.context import DATABASES, DB_LABEL, Bench
from benchmarks.report import Result, percentile
from benchmarks.workspace import script

LINES = 100
EVERY = "0.1"


async def follow(url: str) -> list[float]:
    """Delay of every `tick` line from its printing to its event, read as SSE data fields."""
    delays: list[float] = []
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=120, sock_read=30)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url, headers=headers) as response:
        partial = ""  # a line printed in two stored pieces
        async for raw in response.content:
            seen = time.time()
            line = raw.decode().rstrip("\n")
            if line.startswith("event: end"):
                break
            if not line.startswith("data: "):
                partial = "" if not line else partial
                continue
            partial += line[6:]
            if partial.startswith("tick ") and len(partial.split()) == 3:
                delays.append(seen - float(partial.split()[2]))
                partial = ""
    return delays


async def p13_log_stream(bench: Bench) -> list[Result]:
    results = []
    envs = {"ticks": {"script": script("ticks.py"), "args": [str(LINES), EVERY, EVERY]}}
    for db in DATABASES:
        async with bench.bot(db, envs) as bot:
            deploy = await bot.trigger("ticks")
            delays = await follow(f"{bot.url}/api/v1/deploy/logs/{deploy['id']}/stream")
            await bot.wait_finished(deploy["id"])
        p50, p95 = percentile(delays, 50) * 1000, percentile(delays, 95) * 1000
        bench.say(f"P13 {DB_LABEL[db]}: {len(delays)} lines, p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        results.append(
            Result("P13", f"script prints a line → its SSE event received, p95 ({len(delays)} lines, "
                   f"{DB_LABEL[db]}, stream on the running process)", round(p95, 1), "ms", "≤ 100 ms",
                   len(delays) == LINES and p95 <= 100)
        )  # fmt: skip
    return results
