#!/usr/bin/env bash
# Stops the demo app that deploy.sh started under each ROOT (found through ROOT/app.pid).
#
# Usage: demo-stop.sh [ROOT...]     (default: every root under <repo root>/.state/demo)
#
# SIGTERM, then SIGKILL after 5 s. A pid file whose process is gone, or is no longer our app
# (the pid was reused), is just removed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# == 0)); then
  shopt -s nullglob
  for pidfile in "$(dirname "$here")"/.state/demo/*/app.pid; do
    set -- "$@" "$(dirname "$pidfile")"
  done
  (($#)) || { echo "没有运行中的 demo-app"; exit 0; }
fi

# A zombie counts as gone: where nothing reaps orphans it lingers, but it is no longer running.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}
is_demo_app() {
  alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'app\.py'
}

for root in "$@"; do
  root=${root%/}
  pidfile=$root/app.pid
  if [[ ! -f $pidfile ]]; then
    echo "$root: demo-app 未运行"
    continue
  fi
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && is_demo_app "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in {1..100}; do
      alive "$pid" || break
      sleep 0.05
    done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in {1..10}; do alive "$pid" && sleep 0.1; done
      echo "$root: demo-app (pid $pid) 5 秒内未退出，已 SIGKILL"
    else
      echo "$root: 已停止 demo-app (pid $pid)"
    fi
  else
    echo "$root: demo-app (pid $pid) 已不在运行"
  fi
  rm -f "$pidfile"
done
