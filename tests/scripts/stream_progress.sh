#!/usr/bin/env bash
# Known bytes, in several stored pieces, for the log-stream test: Chinese and an emoji each cut in
# two by a pause, `\r` progress bars, backslashes, a CRLF and a secret (STREAM_SECRET) to be masked.
set -eu
pause="${PAUSE_SECONDS:-0.3}"
sleep "$pause"
printf '[1/3] 部署开始 🚀\n'
for p in 10 50 100; do
  printf '\rprogress %3d%% [%s]' "$p" "=="
  sleep 0.05
done
printf '\n[2/3] half a character: \xe4\xb8'
sleep "$pause"
printf '\xad done\r\n'
printf 'token=%s back\\slash and a literal \\r\n' "${STREAM_SECRET:-none}"
printf '[3/3] emoji \xf0\x9f\x9a'
sleep "$pause"
printf '\x80 end without newline'
