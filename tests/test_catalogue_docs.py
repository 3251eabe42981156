"""docs/alert-rules.md says what the catalogue does: its table of accepted INR ranges and
urgent bounds, and the examples it quotes, are checked against the code."""

from __future__ import annotations

import re
from itertools import groupby

import pytest

from alerts.rule_coverage import coverage
from telemed.catalogue.programs import UnknownStratum, ak_ranges, inr_range
from telemed.settings import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "alert-rules.md").read_text()


def _unwrap(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_table_of_ranges_is_the_catalogue() -> None:
    header = "| low bound | high bounds accepted | urgent low | urgent high |\n|---|---|---|---|\n"
    start = DOC.index(header) + len(header)
    documented = DOC[start : DOC.index("\n\n", start)].splitlines()
    expected = []
    for low, group in groupby(ak_ranges(), key=lambda r: r.low):
        ranges = list(group)
        highs = f"{ranges[0].high:.1f}" + (f"–{ranges[-1].high:.1f}" if len(ranges) > 1 else "")
        urgent = f"≤ {ranges[0].urgent_low:.1f} | ≥ {ranges[0].urgent_high:.1f}"
        assert all(r.urgent_low == ranges[0].urgent_low for r in ranges)
        expected.append(f"| {low:.1f} | {highs} | {urgent} |")
    assert documented == expected
    assert f"{len(ak_ranges())} ranges" in DOC


def test_the_quoted_refusal_is_the_one_enrolment_gives() -> None:
    with pytest.raises(UnknownStratum) as caught:
        inr_range("4.0-5.0")
    assert _unwrap(f"e.g. `{caught.value}`") in _unwrap(DOC)


def test_the_quoted_coverage_line_is_the_one_the_command_prints() -> None:
    (line,) = [c for c in coverage() if (c.program, c.stratum) == ("ak", "1.5-2.5")]
    printed = f"{line.program} {line.stratum}: {', '.join(line.rules)}"
    assert _unwrap(f"(`{printed}`)") in _unwrap(DOC)
