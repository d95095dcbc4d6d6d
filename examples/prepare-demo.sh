#!/usr/bin/env bash
# Creates the git repo that deploy.sh deploys from: a bare repo STATE_DIR/app.git made from
# examples/demo-app/, with branch `v1` (version 1.0, migration 001 only) and branch `main`
# (version 2.0, one commit later: adds migration 002 and changes the page).
#
# Usage: prepare-demo.sh [STATE_DIR]     (default: <repo root>/.state/demo)
#
# Idempotent: an existing repo is left alone. Commit identity and dates are fixed and the user's
# git config is ignored, so the shas are the same on every machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${1:-$(dirname "$here")/.state/demo}
mkdir -p "$state"
state=$(cd "$state" && pwd)
repo=$state/app.git

# Nothing from the caller's git setup may change the commits (or sign them, or run hooks).
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
git_in() {
  local dir=$1
  shift
  git -C "$dir" -c user.name="deploybot demo" -c user.email=demo@deploybot.invalid \
    -c init.defaultBranch=main -c core.autocrlf=false "$@"
}
commit_at() {
  local date=$1 message=$2
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git_in "$tree" commit -q -m "$message"
}
show() {
  echo "demo repo:  $repo"
  for branch in v1 main; do
    printf '  %-5s %s  version %s\n' "$branch" "$(git --git-dir="$repo" rev-parse "$branch")" \
      "$(git --git-dir="$repo" show "$branch:VERSION")"
  done
  echo "deploy it:  examples/deploy.sh --repo $repo --root $state/production --port 8701"
  echo "stop it:    examples/demo-stop.sh $state/production"
}

if git --git-dir="$repo" rev-parse --verify --quiet v1 >/dev/null 2>&1 &&
  git --git-dir="$repo" rev-parse --verify --quiet main >/dev/null 2>&1; then
  echo "already prepared, nothing to do"
  show
  exit 0
fi
if [[ -e $repo ]]; then
  echo "ERROR: $repo exists but is not the demo repo (no v1/main branches); remove it and re-run" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
cp -R "$here/demo-app" "$tree"
rm -rf "$tree/__pycache__"
# The same file modes everywhere (whatever the umask or checkout), so the same trees and shas.
find "$tree" -type d -exec chmod 755 {} +
find "$tree" -type f -exec chmod 644 {} +
mkdir "$tmp/v2"
cp -R "$tree/." "$tmp/v2"

# 1.0 is the same app without what 2.0 added.
printf '1.0\n' >"$tree/VERSION"
rm "$tree/migrations/002_add_column.sql"
sed -i '/<!-- since 2.0 -->/,/<!-- \/since 2.0 -->/d' "$tree/frontend/index.html.in"
git_in "$tree" init -q
git_in "$tree" add -A
commit_at "2024-01-15T10:00:00+08:00" "demo-app 1.0"
git_in "$tree" branch v1

cp -R "$tmp/v2/." "$tree"
git_in "$tree" add -A
commit_at "2024-02-01T10:00:00+08:00" "demo-app 2.0: record the browser of each visit"

git init -q --bare -b main "$tmp/app.git"
git_in "$tree" push -q "$tmp/app.git" main v1
# Built aside and moved in whole, so an interrupted run never leaves a half-made repo behind.
mv "$tmp/app.git" "$repo"
show
