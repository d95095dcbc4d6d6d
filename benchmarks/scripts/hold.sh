#!/bin/sh
# Holds its environment for $2 seconds (default 600) and leaves its process group id in
# $1/$DEPLOY_ID.pgid for the harness to watch. Started in its own session, its pid is that group's id.
# SIGTERM ends it (and the sleep, which is in the same group) at once.
echo $$ > "$1/$DEPLOY_ID.pgid.tmp" && mv "$1/$DEPLOY_ID.pgid.tmp" "$1/$DEPLOY_ID.pgid"
trap 'exit 143' TERM
sleep "${2:-600}" &
wait
