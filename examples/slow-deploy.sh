#!/usr/bin/env bash
# A deploy that takes its time, for trying cancel and timeout: five steps, SLOW_STEP_SECONDS
# (default 2) each. Changes nothing.
#
# Usage: slow-deploy.sh      (input: the bot's DEPLOY_* environment, all optional)
set -euo pipefail

seconds=${SLOW_STEP_SECONDS:-2}
# Cancel sends SIGTERM to the whole process group: say so in the log, so the cut-off is explained.
trap 'echo "收到 SIGTERM，部署中止"; exit 143' TERM

echo "慢速部署 #${DEPLOY_ID:-?}: ${DEPLOY_ENVIRONMENT:-?} ${DEPLOY_BRANCH:-?} (每步 ${seconds}s)"
titles=(准备 构建 上传 重启 检查)
for i in "${!titles[@]}"; do
  echo "[$((i + 1))/5] ${titles[i]}"
  echo "  ${titles[i]}中…"
  sleep "$seconds"
done
echo "完成 (什么也没改)"
