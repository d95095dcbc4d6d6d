#!/usr/bin/env bash
# A careless deploy script, for the masking tests: prints the secret in $LEAK whole, split across
# two writes, in step titles, next to an AWS key id, and in its last line (an error, without a
# newline), then fails. (Splits at every position across reads, and the 100 ms hold, are covered by
# the masker's unit tests with a controlled clock; a sleep here would make this test depend on load.)
half=$(( ${#LEAK} / 2 ))
echo "[1/2] log in with $LEAK"
printf 'token: %s' "${LEAK:0:$half}"
printf '%s\n' "${LEAK:$half}"
echo "aws AKIAIOSFODNN7EXAMPLE ${LEAK}${LEAK}"
echo "[2/2] push as $LEAK"
printf 'ERROR: registry refused %s' "$LEAK"
exit 4
