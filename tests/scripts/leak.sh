#!/usr/bin/env bash
# A careless deploy script, for the masking tests: prints the secret in $LEAK whole, split across
# two writes (so across two reads of the pipe), in step titles, next to an AWS key id, and in its
# last line (an error, without a newline), then fails.
half=$(( ${#LEAK} / 2 ))
echo "[1/2] log in with $LEAK"
printf 'token: %s' "${LEAK:0:$half}"
sleep 0.03
printf '%s\n' "${LEAK:$half}"
echo "aws AKIAIOSFODNN7EXAMPLE ${LEAK}${LEAK}"
echo "[2/2] push as $LEAK"
printf 'ERROR: registry refused %s' "$LEAK"
exit 4
