#!/usr/bin/env python3
"""Write MEGABYTES x 1,000,000 bytes of build-log lines to stdout as fast as possible.

Usage: dump.py MEGABYTES [SECONDS]. With SECONDS the output is spread evenly over that much work
(simulated with sleeps) instead of written at once. The output is the same on every run, so a
bare run to a file is the reference the stored log is compared with. Lines carry hashes and
sizes, as a bundler's do, so the log compresses about as well as a real one.
"""

import os
import sys
import time

LINE = 100
LINES_PER_BLOCK = 10_000  # one block = 1,000,000 bytes
TEMPLATES = 8


def header(number: int) -> bytes:
    return f"==> block {number:06d}".ljust(LINE - 1).encode() + b"\n"


def block(number: int) -> bytes:
    """One megabyte: a header line and 9,999 lines of 100 bytes."""
    lines = [header(number)]
    state = number * 7919 + 1
    for i in range(1, LINES_PER_BLOCK):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        text = (
            f"{number:06d}.{i:04d} INFO  webpack: emitted assets/m{state % 977:03d}/index.{state:08x}.js"
            f" {state % 4096 / 10:.1f} KiB"
        )
        lines.append(text[: LINE - 1].ljust(LINE - 1).encode() + b"\n")
    return b"".join(lines)


def main() -> None:
    megabytes = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    templates: dict[int, bytes] = {}
    out = sys.stdout.fileno()
    start = time.monotonic()
    for n in range(megabytes):
        if n % TEMPLATES not in templates:  # built when first needed, so output starts at once
            templates[n % TEMPLATES] = block(n % TEMPLATES)
        view = memoryview(header(n) + templates[n % TEMPLATES][LINE:])
        while view:
            view = view[os.write(out, view) :]
        if seconds:
            delay = start + seconds * (n + 1) / megabytes - time.monotonic()
            if delay > 0:
                time.sleep(delay)


if __name__ == "__main__":
    main()
