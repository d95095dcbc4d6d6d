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
    # REST API
    "api.error.unauthorized": "缺少或错误的 API 令牌（Authorization: Bearer <令牌>）",
    "api.error.not_found": "没有这个 API 地址",
    "api.error.method_not_allowed": "该地址不支持这个 HTTP 方法",
    "api.error.too_large": "请求体太大",
    "api.error.http": "请求失败（HTTP {status}）",
    "api.error.internal": "服务器内部错误，操作可能没有完成。请稍后再试",
    "api.body.not_json": "请求体不是有效的 JSON",
    "api.body.not_object": "请求体必须是 JSON 对象",
    "api.field.missing": "缺少 `{field}`",
    "api.field.unknown": "不认识的字段 `{field}`",
    "api.field.integer": "`{field}` 必须是整数",
    "api.field.boolean": "`{field}` 必须是 true 或 false",
    "api.field.string": "`{field}` 必须是字符串",
    "api.field.min": "`{field}` 不能小于 {limit}",
    "api.field.max": "`{field}` 不能大于 {limit}",
    "api.field.characters": "`{field}` 包含不允许的字符",
    "api.field.choice": "`{field}` 只能是 {choices}",
    "api.field.invalid": "`{field}` 无效",
    "api.page_out_of_range": "页码 {page} 超出范围（共 {pages} 页）",
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
    # deploybot console
    "console.banner": "deploybot 控制台 · 身份 {user}（{id}，{role}）· 频道 #{channel}",
    "console.role_admin": "管理员",
    "console.role_guest": "非管理员",
    "console.hint": "输入 /deploy help 查看命令；按钮前的编号直接输入即可按下；help 查看控制台命令",
    "console.help": (
        "/deploy …          发送斜杠命令（与 Slack 中相同）\n"
        "<编号> [y|选项]     按下该编号的按钮（确认框回答 y/n，下拉框选择一项）\n"
        "press <按钮名>      按下最新出现的同名按钮，如 press 回滚\n"
        "home               打开 App 主页\n"
        "wait               等待所有进行中的部署结束\n"
        "http <URL>         GET 一个本机地址并显示返回内容（别名 open）\n"
        "close              关闭打开的弹窗\n"
        "quit               结束（会先等待进行中的部署）\n"
        "弹窗：逐项回答，回车保留默认值；或一行填完：env=staging branch=main skip_build=yes"
    ),
    "console.unknown_line": "无法识别的输入：{line}（输入 help 查看控制台命令）",
    "console.unknown_command": "没有斜杠命令 {command}，只有 /deploy",
    "console.request_failed": "请求失败：HTTP {status}",
    "console.unknown_button": "没有编号为 {n} 的按钮",
    "console.unknown_label": "找不到按钮「{label}」",
    "console.confirm_denied": "已取消，没有执行",
    "console.bad_choice": "无效的选项 `{value}`，可选：{choices}",
    "console.bad_yes_no": "请回答 y 或 n",
    "console.form_hint": "逐项填写（回车保留默认值），或一行填完：{example}；close 关闭弹窗",
    "console.prompt_text": "{label} [{default}] > ",
    "console.prompt_select": "{label} [{default}] ({choices}) > ",
    "console.prompt_checkbox": "{label} [{default}] (y/n) > ",
    "console.unknown_field": "弹窗中没有字段 `{name}`，可用：{fields}",
    "console.no_modal": "没有打开的弹窗",
    "console.modal_closed": "弹窗已关闭",
    "console.slack_error": "⚠ Slack API {method} 失败：{error}",
    "console.message": "消息 {n} · #{channel}",
    "console.reply": "消息 {n} · 回复消息 {parent}",
    "console.broadcast": "（同时发到频道）",
    "console.updated": "↻ 消息 {n} 已更新",
    "console.deleted": "✖ 消息 {n} 已删除",
    "console.ephemeral": "消息 {n} · 仅你可见",
    "console.view_updated": "↻ 已更新",
    "console.file_saved": "📎 文件「{title}」（{size} 字节）已保存到 {path}",
    "console.waiting": "⌛ 等待进行中的部署结束…",
    "console.http_usage": "用法：http <URL>，例如 http 127.0.0.1:8701/version",
    "console.http_loopback_only": "只能访问本机地址（127.0.0.1、localhost、::1）：{url}",
    "console.http_failed": "请求 {url} 失败：{error}",
    "console.http_status": "HTTP {status} · {url}",
    "console.failures": "有 {count} 行输入无法识别",
    "console.optional": "（可选）",
    "console.choices": "可选值",
    "console.app_home": "App 主页",
    "console.dm": "与机器人的私信",
    # /deploy command and Slack listeners
    "cmd.help.open": "打开一键部署窗口",
    "cmd.help.deploy": "立即部署：环境、分支（默认为该环境的默认分支）、可跳过构建或数据库迁移、可附说明",
    "cmd.help.history": "部署历史：可按环境和状态筛选，可翻页",
    "cmd.help.status": "部署状态：指定编号，或每个环境最近的一次",
    "cmd.help.logs": "查看一次部署的日志",
    "cmd.help.cancel": "取消正在进行的部署",
    "cmd.help.rollback": "回滚：重新部署一次成功部署的版本，可附原因",
    "cmd.help.help": "显示本帮助",
    "cmd.error.unknown_word": "未知的子命令或环境 `{word}`。子命令：{commands}；环境：{envs}",
    "cmd.error.unknown_flag": "未知的选项 `{flag}`。可用选项：{flags}",
    "cmd.error.history_twice": "筛选条件重复：`{word}`",
    "cmd.error.bad_page": "页码 `{page}` 无效",
    "cmd.error.history_word": "无法识别的筛选条件 `{word}`。环境：{envs}；状态：{statuses}；或者页码",
    "cmd.error.bad_id": "`{value}` 不是部署编号（例如 42 或 #42）",
    "cmd.error.missing_id": "缺少部署编号",
    "cmd.error.extra_words": "多余的内容：`{words}`",
    "cmd.error.unexpected": "出错了，操作没有完成。请稍后再试",
    "cmd.cancel_requested": "已请求取消部署 #{deploy_id}，脚本停止后部署卡片会显示结果",
    "cmd.channel_unreachable": (
        "部署 #{deploy_id} 已开始，但机器人无法在频道 {channel} 发消息（{error}）。"
        "请先邀请机器人进入该频道（`/invite @deploybot`）；进度可用 `/deploy status {deploy_id}` 查看"
    ),
    "cmd.no_rollback_target": "部署 #{deploy_id} 之前没有可回滚到的成功版本",
    "cmd.no_deploys": "还没有任何部署记录",
    "cmd.history_title": "部署历史",
    "cmd.close": "关闭",
    "cmd.log_file_title": "部署 #{deploy_id} 的完整日志",
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
    "api.error.unauthorized": "Missing or wrong API token (Authorization: Bearer <token>)",
    "api.error.not_found": "No such API endpoint",
    "api.error.method_not_allowed": "This endpoint does not accept that HTTP method",
    "api.error.too_large": "The request body is too large",
    "api.error.http": "The request failed (HTTP {status})",
    "api.error.internal": "Internal server error; the operation may not have completed. Please try again later",
    "api.body.not_json": "The request body is not valid JSON",
    "api.body.not_object": "The request body must be a JSON object",
    "api.field.missing": "`{field}` is required",
    "api.field.unknown": "Unknown field `{field}`",
    "api.field.integer": "`{field}` must be an integer",
    "api.field.boolean": "`{field}` must be true or false",
    "api.field.string": "`{field}` must be a string",
    "api.field.min": "`{field}` must be at least {limit}",
    "api.field.max": "`{field}` must be at most {limit}",
    "api.field.characters": "`{field}` contains characters that are not allowed",
    "api.field.choice": "`{field}` must be one of {choices}",
    "api.field.invalid": "`{field}` is not valid",
    "api.page_out_of_range": "Page {page} is out of range ({pages} pages)",
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
    "console.banner": "deploybot console · acting as {user} ({id}, {role}) · channel #{channel}",
    "console.role_admin": "admin",
    "console.role_guest": "not an admin",
    "console.hint": "Type /deploy help for the commands; type the number before a button to press it; help for console commands",
    "console.help": (
        "/deploy …          send the slash command (as in Slack)\n"
        "<number> [y|option] press the button with that number (y/n for a confirm, an option for a menu)\n"
        "press <label>      press the newest button with that label, e.g. press Roll back\n"
        "home               open App Home\n"
        "wait               wait until no deploy is running\n"
        "http <URL>         GET a loopback URL and print the answer (alias: open)\n"
        "close              close the open modal\n"
        "quit               stop (after waiting for running deploys)\n"
        "Modals: answer field by field, Enter keeps the default; or in one line: env=staging branch=main skip_build=yes"
    ),
    "console.unknown_line": "Cannot understand: {line} (type help for the console commands)",
    "console.unknown_command": "There is no slash command {command}, only /deploy",
    "console.request_failed": "The request failed: HTTP {status}",
    "console.unknown_button": "There is no button numbered {n}",
    "console.unknown_label": "No button labelled “{label}”",
    "console.confirm_denied": "Cancelled, nothing done",
    "console.bad_choice": "Invalid choice `{value}`; choose one of: {choices}",
    "console.bad_yes_no": "Answer y or n",
    "console.form_hint": "Fill it field by field (Enter keeps the default), or in one line: {example}; close closes it",
    "console.prompt_text": "{label} [{default}] > ",
    "console.prompt_select": "{label} [{default}] ({choices}) > ",
    "console.prompt_checkbox": "{label} [{default}] (y/n) > ",
    "console.unknown_field": "The modal has no field `{name}`; fields: {fields}",
    "console.no_modal": "No modal is open",
    "console.modal_closed": "Modal closed",
    "console.slack_error": "⚠ Slack API {method} failed: {error}",
    "console.message": "message {n} · #{channel}",
    "console.reply": "message {n} · reply to message {parent}",
    "console.broadcast": " (also sent to the channel)",
    "console.updated": "↻ message {n} updated",
    "console.deleted": "✖ message {n} deleted",
    "console.ephemeral": "message {n} · only visible to you",
    "console.view_updated": "↻ updated",
    "console.file_saved": "📎 file “{title}” ({size} bytes) saved to {path}",
    "console.waiting": "⌛ Waiting for running deploys to finish…",
    "console.http_usage": "Usage: http <URL>, e.g. http 127.0.0.1:8701/version",
    "console.http_loopback_only": "Only loopback addresses (127.0.0.1, localhost, ::1) can be opened: {url}",
    "console.http_failed": "GET {url} failed: {error}",
    "console.http_status": "HTTP {status} · {url}",
    "console.failures": "{count} input lines could not be understood",
    "console.optional": " (optional)",
    "console.choices": "choices",
    "console.app_home": "App Home",
    "console.dm": "DM with the app",
    "cmd.help.open": "Open the deploy form",
    "cmd.help.deploy": "Deploy now: environment, branch (default: the environment's), optionally skip the build or migrations, optional description",
    "cmd.help.history": "Deploy history, filtered by environment and status, page by page",
    "cmd.help.status": "Status of one deploy, or of the latest deploy of every environment",
    "cmd.help.logs": "Show the log of a deploy",
    "cmd.help.cancel": "Cancel a running deploy",
    "cmd.help.rollback": "Roll back: deploy again the version of a successful deploy, with an optional reason",
    "cmd.help.help": "Show this help",
    "cmd.error.unknown_word": "Unknown sub-command or environment `{word}`. Sub-commands: {commands}; environments: {envs}",
    "cmd.error.unknown_flag": "Unknown option `{flag}`. Options: {flags}",
    "cmd.error.history_twice": "Filter given twice: `{word}`",
    "cmd.error.bad_page": "Invalid page number `{page}`",
    "cmd.error.history_word": "Unknown filter `{word}`. Environments: {envs}; statuses: {statuses}; or a page number",
    "cmd.error.bad_id": "`{value}` is not a deploy id (like 42 or #42)",
    "cmd.error.missing_id": "The deploy id is missing",
    "cmd.error.extra_words": "Unexpected extra words: `{words}`",
    "cmd.error.unexpected": "Something went wrong and the action did not complete. Please try again later",
    "cmd.cancel_requested": "Cancel requested for deploy #{deploy_id}; its card shows the outcome once the script stops",
    "cmd.channel_unreachable": (
        "Deploy #{deploy_id} started, but the bot cannot post in channel {channel} ({error}). "
        "Invite the bot to the channel first (`/invite @deploybot`); follow it with `/deploy status {deploy_id}`"
    ),
    "cmd.no_rollback_target": "There is no earlier successful version to roll back to before deploy #{deploy_id}",
    "cmd.no_deploys": "No deploys yet",
    "cmd.history_title": "Deploy history",
    "cmd.close": "Close",
    "cmd.log_file_title": "Full log of deploy #{deploy_id}",
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
