#!/usr/bin/env bash
echo "[1/2] build"
echo "compiling"
echo "ERROR: compiler exploded" >&2
echo "cleaning up"
exit 3
