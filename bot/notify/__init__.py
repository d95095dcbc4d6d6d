"""Deploy events told beyond Slack (DESIGN §10): the `[[notify]]` sinks, webhook, 企业微信, 钉钉
and email. `messages.py` what a notice says and each kind's payload; `sinks.py` one attempt at one
sink; `dispatch.py` the bus observer, a queue per sink, retries and back-off."""

from bot.notify.dispatch import Notifications, Timing

__all__ = ["Notifications", "Timing"]
