"""Stored benchmark results: their provenance, and the tables docs/benchmarks.md shows of them.

A stored result is bench/results/<benchmark>.json (the latest run, as the benchmark writes it)
or bench/results/runs/<benchmark>-<date>T<time>-<commit>.json (an earlier run kept). Its
command, commit and date are read under the names FIELDS lists. bench/report.py says which
tables there are; Block renders one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "benchmarks.md"
# Where a result keeps its provenance; the older benchmarks used other names for two of them.
FIELDS = {
    "command": ("command",),
    "commit": ("commit", "git_commit"),
    "date": ("date", "at", "measured_at"),
}
BLOCK = re.compile(
    r"^<!-- results ([\w-]+)(?::[^>]*)? -->\n.*?^<!-- /results \1 -->$", re.DOTALL | re.MULTILINE
)


def get(data: object, path: str) -> object:
    """get(d, "phases.drain.cores_used.consumer"); None where any step is missing."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def num(value: object, digits: int | None = None) -> str:
    """A stored figure as the table shows it: thousands separated, rounded only if asked."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if digits is not None:
        value = round(value, digits)
    return f"{value:,}"


def nums(data: object, *paths: str, digits: int | None = None) -> str:
    return " / ".join(num(get(data, p), digits) for p in paths)


def span(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    low, high = min(values), max(values)
    return num(low) if low == high else f"{num(low)} – {num(high)}"


def pct(share: object) -> str:
    return "—" if share is None else f"{round(100 * share)}"


def provenance(result: dict, meta: str | None = None) -> dict[str, str]:
    """command, commit and date of a stored result (from `meta` inside it when it has one)."""
    where = get(result, meta) if meta else None
    source = where if isinstance(where, dict) else result
    found = {}
    for name, keys in FIELDS.items():
        value = next((source[k] for k in keys if source.get(k)), None)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"no {name} in the stored result")
        found[name] = value.strip()
    return found


def benchmark_of(path: Path) -> str:
    """bench/results/ingest.json and bench/results/runs/ingest-<date>-<commit>.json: ingest."""
    return path.stem if path.parent == RESULTS else path.stem.split("-", 1)[0]


def stored_runs(bench: str) -> list[Path]:
    return [p for p in [RESULTS / f"{bench}.json"] if p.exists()] + sorted(
        (RESULTS / "runs").glob(f"{bench}-*.json")
    )


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def is_newest(path: Path) -> bool:
    """Whether no other stored run of the benchmark is dated later than this one."""
    date = provenance(load(path))["date"]
    return all(provenance(load(p))["date"] <= date for p in stored_runs(benchmark_of(path)))


@dataclass
class Block:
    """One generated table: its results files, its columns, and optionally items per run.

    A column is (header, function): the function gets the result (or the item, when `items`
    splits a result into rows) and returns the cell. `meta` names the part of a result that
    holds its own command, commit and date (a phase run apart and merged in later).
    """

    files: list[str]
    columns: list[tuple[str, Callable[[dict], str]]]
    items: Callable[[dict], list[tuple[str, dict]]] | None = None
    item_header: str = ""
    meta: str | None = None

    def resolve(self) -> list[Path]:
        found: list[Path] = []
        for name in self.files:
            matches = (
                sorted(RESULTS.glob(name)) if any(c in name for c in "*?[") else [RESULTS / name]
            )
            found += [p for p in matches if p not in found]
        return sorted(found, key=lambda p: provenance(load(p), self.meta)["date"])

    def render(self, name: str) -> str:
        paths = self.resolve()
        head = ["run (UTC, commit, command)"] + ([self.item_header] if self.items else [])
        head += [h for h, _ in self.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(path)
            result = load(path)
            run = provenance(result, self.meta)
            dirty = run["commit"].endswith("+dirty") or result.get("git_dirty") is True
            commit = run["commit"].split("+")[0][:7] + ("+dirty" if dirty else "")
            cell = f"{run['date'][:16].replace('T', ' ')}, {commit}, `{run['command']}`"
            if path.parent == RESULTS:
                if not is_newest(path):
                    raise ValueError(f"{path.name} is not the newest stored run of its benchmark")
                cell += " (latest)"
            rows = self.items(result) if self.items else [("", result)]
            for label, item in rows:
                cells = (
                    [cell] + ([label] if self.items else []) + [f(item) for _, f in self.columns]
                )
                lines.append("| " + " | ".join(cells) + " |")
        names = ", ".join(str(p.relative_to(REPO)) for p in paths)
        return (
            f"<!-- results {name}: {names} -->\n" + "\n".join(lines) + f"\n<!-- /results {name} -->"
        )


def col(header: str, *paths: str, digits: int | None = None) -> tuple[str, Callable[[dict], str]]:
    return header, lambda d: nums(d, *paths, digits=digits)
