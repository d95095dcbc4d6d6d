"""Freeze windows (DESIGN §10): `[[freeze]]` entries that refuse triggers of their environments
with their reason and end (a manager passes one with `--force <reason>`). Dated windows (`start`,
`end`; without an offset in `[bot] timezone`) or repeating ones (`cron` in `[bot] timezone`, open for
`hours` from each firing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import Config, Freeze, cron_trigger


def shown(moment: datetime, zone: str) -> str:
    """`2026-12-01 22:00 Asia/Shanghai`: a stored UTC time as the team reads it."""
    return f"{moment.astimezone(ZoneInfo(zone)).strftime('%Y-%m-%d %H:%M')} {zone}"


def frozen(config: Config, environment: str, now: datetime) -> tuple[Freeze, datetime] | None:
    """The freeze window covering `environment` at `now`, and when it ends; None when none does."""
    tz = ZoneInfo(config.bot.timezone)
    for window in config.freezes:
        if window.environments and environment not in window.environments:
            continue
        if window.start is not None and window.end is not None:
            start = window.start if window.start.tzinfo else window.start.replace(tzinfo=tz)
            end = window.end if window.end.tzinfo else window.end.replace(tzinfo=tz)
            if start <= now < end:
                return window, end
            continue
        assert window.cron is not None and window.hours is not None
        length = timedelta(hours=window.hours)
        trigger = cron_trigger(window.cron, timezone=config.bot.timezone)
        opened = trigger.get_next_fire_time(None, (now - length).astimezone(tz))
        if opened is not None and opened <= now:
            return window, opened + length
    return None
