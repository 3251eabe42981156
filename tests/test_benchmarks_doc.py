"""docs/benchmarks.md shows only figures that stored results under bench/results/ hold.

The tables are written by `python -m bench.report` from the results files their markers name;
these tests fail when the doc and the stored results have drifted apart.
"""

import re

import pytest

from bench import report, stored

DOC = stored.DOC.read_text()
MARKER = re.compile(r"^<!-- results ([\w-]+): ([^>]*) -->$", re.MULTILINE)
ALL_RESULTS = sorted(stored.RESULTS.glob("*.json")) + sorted(stored.RESULTS.glob("runs/*.json"))


def test_generated_blocks_are_what_the_stored_results_give():
    assert report.generate(DOC) == DOC, "run: python -m bench.report"


def test_every_results_file_a_block_names_exists():
    markers = MARKER.findall(DOC)
    assert {name for name, _ in markers} == set(report.BLOCKS)
    for name, files in markers:
        for file in files.split(", "):
            assert (stored.REPO / file).is_file(), f"{name}: {file} is not stored"


@pytest.mark.parametrize("path", ALL_RESULTS, ids=lambda p: p.name)
def test_every_stored_result_has_its_command_commit_and_date(path):
    found = stored.provenance(stored.load(path))
    assert found["command"].startswith("python ")
    assert re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", found["commit"])
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", found["date"])


def test_a_stored_run_is_named_by_its_benchmark_date_and_commit():
    for path in sorted(stored.RESULTS.glob("runs/*.json")):
        bench = stored.benchmark_of(path)
        assert (stored.RESULTS / f"{bench}.json").exists(), f"{path.name}: no latest {bench}"
        result = stored.load(path)
        meta = result.get("memory_measured") if "memory_measured" in result else None
        run = stored.provenance(meta or result)
        day = run["date"][:16].replace(":", "")
        assert path.name == f"{bench}-{day}-{run['commit'][:7]}.json"


@pytest.mark.parametrize("path", sorted(stored.RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_the_latest_results_file_is_the_newest_stored_run(path):
    assert stored.is_newest(path)


def test_a_row_labelled_latest_is_the_newest_stored_run_of_its_benchmark():
    blocks = stored.BLOCK.finditer(DOC)
    checked = 0
    for block in blocks:
        files = MARKER.match(block.group(0)).group(2).split(", ")
        runs = {stored.REPO / f for f in files}
        for row in block.group(0).splitlines():
            if "(latest)" not in row:
                continue
            # The row's run cell: "<date>, <commit>, `<command>` (latest)".
            date, commit = row.strip("| ").split(", ")[:2]
            source = [
                p
                for p in runs
                if p.parent == stored.RESULTS
                and stored.provenance(stored.load(p))["date"][:16].replace("T", " ") == date
                and stored.provenance(stored.load(p))["commit"][:7] == commit[:7]
            ]
            assert source, f"no latest results file in the block for {row[:80]}"
            assert all(stored.is_newest(p) for p in source)
            checked += 1
    assert checked


def test_a_block_of_a_file_that_is_not_the_newest_is_refused(tmp_path, monkeypatch):
    """Labelling latest a run that a newer stored run has replaced is refused, not written."""
    results = tmp_path / "bench" / "results"
    runs = results / "runs"
    runs.mkdir(parents=True)
    older = {"command": "python -m bench.x", "commit": "abcdef1", "date": "2026-12-01T10:00:00"}
    newer = older | {"date": "2026-12-02T10:00:00", "figure": 1}
    (results / "x.json").write_text(stored.json.dumps(older))
    (runs / "x-2026-12-02T1000-abcdef1.json").write_text(stored.json.dumps(newer))
    monkeypatch.setattr(stored, "REPO", tmp_path)
    monkeypatch.setattr(stored, "RESULTS", results)
    block = stored.Block(files=["x.json"], columns=[stored.col("figure", "figure")])
    with pytest.raises(ValueError, match="not the newest"):
        block.render("x")
    (results / "x.json").write_text(stored.json.dumps(newer))
    assert "(latest) | 1 |" in block.render("x")


def test_a_result_without_its_command_is_refused():
    with pytest.raises(ValueError, match="no command"):
        stored.provenance({"commit": "abcdef1", "date": "2026-12-01T10:00:00"})
