"""`/deploy audit [env] [page]` (DESIGN §9): the audit trail, newest first, one section per entry
saying when, who, what, where (and which deploy), and the detail."""

from __future__ import annotations

from bot.config import Config
from bot.i18n import CATALOGUES, t
from bot.slack.blocks.elements import MAX_BLOCKS, context, header, section
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, code, deployer, env_label, env_title, escape, one_line, stamp
from storage.audit import AuditPage
from storage.models import AuditEvent

PAGE_SIZE = 20  # entries per message: a header, a summary and one section each stay under 50 blocks
MAX_DETAIL = 500


def pages_of(page: AuditPage) -> int:
    return max(1, -(-page.total // page.page_size))


def audit_message(page: AuditPage, config: Config, locale: str, *, environment: str | None) -> Message:
    pages = pages_of(page)
    title = t(locale, "ui.audit.title")
    if environment:
        title += " · " + env_label(config.environments.get(environment), environment)
    blocks = [
        header(title, "audit_title"),
        context(
            t(locale, "ui.audit.summary", total=page.total, page=page.page, pages=pages), "audit_summary"
        ),
    ]
    room = MAX_BLOCKS - len(blocks)
    for number, event in enumerate(page.items[:room], 1):
        blocks.append(section(entry_text(event, config, locale), f"audit_{number}"))
    if not page.items:
        blocks.append(section(t(locale, "ui.audit.empty"), "audit_empty"))
    return Message(t(locale, "ui.audit.text", total=page.total, page=page.page, pages=pages), blocks)


def entry_text(event: AuditEvent, config: Config, locale: str) -> str:
    """`11-28 09:04 · <@U…> · *强制部署* · 生产环境 (`production`) · #42` and the detail below."""
    parts = [stamp(event.at), deployer(event.actor), f"*{action_label(event.action, locale)}*"]
    if event.environment:
        parts.append(env_title(config.environments.get(event.environment), event.environment))
    if event.deploy_id:
        parts.append(f"#{event.deploy_id}")
    text = " · ".join(parts)
    if event.detail:
        text += "\n" + code(clip(one_line(event.detail), MAX_DETAIL))
    return text


def action_label(action: str, locale: str) -> str:
    """The catalogue's word for an action; an action it does not know yet is shown as written."""
    key = f"audit.action.{action}"
    return t(locale, key) if key in CATALOGUES["zh"] else escape(clip(action, 32))
