"""Reading script output: markers, commits, error lines, tails, with chunks split anywhere."""

from __future__ import annotations

import pytest

from bot.deploy.git import check_branch
from bot.deploy.progress import CommitReported, OutputScanner, Step, estimate_seconds
from bot.errors import InvalidBranch

OUTPUT = (
    b"preparing\n"
    b"[1/7] \xe6\x9e\x84\xe5\xbb\xba\xe5\x89\x8d\xe7\xab\xaf\n"  # [1/7] 构建前端
    b"npm run build\n"
    b"==> [2/7] package\n"
    b"Step 3/7: upload\n"
    b"DEPLOY_COMMIT=" + b"c" * 40 + b"\n"
    b"warning: Error budget fine\n"
    b"  [4/7] indented is not a marker\n"
    b"[9/7] beyond the total is not a marker\n"
    b"last words"
)


def scan_in_pieces(data: bytes, size: int) -> tuple[OutputScanner, list]:
    scanner = OutputScanner()
    events = []
    for start in range(0, len(data), size):
        events += scanner.feed(data[start : start + size])
    events += scanner.finish()
    return scanner, events


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_markers_and_commit_are_found_however_the_output_is_split(size):
    scanner, events = scan_in_pieces(OUTPUT, size)
    assert events == [
        Step(1, 7, "构建前端"),
        Step(2, 7, "package"),
        Step(3, 7, "upload"),
        CommitReported("c" * 40),
    ]
    assert events[1].lines_before == ("npm run build",)
    assert events[2].lines_before == ()
    assert scanner.last_error == "warning: Error budget fine"
    assert scanner.tail[-1] == "last words"


def test_without_error_words_the_last_line_is_the_error():
    scanner, _ = scan_in_pieces(b"one\ntwo\n\n", 4)
    assert scanner.last_error == "two"


def test_a_huge_line_costs_no_memory_and_is_clipped_for_display():
    scanner = OutputScanner()
    for _ in range(100):
        scanner.feed(b"y" * 100_000)
    assert len(scanner._partial) <= 4096
    scanner.feed(b"\n[2/2] after\n")
    assert scanner.tail[-2].endswith("…") and len(scanner.tail[-2]) == 500
    assert scanner.tail[-1] == "[2/2] after"


def test_custom_pattern_without_total():
    scanner = OutputScanner(r"^>> (?P<n>\d+) (?P<title>.+)$")
    assert scanner.feed(b">> 2 migrate\n[1/2] ignored\n") == [Step(2, None, "migrate")]


def test_estimate_is_a_median_of_positive_durations():
    assert estimate_seconds([]) is None
    assert estimate_seconds([0, None, 10, 20, 300]) == 20


@pytest.mark.parametrize(
    "branch",
    ["main", "release/2026.11", "feature/JIRA-42_fix", "v1.2.3", "用户/分支", "a-b", "x" * 100],
)
def test_good_branch_names(branch):
    assert check_branch(branch) == branch


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "-f",
        "--upload-pack=evil",
        "a..b",
        "a b",
        "a\tb",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "x;ls",
        "x|y",
        "x&y",
        "$(id)",
        "`id`",
        "x>y",
        "'q'",
        '"q"',
        "a@{1}",
        "@",
        "/a",
        "a/",
        "a//b",
        ".a",
        "a/.b",
        "a.",
        "a.lock",
        "a/b.lock/c",
        "x" * 101,
        "a\x7fb",
        "main\u202e",  # right-to-left override: shows as something it is not
        "ma\u2066in",  # first strong isolate
        "a\u2028b",  # line separator
        "a\u2029b",  # paragraph separator
        "a\u200bb",  # zero-width space
        "a\u00a0b",  # no-break space
        "a\ue000b",  # private use
    ],
)
def test_bad_branch_names(branch):
    with pytest.raises(InvalidBranch) as refused:
        check_branch(branch)
    assert "`" in refused.value.message("zh")


def test_a_refused_branch_is_echoed_without_its_invisible_characters():
    with pytest.raises(InvalidBranch) as refused:
        check_branch("release\u202e/vid.exe")
    assert "\u202e" not in refused.value.message("en") and "\ufffd" in refused.value.message("en")
