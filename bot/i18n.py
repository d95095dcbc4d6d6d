"""Every user-facing string, one catalogue per locale. Chinese is the default.

`t(locale, key, **params)` formats with `str.format`; a key missing in a locale falls back to Chinese.
Both catalogues must hold the same keys with the same placeholders (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LOCALE = "zh"

ZH: dict[str, str] = {
    # errors
    "error.generic": "操作失败",
    "error.invalid_input": "输入无效：{detail}",
    "error.unknown_environment": "未知的部署环境 `{name}`。可用环境：{choices}",
    "error.invalid_branch": "分支名 `{branch}` 无效：{reason}",
    "error.unknown_branch": "在 `{environment}` 的仓库中找不到分支 `{branch}`",
    "error.description_too_long": "部署说明太长（{length} 个字符，最多 {limit} 个）",
    "error.environment_busy": (
        "{environment} 正在部署中：#{deploy_id}（`{branch}`，由 {user} 发起）。"
        "请等待完成，或用 `/deploy cancel {deploy_id}` 取消"
    ),
    "error.deploy_not_found": "找不到部署 #{deploy_id}",
    "error.deploy_finished": "部署 #{deploy_id} 已结束（{status}），无法取消",
    "error.rollback_not_eligible": "不能回滚到 #{deploy_id}：{reason}",
    "error.commit_missing": "提交 `{commit}` 已不在 `{environment}` 的仓库中，无法回滚到 #{deploy_id}",
    "error.repo_unavailable": "无法读取 `{environment}` 的仓库：{detail}",
    "error.not_admin": "只有部署管理员可以执行此操作",
    # reasons
    "reason.branch_empty": "不能为空",
    "reason.branch_too_long": "最长 {limit} 个字符",
    "reason.branch_leading_dash": "不能以 `-` 开头",
    "reason.branch_chars": "包含不允许的字符（空白、控制字符或 ~^:?*[\\ 以及 shell 元字符）",
    "reason.branch_rules": "不符合 git 引用名规则（..、@{{、//、以 . 或 / 开头或结尾、.lock 结尾）",
    "reason.not_success": "该部署的状态是 {status}，只能回滚到成功的部署",
    "reason.no_commit": "该部署没有记录提交",
    "reason.other_environment": "它属于环境 {environment}",
    # deploy outcomes written to error_message
    "outcome.exit_code": "脚本退出码 {code}",
    "outcome.timeout": "超时：部署超过 {minutes} 分钟，已终止",
    "outcome.cancelled": "已被 {user} 取消",
    "outcome.interrupted": "interrupted: 部署期间机器人停止运行",
    "outcome.spawn_failed": "无法启动部署脚本：{detail}",
    "rollback.description": "回滚到 #{deploy_id} ({commit})",
    # status names
    "status.pending": "等待中",
    "status.running": "部署中",
    "status.success": "部署成功",
    "status.failed": "部署失败",
    "status.cancelled": "已取消",
    # retention
    "cleanup.done": "清理完成：清除了 {logs} 个部署的日志，软删除了 {records} 条记录",
}

EN: dict[str, str] = {
    "error.generic": "The operation failed",
    "error.invalid_input": "Invalid input: {detail}",
    "error.unknown_environment": "Unknown environment `{name}`. Available: {choices}",
    "error.invalid_branch": "Invalid branch name `{branch}`: {reason}",
    "error.unknown_branch": "Branch `{branch}` was not found in the repository of `{environment}`",
    "error.description_too_long": "Description is too long ({length} characters, at most {limit})",
    "error.environment_busy": (
        "{environment} is busy with deploy #{deploy_id} (`{branch}`, started by {user}). "
        "Wait for it to finish or cancel it with `/deploy cancel {deploy_id}`"
    ),
    "error.deploy_not_found": "Deploy #{deploy_id} was not found",
    "error.deploy_finished": "Deploy #{deploy_id} has already finished ({status}); nothing to cancel",
    "error.rollback_not_eligible": "Cannot roll back to #{deploy_id}: {reason}",
    "error.commit_missing": (
        "Commit `{commit}` no longer exists in the repository of `{environment}`; "
        "cannot roll back to #{deploy_id}"
    ),
    "error.repo_unavailable": "Cannot read the repository of `{environment}`: {detail}",
    "error.not_admin": "Only deploy admins may do this",
    "reason.branch_empty": "it is empty",
    "reason.branch_too_long": "at most {limit} characters",
    "reason.branch_leading_dash": "it must not start with `-`",
    "reason.branch_chars": "it has characters that are not allowed (whitespace, control, ~^:?*[\\ or shell metacharacters)",
    "reason.branch_rules": "it breaks git's ref name rules (.., @{{, //, leading or trailing . or /, .lock suffix)",
    "reason.not_success": "its status is {status}; only successful deploys can be rolled back to",
    "reason.no_commit": "it has no recorded commit",
    "reason.other_environment": "it belongs to environment {environment}",
    "outcome.exit_code": "script exited with code {code}",
    "outcome.timeout": "timeout: the deploy ran longer than {minutes} minutes and was stopped",
    "outcome.cancelled": "cancelled by {user}",
    "outcome.interrupted": "interrupted: bot stopped during the deploy",
    "outcome.spawn_failed": "could not start the deploy script: {detail}",
    "rollback.description": "Roll back to #{deploy_id} ({commit})",
    "status.pending": "Pending",
    "status.running": "Deploying",
    "status.success": "Succeeded",
    "status.failed": "Failed",
    "status.cancelled": "Cancelled",
    "cleanup.done": "Cleanup done: cleared the logs of {logs} deploys, soft-deleted {records} records",
}

CATALOGUES: dict[str, dict[str, str]] = {"zh": ZH, "en": EN}


@dataclass(frozen=True)
class Text:
    """A catalogue entry not yet rendered: a parameter of another message that must appear in
    whichever locale that message is rendered in."""

    key: str
    params: dict = field(default_factory=dict)

    def render(self, locale: str) -> str:
        return t(locale, self.key, **self.params)


def t(locale: str, key: str, **params: object) -> str:
    catalogue = CATALOGUES.get(locale, ZH)
    template = catalogue.get(key) or ZH[key]
    rendered = {k: v.render(locale) if isinstance(v, Text) else v for k, v in params.items()}
    return template.format(**rendered)
