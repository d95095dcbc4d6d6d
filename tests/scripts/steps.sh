#!/usr/bin/env bash
# Seven steps like the example scripts, fast. STEP_SLEEP slows each step down.
set -eu
for i in 1 2 3 4 5 6 7; do
  echo "[$i/7] step $i"
  echo "working on step $i for $DEPLOY_ENVIRONMENT"
  sleep "${STEP_SLEEP:-0}"
done
echo "deployed $DEPLOY_BRANCH at $DEPLOY_COMMIT by $DEPLOY_USER skip_build=$SKIP_BUILD skip_migrations=$SKIP_MIGRATIONS rollback_of=$DEPLOY_ROLLBACK_OF"
