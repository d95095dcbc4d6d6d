#!/usr/bin/env bash
# Ignores SIGTERM and leaves a grandchild that ignores it too: only SIGKILL to the group ends both.
trap '' TERM
echo "[1/2] start"
bash -c 'trap "" TERM; echo "child $$"; exec sleep 300' &
echo "leader $$"
while true; do sleep 0.1; done
