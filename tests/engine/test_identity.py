"""Who runs a deploy (bot/deploy/identity.py), and the lease settings.

A runner id reads back from its stored form; an owner is provably dead only on this very machine
(same host, boot and pid namespace) when its pid is gone or was recycled; and the config keeps the
old `stale_after_seconds` working as the lease's deprecated name.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace

import pytest

from bot.config import ConfigError, parse_config
from bot.deploy import identity
from bot.deploy.identity import RunnerId, owner_is_provably_dead
from tests.conftest import ADMIN, SCRIPTS

# --- identity --------------------------------------------------------------------------------------


def test_a_runner_id_reads_back_from_its_string():
    here = RunnerId.current()
    assert RunnerId.parse(str(here)) == here
    assert here.pid == os.getpid() and here.host and here.started > 0
    assert RunnerId.current() != here  # another service in this process is another runner
    for junk in (None, "", "web-1", "a/b/c/x/1/i", "host:4242"):
        assert RunnerId.parse(junk) is None


def test_only_an_owner_gone_from_this_machine_is_provably_dead():
    here = RunnerId.current()
    child = subprocess.Popen(["sleep", "30"])
    try:
        live = RunnerId(here.host, here.boot_id, here.pid_ns, child.pid, identity._start_time(child.pid), "x")
        assert not owner_is_provably_dead(live, here)
        assert owner_is_provably_dead(
            RunnerId(here.host, here.boot_id, here.pid_ns, child.pid, live.started + 1, "x"), here
        ), "a live pid with another start time is a recycled pid: the owner is gone"
        assert not owner_is_provably_dead(
            RunnerId(here.host, here.boot_id, here.pid_ns, child.pid, 0, "x"), here
        ), "an unknown start time cannot tell a recycled pid"
    finally:
        child.kill()
        child.wait()
    dead = RunnerId(here.host, here.boot_id, here.pid_ns, child.pid, live.started, "x")
    assert owner_is_provably_dead(dead, here)
    for elsewhere in (
        RunnerId("other-host", here.boot_id, here.pid_ns, child.pid, live.started, "x"),
        RunnerId(here.host, "another-boot", here.pid_ns, child.pid, live.started, "x"),
        RunnerId(here.host, here.boot_id, "pid:[1]", child.pid, live.started, "x"),
    ):
        assert not owner_is_provably_dead(elsewhere, here)
    assert not owner_is_provably_dead(replace(here, instance="other"), here)  # this very process
    assert not owner_is_provably_dead(None, here)


# --- config ----------------------------------------------------------------------------------------


def bot_settings(tmp_path, **bot):
    raw = {
        "bot": {"admins": [ADMIN], **bot},
        "environments": {"production": {"script": str(SCRIPTS / "steps.sh")}},
    }
    return parse_config(raw, tmp_path / "deploybot.toml", {}).bot


def test_lease_settings_default_and_the_old_name_still_works(tmp_path, caplog):
    settings = bot_settings(tmp_path)
    assert (settings.lease_seconds, settings.heartbeat_seconds, settings.reaper_interval_seconds) == (
        10,
        2,
        2,
    )
    assert bot_settings(tmp_path, stale_after_seconds=30).lease_seconds == 30
    assert "stale_after_seconds is deprecated" in caplog.text
    with pytest.raises(ConfigError, match="set only lease_seconds"):
        bot_settings(tmp_path, stale_after_seconds=30, lease_seconds=20)
    with pytest.raises(ConfigError, match="lease_seconds must be more than twice heartbeat_seconds"):
        bot_settings(tmp_path, lease_seconds=4, heartbeat_seconds=2)
