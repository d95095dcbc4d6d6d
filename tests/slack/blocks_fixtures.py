"""Rows, config and dict readers shared by the Block Kit tests (tests/test_blocks_*.py,
tests/test_blockkit.py). Pure: rows are built in memory, no database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from bot.config import Config, parse_config
from bot.slack.blocks.card import CardContext
from bot.slack.blocks.messages import Message
from storage.models import Deploy
from storage.repository import Page
from tests.blockkit import validate_message
from tests.conftest import SCRIPTS

ADMIN, GUEST = "U0ADMIN01", "U0GUEST01"
T0 = datetime(2025, 11, 28, 9, 0, tzinfo=UTC)
SHA_42 = "3f9c2ab" + "0" * 33
SHA_41 = "a1b2c3d" + "1" * 33
COMMIT_URL = "https://git.example.com/app/commit/{commit}"
LOCALES = ("zh", "en")


# --- building rows and config ---------------------------------------------------------------------


def make_config(*, locale: str = "zh", commit_url: str = "") -> Config:
    script = str(SCRIPTS / "steps.sh")
    raw = {
        "bot": {"admins": [ADMIN], "locale": locale},
        "environments": {
            "production": {
                "label": "生产环境",
                "aliases": ["prod"],
                "script": script,
                "commit_url": commit_url,
            },
            "staging": {"label": "预发布环境", "script": script, "default_branch": "develop"},
            "testing": {"label": "测试环境", "script": script},
        },
    }
    return parse_config(raw, SCRIPTS / "deploybot.toml", {})


def deploy(**fields) -> Deploy:
    """Deploy #42: production, main, succeeded in 2m41s after seven steps; override anything."""
    row = {
        "id": 42,
        "environment": "production",
        "branch": "main",
        "commit_hash": SHA_42,
        "status": "success",
        "deployed_by": ADMIN,
        "description": "",
        "created_at": T0,
        "started_at": T0,
        "completed_at": T0 + timedelta(seconds=161),
        "duration": 161,
        "step_current": 7,
        "step_total": 7,
        "step_title": "健康检查",
        "skip_build": False,
        "skip_migrations": False,
        "rollback_of": None,
        "error_message": None,
        "cancelled_by": None,
        "cancel_requested_by": None,
        "logs_cleared_at": None,
    } | fields
    return Deploy(**row)


def running(**fields) -> Deploy:
    return deploy(
        **{"id": 43, "status": "running", "completed_at": None, "duration": None, "step_current": 2,
           "step_title": "打包"} | fields
    )  # fmt: skip


def target() -> Deploy:
    return deploy(id=41, commit_hash=SHA_41, completed_at=T0 - timedelta(days=1))


def ctx(cfg: Config, *, seconds: float = 75, estimate: float | None = None, rollback: Deploy | None = None):
    return CardContext(
        env=cfg.environments["production"],
        now=T0 + timedelta(seconds=seconds),
        estimate=estimate,
        rollback_target=rollback,
    )


def history_page(number: int, *, total: int = 25, size: int = 10) -> Page:
    first = total - (number - 1) * size
    statuses = ("success", "failed", "running", "cancelled", "success")
    items = [
        deploy(id=i, status=statuses[i % 5], branch=f"b{i}", completed_at=None if i % 5 == 2 else T0)
        for i in range(first, max(first - size, 0), -1)
    ]
    return Page(items=items, total=total, page=number, page_size=size)


# --- reading the dicts ----------------------------------------------------------------------------


def block(message: Message | dict, block_id: str) -> dict:
    blocks = message.blocks if isinstance(message, Message) else message["blocks"]
    found = [b for b in blocks if b.get("block_id") == block_id]
    assert found, f"no block {block_id!r} in {[b.get('block_id') for b in blocks]}"
    return found[0]


def text_of(message: Message | dict, block_id: str) -> str:
    found = block(message, block_id)
    if "text" in found:
        return found["text"]["text"]
    return "\n".join(e["text"] for e in found.get("elements") or found.get("fields") or [])


def buttons(thing: Message | dict) -> dict[str, dict]:
    blocks = thing.blocks if isinstance(thing, Message) else thing["blocks"]
    found = {}
    for b in blocks:
        for element in [*(b.get("elements") or []), b.get("accessory") or {}]:
            if element.get("type") == "button":
                found.setdefault(element["action_id"], element)
    return found


def block_ids(message: Message) -> list[str]:
    return [b["block_id"] for b in message.blocks]


def all_texts(thing) -> str:
    return json.dumps(thing, ensure_ascii=False)


def code_bodies(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)\n```", text, re.S)


def check(message: Message) -> Message:
    validate_message(message.as_kwargs())
    return message


def without(node, keys: set[str]):
    """`node` with every `keys` entry dropped at any depth (to compare with Slack's samples)."""
    if isinstance(node, dict):
        return {k: without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [without(v, keys) for v in node]
    return node
