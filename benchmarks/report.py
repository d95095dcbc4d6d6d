"""Results: benchmarks/results.json, benchmarks/results.md and the README's benchmark table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.workspace import HERE, REPO

RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
MACHINE_JSON = HERE / "machine.json"
README = REPO / "README.md"
README_MARKER = "<!-- benchmarks -->"
TABLE_BEGIN = "<!-- benchmarks:begin -->"
TABLE_END = "<!-- benchmarks:end -->"
ORDER = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12", "P13", "P14")


@dataclass
class Result:
    id: str
    measure: str
    value: float | None
    unit: str
    target: str
    met: bool | None  # None: informational, no target of its own
    note: str = ""

    def as_json(self) -> dict:
        data = asdict(self)
        if not self.note:
            del data["note"]
        return data


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linearly interpolated between the nearest samples."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def merge(previous: list[dict], fresh: list[Result]) -> list[dict]:
    """The new rows replace every old row of the same figure; other figures keep their last values."""
    ids = {r.id for r in fresh}
    rows = [row for row in previous if row.get("id") not in ids] + [r.as_json() for r in fresh]
    return sorted(rows, key=lambda row: ORDER.index(row["id"]) if row["id"] in ORDER else len(ORDER))


def load_previous() -> list[dict]:
    try:
        return json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "×":
        return f"{value:.3f}×"
    if unit in ("ms", "MB/s", "MB", "s") or isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 1 else f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip() if unit not in ("×", "") else f"{text}{unit}"


def markdown_table(rows: Iterable[dict]) -> str:
    lines = ["| id | measure | value | target | met |", "|---|---|---|---|---|"]
    notes = []
    for row in rows:
        met = {True: "yes", False: "**no**", None: "—"}[row.get("met")]
        measure = row["measure"]
        if row.get("note"):
            notes.append(f"{row['id']}: {row['note']}")
            measure += f" [^{row['id']}{len(notes)}]"
        lines.append(
            f"| {row['id']} | {measure} | {format_value(row['value'], row['unit'])} | {row['target']} | {met} |"
        )
    if notes:
        lines.append("")
        for i, note in enumerate(notes, 1):
            key = note.split(":", 1)[0]
            lines.append(f"[^{key}{i}]: {note.split(':', 1)[1].strip()}")
    return "\n".join(lines)


def machine_line(machine: dict) -> str:
    return (
        f"Measured with `make bench` (or `python -m benchmarks [P1 P7 …]` for some figures) on "
        f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, {machine.get('memory', '?')} RAM), "
        f"{machine.get('os', '?')}, Python {machine.get('python', '?')}, SQLite {machine.get('sqlite', '?')}, "
        f"PostgreSQL {machine.get('postgresql', '?')}, {machine.get('date', '?')}. "
        "Each ratio is against a baseline measured in the same run."
    )


def write(rows: list[dict], machine: dict) -> str:
    RESULTS_JSON.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    MACHINE_JSON.write_text(json.dumps(machine, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table = markdown_table(rows)
    RESULTS_MD.write_text(f"{table}\n\n{machine_line(machine)}\n", encoding="utf-8")
    return table


def update_readme(rows: list[dict], machine: dict, readme: Path = README) -> bool:
    """Put the table in the README's Benchmarks section: in place of the `<!-- benchmarks -->`
    line the first time, between the begin/end comments after that. Nothing else changes."""
    block = f"{TABLE_BEGIN}\n{markdown_table(rows)}\n\n{machine_line(machine)}\n{TABLE_END}"
    text = readme.read_text(encoding="utf-8")
    if TABLE_BEGIN in text and TABLE_END in text:
        head, rest = text.split(TABLE_BEGIN, 1)
        tail = rest.split(TABLE_END, 1)[1]
        updated = head + block + tail
    elif README_MARKER in text:
        updated = text.replace(README_MARKER, block, 1)
    else:
        return False
    readme.write_text(updated, encoding="utf-8")
    return True
