#!/bin/sh
# A banner at once, then the work: the first line must be stored while the script still runs.
echo "deploying $DEPLOY_BRANCH at $DEPLOY_COMMIT"
sleep 1
echo "done"
