"""What every Slack listener is handed (`ctx`): the service, the config, the admins and the
notifier (and, for the middleware, the deliveries guard). Listeners receive it instead of
importing the app that built it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.config import Config
from bot.deploy.service import DeployService
from bot.slack.notifier import SlackNotifier
from bot.slack.permissions import Admins
from storage.deliveries import DeliveryGuard


@dataclass
class SlackContext:
    config: Config
    service: DeployService
    admins: Admins
    notifier: SlackNotifier
    # which requests any bot process handled already; None: this process's memory alone decides
    deliveries: DeliveryGuard | None = None
    tasks: set[asyncio.Future] = field(default_factory=set)  # listener work after the ack

    @property
    def locale(self) -> str:
        return self.config.locale
