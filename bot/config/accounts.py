"""The accounts deploy scripts run under: `run_as = "user[:group]"`, looked up once at start-up.

The script gets the account's uid, its gid (the group given, else the user's primary group), the
supplementary groups it would get at login, and its home. Switching to it needs a bot running as
root or with CAP_SETUID, CAP_SETGID (to become it) and CAP_KILL (to cancel it); a config that sets
run_as on a bot without them is refused at start-up. `may_access` lets start-up warn when a script
is out of its account's reach.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from pathlib import Path

from bot.config.model import ConfigError, RunAs

SWITCH_CAPABILITIES = {"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7}  # bit numbers in CapEff


def resolve_account(spec: str, key: str) -> RunAs:
    """The account `spec` ("user", "user:group", names or numeric ids) names; `key` names the
    setting in the errors."""
    user, _, group = spec.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"{key}: unknown user '{user}'") from None
    gid = entry.pw_gid
    if group:
        try:
            gid = (grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)).gr_gid
        except KeyError:
            raise ConfigError(f"{key}: unknown group '{group}'") from None
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return RunAs(spec, entry.pw_name, entry.pw_uid, gid, groups, entry.pw_dir)


def missing_capabilities() -> list[str]:
    """Which of the capabilities run_as needs this process lacks (none for an ordinary root)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # no /proc: only root can tell
        return [] if os.geteuid() == 0 else sorted(SWITCH_CAPABILITIES)
    found = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.MULTILINE)
    effective = int(found.group(1), 16) if found else 0
    return sorted(name for name, bit in SWITCH_CAPABILITIES.items() if not effective >> bit & 1)


def check_switch(key: str, missing: list[str]) -> None:
    """Refuse run_as (set at `key`) when the bot lacks capabilities (`missing`) to honour it."""
    if missing:
        raise ConfigError(
            f"{key}: running scripts under another account needs a bot running as root or with "
            f"CAP_SETUID, CAP_SETGID and CAP_KILL; this one lacks {', '.join(missing)}"
        )


def may_access(account: RunAs, path: Path, want: int) -> bool:
    """Whether `account` may read (R_OK), execute (X_OK) `path` and reach it through its folders,
    by the permission bits (ACLs aside): a check for a warning, not a guarantee."""
    try:
        checks = [(folder, os.X_OK) for folder in reversed(path.parents)] + [(path, want)]
        return all(_allowed(account, folder.stat(), bits) for folder, bits in checks)
    except OSError:
        return False


def _allowed(account: RunAs, info: os.stat_result, want: int) -> bool:
    if account.uid == 0:
        return not want & os.X_OK or bool(info.st_mode & 0o111) or stat.S_ISDIR(info.st_mode)
    if info.st_uid == account.uid:
        granted = info.st_mode >> 6 & 7
    elif info.st_gid == account.gid or info.st_gid in account.groups:
        granted = info.st_mode >> 3 & 7
    else:
        granted = info.st_mode & 7
    return granted & want == want
