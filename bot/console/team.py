"""Who the local Slack workspace is: its team, app and bot user, the users and channel it starts
with, and the ids Slack makes up for new objects. The Web API side (workspace.py) and what Slack
sends to the app (payloads.py) both speak as this one workspace."""

from __future__ import annotations

import secrets
import string
import time

TEAM_ID = "T0DEPLOY1"
TEAM_DOMAIN = "deployteam"
TEAM_NAME = "Deploy Team"
APP_ID = "A0DEPLOYB"
BOT_USER_ID = "U0DEPLOYB"
BOT_ID = "B0DEPLOYB"
BOT_NAME = "deploybot"
VERIFICATION_TOKEN = "Zx3cV7bN1mQ9wE5rT2yU8iO4"  # the legacy token Slack still puts in every payload
DEFAULT_CHANNEL = ("C0DEPLOY1", "deploys")
# user id -> (name, real name, workspace admin)
DEFAULT_USERS = {"U0ADMIN01": ("zhang.wei", "张伟", True), "U0GUEST01": ("li.na", "李娜", False)}


def new_id(prefix: str) -> str:
    """An object id the way Slack spells them: `V0…` for views, `F0…` for files."""
    return prefix + "0" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))


def new_view_hash() -> str:
    """A view's `hash`, which changes on every update (views.update and views.publish check it)."""
    return f"{int(time.time())}.{''.join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))}"
