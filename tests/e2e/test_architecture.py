"""The shape of the code: layer contracts (import-linter, configured in pyproject.toml), no import
circles, and no product file over 500 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "storage")
MAX_LINES = 500
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the product packages and their contracts, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layer_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("bot/deploy/service.py", "import bot.slack.notifier", "Layers point one way"),
        ("bot/deploy/service.py", "import slack_sdk", "The engine and storage know no Slack"),
        ("storage/repository.py", "import handlers.rest", "Layers point one way"),
        # a function-level import of a sibling that imports this module back
        ("bot/deploy/runner.py", "def _late():\n    from bot.deploy import service", "No import circles"),
        # a type-checking import counts as much as any other
        (
            "handlers/guard.py",
            "if TYPE_CHECKING:\n    from handlers.middleware import RecentKeys",
            "No import circles",
        ),
    ],
)
def test_an_import_against_the_contracts_breaks_them(tree, module, line, broken):
    path = tree / module
    path.write_text(path.read_text() + "\n\n" + line + "\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert broken in result.stdout.split("Broken contracts", 1)[-1], result.stdout


def test_no_product_file_is_over_500_lines():
    long = {
        str(path.relative_to(REPO)): count
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "migrations" not in path.parts and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
