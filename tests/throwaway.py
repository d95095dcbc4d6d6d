"""A throwaway system account for the run_as tests, and folders it can read.

Creating an account needs root (CI runs as root): without it the tests that ask for `account` are
skipped with the reason. The account (and a group it belongs to besides its own) is removed after
the tests of the module that asked for it.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Account:
    user: str
    uid: int
    gid: int  # its own (primary) group
    extra_group: str  # a supplementary group it belongs to
    extra_gid: int
    home: str


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def throwaway_account() -> Iterator[Account]:
    """Create `deploybot-test-<random>` (no home, no shell) in a group of its own and one more."""
    if os.geteuid() != 0:
        pytest.skip("run_as tests create a throwaway system user: they need root")
    if not (shutil.which("useradd") and shutil.which("groupadd")):
        pytest.skip("run_as tests need useradd and groupadd")
    user = f"deploybot-test-{secrets.token_hex(3)}"
    extra = f"{user}-x"
    _run("groupadd", "--system", extra)
    try:
        _run(
            "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", extra, user
        )
        try:
            entry = pwd.getpwnam(user)
            yield Account(user, entry.pw_uid, entry.pw_gid, extra, grp.getgrnam(extra).gr_gid, entry.pw_dir)
        finally:
            _run("userdel", user)
    finally:
        subprocess.run(["groupdel", extra], capture_output=True, timeout=60)


def shared_dir() -> Iterator[Path]:
    """A folder every account can read (pytest's tmp folders are 0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="deploybot-run-as-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    """A throwaway system account for the module's tests (skipped without root)."""
    yield from throwaway_account()


@pytest.fixture
def folder(account: Account) -> Iterator[Path]:
    """A folder that account can read, outside pytest's 0700 tmp dir."""
    yield from shared_dir()
