"""The busy refusal with its 排队 (Queue) button, and the offer that button carries.

When `/deploy <env> …` finds the environment busy, the user is shown why, and a button that asks
for the very same deploy again with `--queue`. Everything that deploy needs rides in the button's
value (Slack keeps no state for us and allows 2000 characters there): environment, branch, flags,
description, and the key of the refused command, from which the queued deploy's request key is
made, so however often the button is pressed the deploy is queued once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from bot.errors import EnvironmentBusy
from bot.i18n import t
from bot.slack.blocks.elements import MAX_SECTION, MAX_TEXT, button, context, section
from bot.slack.blocks.messages import Message, error_text
from bot.slack.blocks.mrkdwn import clip, escape, escape_prose

MAX_VALUE = 2000  # Slack's limit for a button's value
MAX_KEY = 200


@dataclass(frozen=True)
class QueueOffer:
    """The deploy a 排队 click asks for."""

    env: str
    branch: str | None
    skip_build: bool
    skip_migrations: bool
    description: str
    force: str | None
    key: str  # the refused command's request key

    @property
    def request_key(self) -> str:
        return f"queue:{self.key}"


def offer_value(offer: QueueOffer) -> str:
    """The offer as a button value, within Slack's limit: a description too long to fit is cut
    (with an ellipsis) rather than the button left out."""
    value = _dump(offer)
    if len(value) <= MAX_VALUE:
        return value
    room = len(offer.description) - (len(value) - MAX_VALUE) - 1
    return _dump(replace(offer, description=clip(offer.description, room) if room > 1 else ""))


def read_offer(value: str) -> QueueOffer:
    """The offer in a button value; ValueError when it is not one (an old or forged value)."""
    try:
        raw = json.loads(value)
        offer = QueueOffer(
            env=_text(raw["env"]),
            branch=None if raw.get("branch") is None else _text(raw["branch"]),
            skip_build=raw.get("skip_build") is True,
            skip_migrations=raw.get("skip_migrations") is True,
            description=_text(raw.get("description", "")),
            force=None if raw.get("force") is None else _text(raw["force"]),
            key=_text(raw["key"])[:MAX_KEY],
        )
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError("not a queue offer") from exc
    if not offer.key:
        raise ValueError("a queue offer without its key")
    return offer


def busy_refusal(error: EnvironmentBusy, offer: QueueOffer, env_label: str, locale: str) -> Message:
    """Why the deploy did not start, and the 排队 button that queues it instead."""
    text = escape_prose(error_text(error.key, error.params, locale))
    hint = t(locale, "ui.busy.queue_hint", env=escape(env_label))
    queue = button(t(locale, "ui.button.queue"), "queue_deploy", offer_value(offer), style="primary")
    blocks = [
        section(clip(f":busstop: {text}", MAX_SECTION), "busy"),
        context(hint, "busy_hint"),
        {"type": "actions", "block_id": "busy_actions", "elements": [queue]},
    ]
    return Message(clip(text, MAX_TEXT), blocks)


def _dump(offer: QueueOffer) -> str:
    return json.dumps(asdict(offer), ensure_ascii=False, separators=(",", ":"))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
