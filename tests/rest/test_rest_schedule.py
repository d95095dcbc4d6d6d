"""Scheduled deploys and freezes over REST: `"at"` answers 202 with a scheduled deploy; a time in the
past or too far ahead is a 400 that creates nothing; a freeze is a 409 environment_frozen."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from bot.config import Freeze
from tests.rest.test_rest import API, ENVIRON, serving


async def test_at_schedules_and_bad_times_create_nothing(make_config):
    async with serving(make_config(environ=ENVIRON)) as api:
        at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        response, body = await api.post(f"{API}/trigger", json={"environment": "production", "at": at})
        assert response.status == 202 and body["status"] == "scheduled"
        assert body["scheduled_at"].endswith("Z")
        for bad in ("2020-01-01T00:00:00Z", (datetime.now(UTC) + timedelta(days=40)).isoformat()):
            response, body = await api.post(f"{API}/trigger", json={"environment": "staging", "at": bad})
            assert response.status == 400 and body["error"]["code"] == "invalid_input", body
        assert await api.rows() == 1


async def test_a_freeze_is_409_environment_frozen(make_config):
    start = datetime.now(UTC) - timedelta(minutes=5)
    config = dataclasses.replace(
        make_config(environ=ENVIRON),
        freezes=(Freeze(start=start, end=start + timedelta(hours=1), reason="release freeze"),),
    )
    async with serving(config) as api:
        response, body = await api.post(f"{API}/trigger", json={"environment": "production"})
        assert response.status == 409 and body["error"]["code"] == "environment_frozen"
        assert "release freeze" in body["error"]["message"]
        assert await api.rows() == 0
