#!/usr/bin/env bash
# Deploys the demo app in the seven steps of the CRM page's deploy scripts: build front end,
# package, upload, unpack, database migration, restart, health check. All of it is real but
# local: release folders under ROOT, an atomic `current` symlink, a real process restarted and
# health-checked, so deploying an older commit (a rollback) really brings the old version back.
#
# Usage: deploy.sh [--repo PATH] [--root DIR] [--port N] [--canary]
#   --repo    bare git repo of the app      (default <repo root>/.state/demo/app.git, see prepare-demo.sh)
#   --root    releases, database, live app  (default <repo root>/.state/demo/$DEPLOY_ENVIRONMENT)
#   --port    port of the app on 127.0.0.1  (default 8701)
#   --canary  eight steps: after the migration the new release first runs as a canary on port
#             N+1000 beside the live app, and the script asks the bot (a gate, DESIGN.md §9)
#             "金丝雀 10% 正常，继续全量发布？" before it restarts the live app; `abort` (or no
#             answer) stops the canary and leaves the live version as it was
#
# Input is the bot's environment (DESIGN.md §3): DEPLOY_ID, DEPLOY_COMMIT (else DEPLOY_BRANCH is
# resolved), SKIP_BUILD, SKIP_MIGRATIONS, ... DEMO_STEP_DELAY (seconds, default 0.3) pauses after
# each step so the progress bar can be watched moving.
#
# Under ROOT: work/<id>/ (build, tarball), uploads/, releases/<id>-<short sha>/, current -> the live
# release, shared/app.sqlite3, app.pid, app.log. The last 5 releases and uploads are kept.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=$(dirname "$here")/.state/demo
repo=$state/app.git
root=$state/${DEPLOY_ENVIRONMENT:-production}
port=8701
keep=5
delay=${DEMO_STEP_DELAY:-0.3}
canary=0
canary_root=
total=7

step_no=0
step_title=准备
reported=

fail() {
  echo "ERROR: $*" >&2
  reported=1
  exit 1
}
# set -e can stop the script anywhere; make sure the bot still gets an ERROR line naming the step.
on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -z $reported ]]; then
    echo "ERROR: 步骤 $step_no/$total $step_title 失败 (exit $rc)" >&2
  fi
  # the canary runs detached (setsid): it must not outlive an aborted or failed deploy
  if [[ -n $canary_root ]]; then "$here/demo-stop.sh" "$canary_root" >/dev/null 2>&1 || true; fi
}
trap on_exit EXIT

step() {
  step_no=$1
  step_title=$2
  echo "[$step_no/$total] $step_title"
}
pause() { sleep "$delay"; }

while (($#)); do
  [[ $1 != --* || $1 == --help || $1 == --canary || $# -ge 2 ]] || fail "$1 needs a value"
  case $1 in
    --canary)
      canary=1
      total=8
      shift
      continue
      ;;
    --repo) repo=${2-} ;;
    --root) root=${2-} ;;
    --port) port=${2-} ;;
    -h | --help)
      sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) fail "unknown argument: $1 (usage: deploy.sh [--repo PATH] [--root DIR] [--port N] [--canary])" ;;
  esac
  shift 2
done

[[ $port =~ ^[0-9]+$ ]] || fail "--port must be a number, not '$port'"
[[ $delay =~ ^[0-9]*\.?[0-9]+$ ]] || fail "DEMO_STEP_DELAY must be a number of seconds, not '$delay'"
[[ -d $repo ]] || fail "git repo $repo not found (run examples/prepare-demo.sh first)"
repo=$(cd "$repo" && pwd)
mkdir -p "$root"
root=$(cd "$root" && pwd)
deploy_id=${DEPLOY_ID:-manual-$(date +%Y%m%d%H%M%S)}
[[ $deploy_id =~ ^[A-Za-z0-9._-]+$ ]] || fail "DEPLOY_ID '$deploy_id' is not usable in a folder name"

# The bot pins the commit; run by hand, resolve the branch here. Either way report the full sha.
want=${DEPLOY_COMMIT:-${DEPLOY_BRANCH:-main}}
[[ $want != -* ]] || fail "commit '$want' 无效"
commit=$(git --git-dir="$repo" rev-parse --verify --quiet "$want^{commit}") ||
  fail "commit '$want' 不在仓库 $repo 中"
short=${commit:0:7}
echo "DEPLOY_COMMIT=$commit"
echo "部署 #$deploy_id: ${DEPLOY_ENVIRONMENT:-production} ${DEPLOY_BRANCH:-?} @ $short by ${DEPLOY_USER:-$(id -un)}${DEPLOY_ROLLBACK_OF:+ (回滚到 #$DEPLOY_ROLLBACK_OF)}"

work=$root/work/$deploy_id
build=$work/build
release_name=$deploy_id-$short
release=$root/releases/$release_name
rm -rf "$work"
mkdir -p "$build" "$root/uploads" "$root/releases" "$root/shared"

# healthy PORT COMMIT PID: the app on PORT answers /health with COMMIT while PID runs
healthy() {
  python3 - "$1" "$2" "$3" "${HEALTH_TIMEOUT:-15}" <<'PY'
import json
import sys
import time
import urllib.request

port, want, pid, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
url = f"http://127.0.0.1:{port}/health"
# Straight to the app: an http_proxy in the environment must not answer for it.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def running() -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


deadline = time.monotonic() + timeout
last = "no answer"
while time.monotonic() < deadline:
    if not running():
        print(f"demo-app (pid {pid}) exited; last answer on {url}: {last}")
        sys.exit(1)
    try:
        with opener.open(url, timeout=1) as resp:
            answer = json.load(resp)
        if answer.get("commit") == want:
            print(f"GET {url} -> {json.dumps(answer)}")
            sys.exit(0)
        last = f"commit {answer.get('commit')}, expected {want}"
    except (OSError, ValueError) as exc:
        last = str(exc)
    time.sleep(0.1)
print(f"no healthy answer from {url} within {timeout:g}s; last: {last}")
sys.exit(1)
PY
}

step 1 构建前端
git --git-dir="$repo" archive --format=tar "$commit" | tar -x -C "$build"
echo "导出 $short 的源码到 $build ($(find "$build" -type f | wc -l) 个文件)"
version=$(tr -d '[:space:]' <"$build/VERSION")
[[ $version =~ ^[A-Za-z0-9.+-]+$ ]] || fail "$short 的 VERSION 文件无效: '$version'"
printf '%s\n' "$commit" >"$build/COMMIT"
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  echo "跳过构建 (SKIP_BUILD=1)"
  if [[ -d $root/current/static ]]; then
    cp -R "$root/current/static" "$build/static"
    echo "复用当前版本 $(readlink "$root/current") 的 static/"
  else
    echo "当前没有可复用的 static/，页面将显示纯文本"
  fi
else
  mkdir -p "$build/static"
  sed "s/@VERSION@/$version/g" "$build/frontend/index.html.in" >"$build/static/index.html"
  echo "frontend/index.html.in -> static/index.html (version $version, $(wc -c <"$build/static/index.html") bytes)"
fi
pause

step 2 打包
tarball=$work/release.tar.gz
tar -czf "$tarball" -C "$build" .
echo "$tarball: $(wc -c <"$tarball") bytes, $(tar -tzf "$tarball" | wc -l) entries"
pause

step 3 上传
upload=$root/uploads/$release_name.tar.gz
cp "$tarball" "$upload"
# Compare checksums as a real upload would: a truncated copy must not be unpacked.
sum=$(sha256sum <"$tarball" | cut -d' ' -f1)
[[ $(sha256sum <"$upload" | cut -d' ' -f1) == "$sum" ]] || fail "上传的 $upload 校验失败"
echo "$upload (sha256 ${sum:0:16}…)"
pause

step 4 解压
rm -rf "$release"
mkdir -p "$release"
tar -xzf "$upload" -C "$release"
# tar restores the archived mtime of `.`; releases are pruned by age, so date it now.
touch "$release"
echo "解压到 $release"
echo "版本 $(<"$release/VERSION"), commit $(<"$release/COMMIT")"
pause

step 5 数据库迁移
db=$root/shared/app.sqlite3
if [[ ${SKIP_MIGRATIONS:-0} == 1 ]]; then
  echo "跳过数据库迁移 (SKIP_MIGRATIONS=1)，$db 不变"
else
  python3 - "$db" "$release/migrations" <<'PY'
import sqlite3
import sys
from pathlib import Path

db_path, folder = sys.argv[1], Path(sys.argv[2])
db = sqlite3.connect(db_path, isolation_level=None)
db.execute(
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
applied = {name for (name,) in db.execute("SELECT name FROM schema_migrations")}
pending = [path for path in sorted(folder.glob("*.sql")) if path.name not in applied]
print(f"{db_path}: 已应用 {len(applied)} 个迁移，待执行 {len(pending)} 个")
for path in pending:
    # One transaction per file (SQLite DDL is transactional): a failed migration leaves no trace.
    name = path.name.replace("'", "''")
    script = f"BEGIN;\n{path.read_text()}\n;INSERT INTO schema_migrations (name) VALUES ('{name}');\nCOMMIT;"
    try:
        db.executescript(script)
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        print(f"ERROR: migration {path.name} failed: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"已应用 {path.name}")
PY
fi
pause

if ((canary)); then
  step 6 "金丝雀 10%"
  canary_root=$root/canary
  canary_port=$((port + 1000))
  mkdir -p "$canary_root"
  "$here/demo-stop.sh" "$canary_root" >/dev/null
  setsid python3 "$release/app.py" --port "$canary_port" --release-dir "$release" \
    >>"$canary_root/app.log" 2>&1 </dev/null &
  echo "$!" >"$canary_root/app.pid"
  echo "金丝雀: $version ($short) 运行在 http://127.0.0.1:$canary_port/ (pid $!)，承接 10% 流量"
  healthy "$canary_port" "$commit" "$!" || fail "金丝雀健康检查失败: http://127.0.0.1:$canary_port/health"
  if [[ -n ${DEPLOY_GATE_FD:-} ]]; then
    # The bot shows the question with 继续 / 中止 and writes the answer, one line, into this pipe;
    # end of file (the deploy was cancelled, the bot stopped) reads as abort.
    echo "::gate:: 金丝雀 10% 正常，继续全量发布？"
    answer=abort
    read -r answer <&"$DEPLOY_GATE_FD" || answer=abort
  else
    answer=continue
    echo "没有 DEPLOY_GATE_FD（不是由 deploybot 运行）：不询问，直接全量发布"
  fi
  "$here/demo-stop.sh" "$canary_root" >/dev/null
  canary_root=
  [[ $answer == continue ]] || fail "金丝雀之后中止了全量发布 ($answer)；线上版本不变: $(readlink "$root/current" 2>/dev/null || echo 无)"
  echo "继续全量发布"
  pause
fi

step $((total - 1)) 重启服务
previous=$(readlink "$root/current" 2>/dev/null || echo 无)
# A relative link, so ROOT can be moved; mv -T renames over the old link in one step, so
# `current` always points at a complete release.
ln -sfn "releases/$release_name" "$root/.current.tmp"
mv -T "$root/.current.tmp" "$root/current"
echo "current: $previous -> releases/$release_name"
"$here/demo-stop.sh" "$root"
# setsid: the bot kills the script's process group when the script ends; the app must outlive it.
setsid python3 "$root/current/app.py" --port "$port" --release-dir "$root/current" \
  >>"$root/app.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$root/app.pid"
echo "已启动 demo-app (pid $pid, port $port, 日志 $root/app.log)"
pause

step $((total)) 健康检查
if ! healthy "$port" "$commit" "$pid"; then
  tail -n 5 "$root/app.log" 2>/dev/null | sed 's/^/app.log: /'
  fail "健康检查失败: http://127.0.0.1:$port/health 没有返回 commit $short"
fi

# Only a healthy deploy prunes: until then the older releases are what a rollback needs.
prune() {
  local dir=$1 live name
  live=$(readlink -f "$root/current")
  # Names are ours ([A-Za-z0-9._-]), so listing by age with ls is safe here.
  # shellcheck disable=SC2012
  ls -1t "$dir" | tail -n +$((keep + 1)) | while read -r name; do
    [[ $dir/$name -ef $live ]] && continue
    rm -rf "${dir:?}/$name"
    echo "清理旧的 $(basename "$dir")/$name"
  done
}
prune "$root/releases"
prune "$root/uploads"
rm -rf "$work"
echo "部署完成: demo-app $version ($short) 运行在 http://127.0.0.1:$port/"
