"""A gate in Slack (DESIGN §9): the question a running deploy waits at, with 继续 / 中止, on its card
and in its thread; then who answered what, in the thread.

A button's value names its deploy and its gate (`<deploy id>:<microseconds the gate was asked at>`),
so a button left from an earlier question of the same deploy never answers the next one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.config import Environment
from bot.deploy.events import GateAnswered, GateAsked
from bot.i18n import t
from bot.slack.blocks.elements import MAX_TEXT, button, confirm_dialog, context, section
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, deployer, escape, one_line
from storage.models import Deploy, Status

CONTINUE_ACTION = "gate_continue"
ABORT_ACTION = "gate_abort"
ANSWER_OF = {CONTINUE_ACTION: "continue", ABORT_ACTION: "abort"}
TIMEOUT = "timeout"  # who "answered" a gate nobody answered in time (bot/deploy/gates.py)
MAX_QUESTION = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def gate_open(deploy: Deploy) -> bool:
    """Whether the deploy waits at a gate nobody has answered yet."""
    return (
        deploy.state is Status.RUNNING
        and deploy.gate_question is not None
        and deploy.gate_asked_at is not None
        and deploy.gate_answer is None
    )


def gate_value(deploy: Deploy) -> str:
    assert deploy.gate_asked_at is not None
    return f"{deploy.id}:{(deploy.gate_asked_at - _EPOCH) // _MICROSECOND}"


def read_gate_value(value: str) -> tuple[int, datetime | None]:
    """(deploy id, when its gate was asked) from a button's value; ValueError if it is not one."""
    deploy_id, _, asked = value.partition(":")
    if not deploy_id.isdigit() or (asked and not asked.isdigit()):
        raise ValueError(value)
    return int(deploy_id), (_EPOCH + int(asked) * _MICROSECOND) if asked else None


def gate_blocks(deploy: Deploy, env: Environment | None, locale: str, prefix: str) -> list[dict]:
    """The open gate with its buttons, for a card or a thread reply; nothing when none is open."""
    if not gate_open(deploy):
        return []
    question = t(
        locale, "ui.gate.waiting", deploy_id=deploy.id, question=_question(deploy.gate_question, locale)
    )
    who = ", ".join(deployer(user) for user in env.approvers) if env and env.approvers else ""
    minutes = f"{env.gate_timeout_minutes:g}" if env else "60"
    abort_text = t(locale, "ui.confirm.gate_abort.text", deploy_id=deploy.id)
    buttons = [
        button(t(locale, "ui.gate.answer.continue"), CONTINUE_ACTION, gate_value(deploy), style="primary"),
        button(
            t(locale, "ui.gate.answer.abort"),
            ABORT_ACTION,
            gate_value(deploy),
            style="danger",
            confirm=confirm_dialog(locale, "gate_abort", abort_text),
        ),
    ]
    return [
        section(question, f"{prefix}_gate"),
        context(
            t(locale, "ui.gate.who", who=who or t(locale, "ui.gate.admins"), minutes=minutes),
            f"{prefix}_gate_who",
        ),
        {"type": "actions", "block_id": f"{prefix}_gate_actions", "elements": buttons},
    ]


def gate_note(
    newest: Deploy, event: GateAsked | GateAnswered, env: Environment | None, locale: str
) -> Message:
    """The thread reply for a gate event: the question (with its buttons while that very gate is
    still open on `newest`, the deploy as it is now), or who answered what."""
    deploy = event.deploy
    if isinstance(event, GateAsked):
        question = _question(event.question, locale)
        text = t(locale, "ui.gate.fallback", deploy_id=deploy.id, question=question)
        if gate_open(newest) and newest.gate_asked_at == deploy.gate_asked_at:
            return Message(clip(text, MAX_TEXT), gate_blocks(newest, env, locale, "thread"))
        waited = t(locale, "ui.gate.waiting", deploy_id=deploy.id, question=question)
        return Message(clip(text, MAX_TEXT), [section(waited, "thread_gate")])
    answer = t(locale, f"ui.gate.answer.{event.answer}")
    question = _question(event.question, locale)
    if event.user == TIMEOUT:
        minutes = f"{env.gate_timeout_minutes:g}" if env else "60"
        line = t(locale, "ui.gate.timed_out", minutes=minutes, answer=answer, question=question)
    else:
        line = t(locale, "ui.gate.answered", user=deployer(event.user), answer=answer, question=question)
    emoji = ":heavy_check_mark:" if event.answer == "continue" else ":octagonal_sign:"
    return Message(clip(f"{emoji} {line}", MAX_TEXT), [section(f"{emoji} {line}", "thread_gate_answer")])


def _question(question: str | None, locale: str) -> str:
    return escape(clip(one_line(question or ""), MAX_QUESTION)) or t(locale, "ui.gate.no_question")
