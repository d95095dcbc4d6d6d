"""Who may deploy: the configured admins plus the members of the configured Slack user groups.

Group membership comes from `usergroups.users.list` (a Tier 2 method, ~20 calls a minute), so it is
cached for a minute. When Slack cannot answer, the last known membership stays in force; with none
known yet, only the configured admins are let in.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


class Admins:
    def __init__(self, config: Config, client: AsyncWebClient, *, ttl: float = CACHE_SECONDS) -> None:
        self.users = frozenset(config.bot.admins)
        self.groups = tuple(config.bot.admin_groups)
        self.client = client
        self.ttl = ttl
        self._members: frozenset[str] = frozenset()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def is_admin(self, user_id: str | None) -> bool:
        if not user_id:
            return False
        if user_id in self.users:
            return True
        if not self.groups:
            return False
        return user_id in await self.group_members()

    async def group_members(self) -> frozenset[str]:
        async with self._lock:  # one refresh at a time; the others use its result
            if self._fetched_at is None or time.monotonic() - self._fetched_at > self.ttl:
                await self._refresh()
            return self._members

    async def _refresh(self) -> None:
        members: set[str] = set()
        try:
            for group in self.groups:
                response = await self.client.usergroups_users_list(usergroup=group)
                members.update(response.get("users") or [])
        except Exception as exc:  # Slack down or the group is gone: keep what we knew
            log.warning("usergroups.users.list failed (%s); keeping the cached admin groups", exc)
            if self._fetched_at is None:
                # Try again soon rather than a full minute later, but not on every request.
                self._fetched_at = time.monotonic() - self.ttl + 5.0
            return
        self._members = frozenset(members)
        self._fetched_at = time.monotonic()
