"""The config the Block Kit tests render with (`cfg`)."""

from __future__ import annotations

import pytest

from bot.config import Config
from tests.slack.blocks_fixtures import make_config


@pytest.fixture
def cfg() -> Config:
    return make_config()
