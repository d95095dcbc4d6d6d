#!/usr/bin/env bash
# Writes its pid to $PID_FILE and waits; with TICK set, prints a line every 0.2 s meanwhile.
echo "$$" > "${PID_FILE:?}"
echo "[1/2] waiting (pid $$)"
while :; do
  sleep 0.2
  if [ -n "${TICK:-}" ]; then echo "tick"; fi
done
