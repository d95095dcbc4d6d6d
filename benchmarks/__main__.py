"""`python -m benchmarks [P1 P3 …]`: measure the figures (all by default), print them, write
benchmarks/results.json, results.md and machine.json, and refresh the README's table."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from benchmarks import capture, channelload, cluster, history, slackload, stream
from benchmarks.context import Bench
from benchmarks.machine import machine_facts
from benchmarks.report import ORDER, Result, format_value, load_previous, merge, update_readme, write
from benchmarks.workspace import Workspace
from bot.console.workspace import LocalSlack

Figure = Callable[[Bench], Awaitable[list[Result]]]

FIGURES: dict[str, tuple[str, str, Figure]] = {
    "P1": ("HTTP ack of signed slash commands, 40 concurrent", "p99 ≤ 100 ms", slackload.p1_ack),
    "P2": ("deploy wall time through the bot ÷ bare", "≤ 1.05, byte-identical", capture.p2_overhead),
    "P3": ("log capture throughput", "≥ 100 MB/s SQLite, ≥ 50 MB/s PostgreSQL", capture.p3_throughput),
    "P4": ("bot peak RSS during P3", "≤ 150 MB, growth ≤ 20 MB", capture.p4_memory),
    "P5": ("Slack Web API calls for one 7-step deploy", "≤ 25, ≤ 1 chat.update/s", slackload.p5_slack_calls),
    "P6": ("script line → readable via GET /logs", "p95 ≤ 1 s", capture.p6_follow_delay),
    "P7": ("history page 500 on 1,000,000 rows", "p50 ≤ 10 ms", history.p7_history_page),
    "P8": ("retention on 1,000,000 rows, P1 p99 meanwhile", "p99 ≤ 100 ms", history.p8_retention),
    "P9": ("trigger → first line stored", "p50 ≤ 200 ms", capture.p9_first_line),
    "P10": (
        "failover: the owner of a running deploy is killed (SIGKILL), another process ends the deploy",
        "≤ 15 s with the default lease",
        cluster.p10_failover,
    ),
    "P11": (
        "cancel sent to another process → the script's process group gone",
        "p95 ≤ 1.5 s",
        cluster.p11_cross_cancel,
    ),
    "P12": (
        "100 concurrent triggers over 3 processes (2 serve, 1 worker)",
        "answer p99 ≤ 100 ms, exactly one deploy per environment",
        cluster.p12_concurrent_triggers,
    ),
    "P13": ("script line → its event on the live log stream (SSE)", "p95 ≤ 100 ms", stream.p13_log_stream),
    "P14": (
        "30 deploys at once into one channel, Slack's rate limits enforced",
        "none slower or failed, card final ≤ 10 s after its deploy, 429s < 5 %",
        channelload.p14_busy_channel,
    ),
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("figures", nargs="*", metavar="ID", help=f"figures to measure ({' '.join(ORDER)})")
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/.work/run-* (logs, databases)")
    parser.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    parser.add_argument(
        "--profile", action="store_true", help="sample every bot with py-spy into .work (implies --keep)"
    )
    args = parser.parse_args(argv)
    args.figures = [f.upper() for f in args.figures] or list(ORDER)
    args.keep = args.keep or args.profile
    unknown = [f for f in args.figures if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    return args


async def _run(args: argparse.Namespace) -> list[Result]:
    workspace = Workspace()
    results: list[Result] = []
    try:
        async with LocalSlack() as slack:
            bench = Bench(workspace, slack, profile=args.profile)
            for figure in args.figures:
                title, target, measure = FIGURES[figure]
                print(f"{figure}  {title} (target {target})", flush=True)
                started = time.monotonic()
                try:
                    rows = await measure(bench)
                except Exception as exc:
                    traceback.print_exc()
                    rows = [Result(figure, title, None, "", target, False, f"not measured: {exc!r}"[:300])]
                for row in rows:
                    met = {True: "met", False: "MISSED", None: ""}[row.met]
                    print(f"  => {row.measure}: {format_value(row.value, row.unit)}  {met}", flush=True)
                print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
                results += rows
        machine = await machine_facts(workspace.pg_admin)
    finally:
        await workspace.close(keep_files=args.keep)
    rows = merge(load_previous(), results)
    table = write(rows, machine)
    print("\n" + table)
    if not args.no_readme and {row["id"] for row in rows} >= set(ORDER) and update_readme(rows, machine):
        print("\nREADME.md: benchmark table updated")
    return results


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = _arguments(argv)
    started = time.monotonic()
    asyncio.run(_run(args))
    print(f"\nbenchmarks took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
