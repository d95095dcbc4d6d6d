#!/usr/bin/env bash
# Numbered lines in $STEPS steps of $BATCHES batches of 10 lines, $PACE seconds apart (by default
# five steps over about ten seconds), ending with a line without newline. Each line is also appended
# to $COPY_TO, when set, so a test can compare the stored log with what was printed.
set -eu
steps=${STEPS:-5} batches=${BATCHES:-20} pace=${PACE:-0.1}
out() {
  printf '%s' "$1"
  if [ -n "${COPY_TO:-}" ]; then printf '%s' "$1" >>"$COPY_TO"; fi
}
if [ -n "${REPORT_COMMIT:-}" ]; then out "DEPLOY_COMMIT=$REPORT_COMMIT"$'\n'; fi
for s in $(seq 1 "$steps"); do
  out "[$s/$steps] step $s"$'\n'
  for b in $(seq 1 "$batches"); do
    for i in 0 1 2 3 4 5 6 7 8 9; do
      out "$(printf 'line %d.%04d.%d 部署 %060d' "$s" "$b" "$i" "$b$i")"$'\n'
    done
    sleep "$pace"
  done
done
out "done: $steps steps, no newline at the end"
