"""Approval requests (DESIGN §9): what the approvers see — on the deploy's card and in a DM to each of
them — and what would change: the commits between the live version and the target (at most ten,
then "…and N more"), the compare link, and 批准 / 拒绝. Pure: rows and config in, blocks out."""

from __future__ import annotations

from bot.config import Environment
from bot.deploy.changes import Changes
from bot.i18n import t
from bot.slack.blocks.elements import button, confirm_dialog, context, section
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, code, deployer, env_label, escape, one_line
from storage.models import Deploy

MAX_SUBJECT = 80


def changes_text(changes: Changes | None, locale: str) -> str | None:
    """The commits a deploy brings (or, going back, takes away), one line each."""
    if changes is None or not changes.commits:
        return None
    key = "ui.changes.backwards" if changes.backwards else "ui.changes.forwards"
    lines = [t(locale, key, count=changes.total)]
    for sha, subject in changes.commits:
        lines.append(f"• {code(sha[:7])} {escape(clip(one_line(subject), MAX_SUBJECT))}")
    if changes.more:
        lines.append(t(locale, "ui.changes.more", count=changes.more))
    if changes.compare_url and changes.compare_url.startswith(("https://", "http://")):
        lines.append(f"<{changes.compare_url}|{t(locale, 'ui.changes.compare')}>")
    return "\n".join(lines)


def changes_blocks(changes: Changes | None, locale: str, block_id: str) -> list[dict]:
    text = changes_text(changes, locale)
    return [section(clip(text, 2900), block_id)] if text else []


def approval_blocks(
    deploy: Deploy, env: Environment | None, changes: Changes | None, locale: str
) -> list[dict]:
    """Who must approve, what would change, and 批准 / 拒绝 (on the card and in the DMs)."""
    approvers = env.approvers if env is not None else ()
    who = " ".join(deployer(a) for a in approvers[:10]) if approvers else t(locale, "ui.approval.any_admin")
    blocks = [
        context(
            t(locale, "ui.approval.waiting", requester=deployer(deploy.deployed_by), approvers=who),
            f"approval_{deploy.id}_who",
        )
    ]
    blocks += changes_blocks(changes, locale, f"approval_{deploy.id}_changes")
    reject_text = t(locale, "ui.confirm.reject.text", deploy_id=deploy.id)
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval_{deploy.id}_actions",
            "elements": [
                button(t(locale, "ui.button.approve"), "approve_deploy", deploy.id, style="primary"),
                button(
                    t(locale, "ui.button.reject"),
                    "reject_deploy",
                    deploy.id,
                    style="danger",
                    confirm=confirm_dialog(locale, "reject", reject_text),
                ),
            ],
        }
    )
    return blocks


def approval_request(
    deploy: Deploy, env: Environment | None, changes: Changes | None, locale: str
) -> Message:
    """The DM each approver gets."""
    where = escape(env_label(env, deploy.environment))
    text = t(
        locale,
        "ui.approval.request",
        deploy_id=deploy.id,
        env=where,
        branch=code(clip(deploy.branch, 100)),
        requester=deployer(deploy.deployed_by),
    )
    blocks = [section(clip(text, 2900), f"approval_{deploy.id}_request")]
    if deploy.description:
        blocks.append(context(escape(clip(one_line(deploy.description), 300)), f"approval_{deploy.id}_why"))
    return Message(text, blocks + approval_blocks(deploy, env, changes, locale))
