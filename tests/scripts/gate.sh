#!/usr/bin/env bash
# A canary step, then N gates (the first argument, else $GATES, else 1), each answered on
# $DEPLOY_GATE_FD: anything but `continue` (EOF included) stops the deploy with an error.
set -u
gates=${1:-${GATES:-1}}
echo "[1/2] canary (pid $$)"
for ((i = 1; i <= gates; i++)); do
  echo "::gate:: ${GATE_QUESTION:-canary at 10% looks fine, go on?} ($i)"
  answer=abort
  read -r answer <&"$DEPLOY_GATE_FD" || answer=abort
  echo "answer $i: $answer"
  if [[ $answer != continue ]]; then
    echo "ERROR: stopped at gate $i ($answer)"
    exit 3
  fi
done
echo "[2/2] everyone"
echo "done"
