"""The example scripts, run for real: a demo git repo, deploys of its commits as subprocesses the way
the bot runs them (own process group, stdin /dev/null, killed group afterwards), and the resulting
app checked over HTTP. No bot code, no database of the bot's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import alive, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS = ["构建前端", "打包", "上传", "解压", "数据库迁移", "重启服务", "健康检查"]
MARKER = re.compile(r"^\[(\d+)/(\d+)\] (.+)$", re.MULTILINE)
# Straight to the demo app, whatever http_proxy the environment has.
http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repo}", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class DemoRepo:
    path: Path
    v1: str
    main: str


def prepare(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXAMPLES / "prepare-demo.sh"), str(state)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory) -> DemoRepo:
    state = tmp_path_factory.mktemp("demo")
    result = prepare(state)
    assert result.returncode == 0, result.stderr
    repo = state / "app.git"
    return DemoRepo(repo, git(repo, "rev-parse", "v1"), git(repo, "rev-parse", "main"))


class Demo:
    """One deploy target (a ROOT and a port) and what the tests look at."""

    def __init__(self, repo: DemoRepo, root: Path) -> None:
        self.repo = repo
        self.root = root
        self.port = free_port()
        self.deploys = 0
        self.pids: set[int] = set()

    def deploy(
        self, commit: str, *, branch: str = "main", extra_env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.deploys += 1
        env = {
            **os.environ,
            "DEPLOY_ID": str(self.deploys),
            "DEPLOY_ENVIRONMENT": "staging",
            "DEPLOY_BRANCH": branch,
            "DEPLOY_COMMIT": commit,
            "DEPLOY_USER": "U0ADMIN01",
            "DEPLOY_DESCRIPTION": "test",
            "DEPLOY_ROLLBACK_OF": "",
            "SKIP_BUILD": "0",
            "SKIP_MIGRATIONS": "0",
            "DEMO_STEP_DELAY": "0",
            **(extra_env or {}),
        }
        argv = [str(EXAMPLES / "deploy.sh"), "--repo", str(self.repo.path), "--root", str(self.root)]
        proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            cwd=EXAMPLES,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            # As the bot does: what is left in the script's group dies with it. The app must have
            # left the group (setsid) to survive this.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        pid_file = self.root / "app.pid"
        if pid_file.exists():
            self.pids.add(int(pid_file.read_text()))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")

    def ok(self, commit: str, **kwargs) -> str:
        result = self.deploy(commit, **kwargs)
        assert result.returncode == 0, result.stdout
        return result.stdout

    def get(self, path: str) -> str:
        with http.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            return resp.read().decode()

    def migrations(self) -> list[str]:
        with sqlite3.connect(self.root / "shared" / "app.sqlite3") as db:
            return [name for (name,) in db.execute("SELECT name FROM schema_migrations ORDER BY name")]

    def columns(self, table: str) -> list[str]:
        with sqlite3.connect(self.root / "shared" / "app.sqlite3") as db:
            return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]

    def stop(self) -> None:
        subprocess.run([str(EXAMPLES / "demo-stop.sh"), str(self.root)], capture_output=True, timeout=30)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in self.pids if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"demo app still running after demo-stop.sh: {left}"


@pytest.fixture
def demo(demo_repo, tmp_path):
    target = Demo(demo_repo, tmp_path / "root")
    yield target
    target.stop()


def steps(output: str, total: int = 7) -> list[str]:
    return [title for _, m, title in MARKER.findall(output) if int(m) == total]


def test_prepare_demo_is_idempotent_and_stable(demo_repo, tmp_path):
    again = prepare(demo_repo.path.parent)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert git(demo_repo.path, "rev-parse", "v1", "main").split() == [demo_repo.v1, demo_repo.main]

    # Fixed identity and dates: another machine (here, another folder) gets the same shas.
    assert prepare(tmp_path / "elsewhere").returncode == 0
    assert git(tmp_path / "elsewhere" / "app.git", "rev-parse", "v1", "main").split() == [
        demo_repo.v1,
        demo_repo.main,
    ]

    assert git(demo_repo.path, "rev-parse", "main^") == demo_repo.v1
    assert git(demo_repo.path, "show", "v1:VERSION") == "1.0"
    assert git(demo_repo.path, "show", "main:VERSION") == "2.0"
    assert git(demo_repo.path, "ls-tree", "--name-only", "v1", "migrations/").split() == [
        "migrations/001_init.sql"
    ]
    assert "migrations/002_add_column.sql" in git(demo_repo.path, "ls-tree", "-r", "--name-only", "main")


def test_upgrade_then_rollback_brings_the_old_version_back(demo, demo_repo):
    started = time.monotonic()
    out = demo.ok(demo_repo.v1, branch="v1")
    assert time.monotonic() - started < 5, "a deploy with DEMO_STEP_DELAY=0 should be quick"
    assert steps(out) == STEPS
    assert [int(n) for n, m, _ in MARKER.findall(out) if m == "7"] == [1, 2, 3, 4, 5, 6, 7]
    assert f"DEPLOY_COMMIT={demo_repo.v1}" in out.splitlines()
    assert demo.get("/version").strip() == "1.0"
    assert json.loads(demo.get("/health")) == {"status": "ok", "version": "1.0", "commit": demo_repo.v1}
    assert "1.0" in demo.get("/") and "2.0" not in demo.get("/")
    assert demo.migrations() == ["001_init.sql"]
    first_pid = int((demo.root / "app.pid").read_text())

    out = demo.ok(demo_repo.main)
    assert steps(out) == STEPS
    assert demo.get("/version").strip() == "2.0"
    assert "2.0 新功能" in demo.get("/")
    assert demo.migrations() == ["001_init.sql", "002_add_column.sql"]
    assert "user_agent" in demo.columns("visits")
    assert not alive(first_pid), "the old app must be stopped"

    out = demo.ok(demo_repo.v1, branch="v1", extra_env={"DEPLOY_ROLLBACK_OF": "1"})
    assert steps(out) == STEPS
    assert demo.get("/version").strip() == "1.0"
    assert "2.0 新功能" not in demo.get("/")
    current = demo.root / "current"
    assert current.is_symlink()
    assert current.resolve() == (demo.root / "releases" / f"3-{demo_repo.v1[:7]}").resolve()
    # Migrations only go forward; 002's column is nullable so 1.0 runs on the newer schema.
    assert demo.migrations() == ["001_init.sql", "002_add_column.sql"]


def test_skip_migrations_leaves_the_database_alone(demo, demo_repo):
    demo.ok(demo_repo.v1, branch="v1")
    out = demo.ok(demo_repo.main, extra_env={"SKIP_MIGRATIONS": "1"})
    assert "SKIP_MIGRATIONS=1" in out
    assert steps(out) == STEPS
    assert demo.migrations() == ["001_init.sql"]
    assert "user_agent" not in demo.columns("visits")
    assert demo.get("/version").strip() == "2.0"


def test_skip_build_reuses_the_live_front_end(demo, demo_repo):
    demo.ok(demo_repo.v1, branch="v1")
    out = demo.ok(demo_repo.main, extra_env={"SKIP_BUILD": "1"})
    assert "跳过构建 (SKIP_BUILD=1)" in out
    assert steps(out) == STEPS
    assert demo.get("/version").strip() == "2.0"
    # The page is the one built for 1.0, copied over instead of rebuilt.
    page = demo.get("/")
    assert "<title>Demo app 1.0</title>" in page and "2.0 新功能" not in page


def test_skip_build_without_a_live_release_serves_plain_text(demo, demo_repo):
    out = demo.ok(demo_repo.main, extra_env={"SKIP_BUILD": "1"})
    assert "跳过构建 (SKIP_BUILD=1)" in out
    assert demo.get("/") == f"demo-app 2.0 ({demo_repo.main[:7]})\n"


def test_unknown_commit_fails_with_an_error_line(demo):
    result = demo.deploy("0" * 40)
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert errors and "0" * 40 in errors[-1]
    assert not (demo.root / "app.pid").exists()


def test_app_that_does_not_come_up_fails_the_health_check(demo, demo_repo):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        demo.port = squatter.getsockname()[1]
        result = demo.deploy(demo_repo.v1, branch="v1")
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert steps(result.stdout) == STEPS
    assert lines[-1].startswith("ERROR:") and "健康检查失败" in lines[-1]
    assert "Address already in use" in result.stdout


@pytest.mark.slow
def test_keeps_the_last_five_releases(demo, demo_repo):
    for n in range(7):
        demo.ok(demo_repo.main if n % 2 else demo_repo.v1)
    releases = sorted(p.name for p in (demo.root / "releases").iterdir())
    assert len(releases) == 5
    assert f"7-{demo_repo.v1[:7]}" in releases and not any(r.startswith(("1-", "2-")) for r in releases)
    assert len(list((demo.root / "uploads").iterdir())) == 5
    assert (demo.root / "current").resolve().name == f"7-{demo_repo.v1[:7]}"


def test_demo_stop_with_nothing_running(tmp_path):
    result = subprocess.run(
        [str(EXAMPLES / "demo-stop.sh"), str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0


def test_slow_deploy_announces_five_steps(tmp_path):
    result = subprocess.run(
        [str(EXAMPLES / "slow-deploy.sh")],
        cwd=EXAMPLES,
        env={**os.environ, "SLOW_STEP_SECONDS": "0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert [int(n) for n, m, _ in MARKER.findall(result.stdout) if m == "5"] == [1, 2, 3, 4, 5]
