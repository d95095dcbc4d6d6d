#!/usr/bin/env bash
echo "[1/3] waiting (pid $$)"
sleep "${SLEEP_SECONDS:-300}"
echo "[2/3] done waiting"
