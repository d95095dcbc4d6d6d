#!/usr/bin/env python3
"""Seven `[N/7]` steps over about SECONDS each, printing MEGABYTES of log in all (0: a few lines a
step). Usage: steps.py MEGABYTES SECONDS"""

import os
import sys
import time

TITLES = ("build front end", "package", "upload", "unpack", "database migration", "restart", "health check")
LINE = 100


def write(out: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]


def main() -> None:
    megabytes, seconds = float(sys.argv[1]), float(sys.argv[2])
    out = sys.stdout.fileno()
    per_step = int(megabytes * 1_000_000 / len(TITLES) / LINE)  # lines of output per step
    for number, title in enumerate(TITLES, 1):
        write(out, f"[{number}/7] {title}\n".encode())
        begin = time.monotonic()
        write(out, f"  {title}: starting\n".encode())
        for part in range(10):  # the step's output comes out as it works
            lines = per_step // 10
            body = "".join(
                f"  {title} {number}.{part}.{i:06d} ok".ljust(LINE - 1) + "\n" for i in range(lines)
            )
            write(out, body.encode())
            time.sleep(max(0.0, begin + seconds * (part + 1) / 10 - time.monotonic()))
        write(out, f"  {title}: done\n".encode())


if __name__ == "__main__":
    main()
