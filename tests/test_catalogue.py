"""The clinical catalogue (telemed.catalogue) and the coverage invariant on its pure side: every
stratum and INR range it accepts yields the program's rules and missed-measurement rules, and
every one it refuses is refused by enrolment, with a message that says what is allowed."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.checks import check_inr
from alerts.defaults import default_rules
from alerts.rules import AbsoluteRule, InrRule, MissedRule, Obs, Severity
from telemed import patients
from telemed.catalogue import programs
from telemed.catalogue.metrics import METRICS
from telemed.catalogue.programs import (
    AK_PRODUCTS,
    COPD_STRATA,
    PROGRAMS,
    UnknownProgram,
    UnknownStratum,
    accepted_strata,
    accepts,
    ak_ranges,
    inr_range,
)
from telemed.catalogue.schedules import default_schedules
from telemed.errors import Invalid

ACCEPTED = [(program, stratum) for program in PROGRAMS for stratum in accepted_strata(program)]
T = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _covered(program: str, stratum: str) -> None:
    """The invariant: the program's own rules and at least one missed-measurement rule, each
    for a metric of the catalogue."""
    rules = default_rules(program, stratum)
    main = [r for r in rules if isinstance(r, InrRule if program == "ak" else AbsoluteRule)]
    missed = [r for r in rules if isinstance(r, MissedRule)]
    assert main and missed, (program, stratum, rules)
    assert all(r.metric in METRICS for r in rules)


def test_every_accepted_stratum_is_covered() -> None:
    assert len(ACCEPTED) == len(COPD_STRATA) + len(ak_ranges()) == 234
    for program, stratum in ACCEPTED:
        _covered(program, stratum)


@given(st.sampled_from(ACCEPTED))
def test_property_an_accepted_stratum_yields_its_rules_and_missed_rules(pair) -> None:
    _covered(*pair)


@given(
    st.sampled_from(ak_ranges()),
    st.decimals(min_value="0.5", max_value="20", places=2).map(float),
)
def test_property_every_inr_outside_an_accepted_range_alerts(accepted, value) -> None:
    """Urgent bounds lie outside the range, and an INR anywhere in the plausible range is
    either in the range (no alert), outside it (yellow) or past an urgent bound (red)."""
    assert 0 < accepted.urgent_low < accepted.low < accepted.high < accepted.urgent_high
    (inr,) = [r for r in default_rules("ak", accepted.stratum) if isinstance(r, InrRule)]
    breach = check_inr(inr, Obs("inr", value, T))
    if value >= accepted.urgent_high or value <= accepted.urgent_low:
        assert breach is not None and breach.severity is Severity.RED
    elif accepted.low <= value <= accepted.high:
        assert breach is None
    else:
        assert breach is not None and breach.severity is Severity.YELLOW


ak_like = st.from_regex(r"[0-9]\.[0-9]-[0-9]\.[0-9]", fullmatch=True)
words = st.sampled_from([*COPD_STRATA, "very severe", "2,0-3,0", "2-3", "2.0-3.0\n"])
anything = st.one_of(ak_like, words, st.text())


@given(st.sampled_from([*PROGRAMS, "hf"]), anything)
def test_property_enrolment_accepts_exactly_what_has_rules(program, stratum) -> None:
    try:
        default_rules(program, stratum)
        has_rules = True
    except (UnknownProgram, UnknownStratum):
        has_rules = False
    try:
        patients.check_stratum(program, stratum)
        enrols = True
    except Invalid as exc:
        enrols = False
        (problem,) = exc.problems
        assert problem.field == "stratum" and "allowed:" in problem.message
    assert enrols == has_rules == accepts(program, stratum)


@pytest.mark.parametrize(
    ("stratum", "why"),
    [
        ("4.0-5.0", "ends above 4.5"),
        ("2.0-5.0", "ends above 4.5"),
        ("1.0-1.4", "starts below 1.5"),
        ("2.0-2.2", "is 0.2 wide"),
        ("1.5-3.5", "is 2.0 wide"),
        ("3.0-2.0", "high bound must be above the low bound"),
        ("2,0-3,0", "a point as decimal sign"),
        ("2.0 - 3.0", "is not written like 2.0-3.0"),
        ("２.0-3.0", "is not written like 2.0-3.0"),  # a full-width digit is not 2
        ("2.0-3.0\x00", "is not written like 2.0-3.0"),
    ],
)
def test_a_refused_range_says_why_and_what_is_allowed(stratum: str, why: str) -> None:
    with pytest.raises(Invalid) as caught:
        patients.check_stratum("ak", stratum, "enrollment.stratum")
    (problem,) = caught.value.problems
    assert problem.field == "enrollment.stratum"
    assert why in problem.message
    assert "e.g. 2.0-3.0 or 2.5-3.5" in problem.message
    assert "low bound 1.5 to 4.0, high bound at most 4.5, 0.5 to 1.5 wide" in problem.message
    assert "\x00" not in problem.message


def test_a_refused_copd_stratum_names_the_strata() -> None:
    with pytest.raises(Invalid) as caught:
        patients.check_stratum("copd", "very severe")
    assert "one of mild, moderate, severe" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("stratum", "urgent_low"),
    [("1.5-2.0", 1.0), ("1.5-2.5", 1.0), ("1.8-2.5", 1.3), ("1.9-2.9", 1.4), ("2.0-3.0", 1.5)],
)
def test_urgent_low_is_half_a_point_below_a_range_starting_under_two(stratum, urgent_low) -> None:
    assert inr_range(stratum).urgent_low == urgent_low
    assert inr_range(stratum).urgent_high == 5.0


def test_the_ranges_in_use_are_accepted() -> None:
    # CLINICAL.md and docs/alert-rules.md: standard, valves, low intensity, ESC/EACTS targets.
    for stratum in ("2.0-3.0", "2.5-3.5", "3.0-4.0", "3.5-4.5", "1.5-2.0", "1.5-2.5", "2.0-2.5"):
        assert accepts("ak", stratum), stratum


def test_the_enrolment_struct_offers_the_catalogue_programs() -> None:
    assert typing.get_args(patients.Program) == PROGRAMS
    with pytest.raises(UnknownProgram, match="hf"):
        default_schedules("hf", "mild")


def test_schedules_and_products_are_well_formed() -> None:
    for program, stratum in ACCEPTED:
        assert set(default_schedules(program, stratum)) <= set(METRICS)
    for code, product in AK_PRODUCTS.items():
        assert product.code == code and product.tablet_mg > 0
        assert product.substance in ("warfarin", "phenprocoumon")


def test_the_catalogue_imports_nothing_outside_the_core() -> None:
    """The catalogue is pure: importing it loads no web framework, MQTT client, database
    driver or outer package."""
    code = (
        "import json, sys\n"
        "import telemed.catalogue.metrics, telemed.catalogue.programs, "
        "telemed.catalogue.schedules\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    for forbidden in ("litestar", "paho", "psycopg", "alerts", "devices", "ingest", "apscheduler"):
        assert forbidden not in loaded
    assert programs.__name__.startswith("telemed.catalogue")
