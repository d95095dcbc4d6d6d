"""The modals: 一键部署 (environment, branch, description, skip options), the rollback modal that
names the target version and asks for an optional reason, and the log modal (the tail of a log,
with 刷新).
"""

from __future__ import annotations

import json

from bot.config import Config, Environment
from bot.deploy.changes import Changes
from bot.i18n import t
from bot.slack.blocks.approval import changes_blocks
from bot.slack.blocks.card import step_label
from bot.slack.blocks.elements import MAX_OPTIONS, MAX_SECTION, button, context, option, plain_text, section
from bot.slack.blocks.logs import log_sections
from bot.slack.blocks.mrkdwn import (
    EMOJI,
    clip,
    code,
    commit,
    deployer,
    env_title,
    inline_code_text,
    stamp,
)
from storage.models import Deploy

MAX_INPUT = 2000  # longest description or reason the service accepts
MAX_BRANCH = 255
LOG_MODAL_SECTIONS = 8


def log_modal(
    deploy: Deploy, env: Environment | None, log_text: str, locale: str, *, truncated: bool
) -> dict:
    """The tail of a log (newest lines kept), with 刷新. `truncated`: `log_text` is itself only
    the end of the log."""
    blocks = [section(_log_head(deploy, env, locale), "log_head")]
    sections, omitted = log_sections(log_text.splitlines(), LOG_MODAL_SECTIONS, locale, note=False)
    if deploy.logs_cleared_at is not None and not log_text:
        blocks.append(context(t(locale, "ui.log.cleared", time=stamp(deploy.logs_cleared_at)), "log_note"))
    elif not sections:
        blocks.append(context(t(locale, "ui.log.empty"), "log_note"))
    elif truncated or omitted:
        blocks.append(context(t(locale, "ui.log.earlier"), "log_note"))
    blocks += [section(text, f"log_tail_{index}") for index, text in enumerate(sections, 1)]
    refresh = button(t(locale, "ui.button.refresh"), "refresh_logs", deploy.id)
    blocks.append({"type": "actions", "block_id": "log_actions", "elements": [refresh]})
    return _modal(
        "deploy_logs",
        t(locale, "ui.log.title", deploy_id=deploy.id),
        blocks,
        close=t(locale, "ui.modal.close"),
        metadata=json.dumps({"deploy_id": deploy.id}),
    )


def _log_head(deploy: Deploy, env: Environment | None, locale: str) -> str:
    parts = [
        f"*#{deploy.id}*",
        f"{EMOJI[deploy.state]} {t(locale, f'status.{deploy.state.value}')}",
        env_title(env, deploy.environment),
        code(deploy.branch),
    ]
    if deploy.commit_hash:
        parts.append(commit(deploy, env, locale))
    if deploy.rollback_of:
        parts.append(t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of))
    if step := step_label(deploy, locale):
        parts.append(step)
    return clip(" · ".join(parts), MAX_SECTION)


def rollback_modal(
    target: Deploy,
    env: Environment | None,
    locale: str,
    *,
    metadata: str,
    undo: Deploy | None = None,
    changes: Changes | None = None,
) -> dict:
    """Asks for an optional reason and names exactly what will be deployed again, and what it would
    change (the commits it takes away from the live version)."""
    lines = [
        t(
            locale,
            "ui.rollback_modal.target",
            env=env_title(env, target.environment),
            deploy_id=target.id,
            commit=commit(target, env, locale),
            branch=inline_code_text(clip(target.branch, 200)),
            user=deployer(target.deployed_by),
            time=stamp(target.completed_at or target.created_at),
        )
    ]
    if undo is not None:
        lines.append(t(locale, "ui.rollback_modal.undo", deploy_id=undo.id, commit=commit(undo, env, locale)))
    lines.append(t(locale, "ui.rollback_modal.note"))
    blocks = [
        section(clip("\n".join(lines), MAX_SECTION), "rollback_target"),
        *changes_blocks(changes, locale, "rollback_changes"),
        _text_input(
            "reason", "reason_input", t(locale, "ui.rollback_modal.reason"), multiline=True, optional=True
        )
        | {
            "hint": plain_text(
                t(locale, "ui.rollback_modal.reason_hint", deploy_id=target.id, commit=target.short_commit)
            )
        },
    ]
    return _modal(
        "rollback_modal",
        t(locale, "ui.rollback_modal.title"),
        blocks,
        submit=t(locale, "ui.rollback_modal.submit"),
        close=t(locale, "ui.modal.cancel"),
        metadata=metadata,
    )


def deploy_modal(
    config: Config, locale: str, *, metadata: str, environment: str | None = None, branch: str | None = None
) -> dict:
    """一键部署: environment (default: `environment`, else the default one), branch (default: that
    environment's default branch), description, skip options."""
    chosen = (config.environment(environment) if environment else None) or config.default_environment
    options = [option(env.display, env.name) for env in list(config.environments.values())[:MAX_OPTIONS]]
    env_select = {
        "type": "static_select",
        "action_id": "env_select",
        "placeholder": plain_text(t(locale, "ui.deploy_modal.env_placeholder")),
        "initial_option": option(chosen.display, chosen.name),
        "options": options,
    }
    skip = [option(t(locale, f"ui.option.{name}"), name) for name in ("skip_build", "skip_migrations")]
    blocks = [
        # Choosing another environment is sent at once (dispatch_action), and the modal comes back
        # with that environment's default branch. The branch field's action_id names the
        # environment: Slack keeps what was typed into an input only while its ids stay the same.
        _input("env", t(locale, "ui.deploy_modal.env"), env_select) | {"dispatch_action": True},
        _text_input(
            "branch",
            f"branch_input:{chosen.name}",
            t(locale, "ui.deploy_modal.branch"),
            initial=branch or chosen.default_branch,
        ),
        _text_input(
            "description",
            "description_input",
            t(locale, "ui.deploy_modal.description"),
            multiline=True,
            optional=True,
        ),
        _input(
            "options",
            t(locale, "ui.deploy_modal.options"),
            {"type": "checkboxes", "action_id": "options_checkboxes", "options": skip},
            optional=True,
        ),
    ]
    view = _modal(
        "deploy_modal",
        t(locale, "ui.deploy_modal.title"),
        blocks,
        submit=t(locale, "ui.deploy_modal.submit"),
        close=t(locale, "ui.modal.cancel"),
        metadata=metadata,
    )
    return view | {"notify_on_close": True}


def _modal(
    callback_id: str, title: str, blocks: list[dict], *, metadata: str, close: str, submit: str | None = None
) -> dict:
    view = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain_text(clip(title, 24)),
        "close": plain_text(clip(close, 24)),
        "blocks": blocks,
        "private_metadata": metadata,
    }
    if submit:
        view["submit"] = plain_text(clip(submit, 24))
    return view


def _input(block_id: str, label: str, element: dict, *, optional: bool = False) -> dict:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain_text(label),
        "optional": optional,
        "element": element,
    }


def _text_input(
    block_id: str,
    action_id: str,
    label: str,
    *,
    initial: str | None = None,
    multiline: bool = False,
    optional: bool = False,
) -> dict:
    element: dict = {"type": "plain_text_input", "action_id": action_id}
    if initial:
        element["initial_value"] = initial[:MAX_BRANCH]
    if multiline:
        element["multiline"] = True
    element["max_length"] = MAX_INPUT if multiline else MAX_BRANCH
    return _input(block_id, label, element, optional=optional)
