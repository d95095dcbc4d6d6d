#!/usr/bin/env python3
"""Print COUNT lines `tick <n> <unix time>` at random moments MIN..MAX seconds apart, each flushed
at once, so a follower can tell how long each line took to reach it. Usage: ticks.py COUNT MIN MAX"""

import random
import sys
import time

count, low, high = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
for n in range(count):
    time.sleep(random.uniform(low, high))
    sys.stdout.write(f"tick {n} {time.time():.6f}\n")
    sys.stdout.flush()
