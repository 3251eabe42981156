"""Pure parts of the ingest path: the bounded history each rule needs decides exactly as the full
history does, and breaches fold into one alert change per patient and rule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.checks import Baseline, baseline_of, check_absolute, check_baseline, evaluate
from alerts.lifecycle import Existing, aggregate, merge
from alerts.rules import (
    AbsoluteRule,
    Bands,
    BaselineRule,
    Breach,
    ChangeRule,
    HistoryNeed,
    Obs,
    Rule,
    Severity,
    Sustain,
    history_needs,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RED, YELLOW = Severity.RED, Severity.YELLOW

COUNT = AbsoluteRule("spo2", Bands(red_low=85, yellow_low=90), Sustain(count=3, within_hours=6))
MINUTES = AbsoluteRule(
    "pulse",
    Bands(red_low=40, yellow_low=50, yellow_high=100, red_high=120),
    Sustain(minutes=30, within_hours=3, include_red=True),
)
CHANGE = ChangeRule("weight", delta=2.0, within_hours=12)
BASELINE = BaselineRule(
    "spo2", "points", yellow_drop=3, red_drop=6, window_days=0.5, min_readings=2, max_readings=4
)
RULES: list[Rule] = [COUNT, MINUTES, CHANGE, BASELINE]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bounded(reading: Obs, history: list[Obs], need: HistoryNeed) -> list[Obs]:
    """What the history SQL selects, written from HistoryNeed's description."""
    t = reading.measured_at
    prior = sorted(
        (o for o in history if o.metric == reading.metric and o.measured_at <= t and o != reading),
        key=lambda o: o.measured_at,
    )

    def within(hours: float) -> list[Obs]:
        return [o for o in prior if o.measured_at >= t - timedelta(hours=hours)]

    chosen: list[Obs] = within(need.latest_hours)[-need.latest :] if need.latest else []
    if need.span_minutes:
        span_start = t - timedelta(minutes=need.span_minutes)
        chosen += [o for o in prior if o.measured_at >= span_start]
        before = [o for o in within(need.span_hours) if o.measured_at < span_start]
        chosen += before[-1:]
    if need.extremes_hours:
        exact = [o for o in within(need.extremes_hours) if o.comparator is None]
        if exact:
            chosen.append(min(exact, key=lambda o: (o.value, o.measured_at)))
            chosen.append(min(exact, key=lambda o: (-o.value, o.measured_at)))
    return list(dict.fromkeys(chosen))


def baselines(reading: Obs, history: list[Obs], rules: list[Rule]) -> dict[str, Baseline | None]:
    return {
        r.key: baseline_of(r, reading, history)
        for r in rules
        if isinstance(r, BaselineRule) and r.metric == reading.metric
    }


VALUES = {"spo2": (82.0, 97.0), "pulse": (35.0, 125.0), "weight": (70.0, 76.0)}


@st.composite
def series(draw: st.DrawFn) -> tuple[Obs, list[Obs]]:
    metric = draw(st.sampled_from(sorted(VALUES)))
    lo, hi = VALUES[metric]
    value = st.floats(lo, hi, allow_nan=False).map(lambda v: round(v, 1))
    minutes = draw(st.lists(st.integers(-900, 0), min_size=0, max_size=25, unique=True))
    history = [Obs(metric, draw(value), at(m)) for m in minutes]
    if history and draw(st.booleans()):
        history[0] = Obs(metric, history[0].value, history[0].measured_at, "<")
    return Obs(metric, draw(value), at(0)), history


@settings(max_examples=400, deadline=None)
@given(series())
def test_bounded_history_decides_as_the_full_history(case: tuple[Obs, list[Obs]]) -> None:
    reading, history = case
    need = history_needs(RULES).get(reading.metric, HistoryNeed())
    full = evaluate(reading, history, RULES)
    cut = evaluate(
        reading, bounded(reading, history, need), RULES, baselines(reading, history, RULES)
    )
    assert cut == full


def test_history_needs_per_metric() -> None:
    needs = history_needs(RULES)
    assert needs["spo2"] == HistoryNeed(latest=2, latest_hours=6, baseline_days=0.5, baseline_max=4)
    assert needs["pulse"] == HistoryNeed(span_minutes=30, span_hours=3)
    assert needs["weight"] == HistoryNeed(extremes_hours=12)
    assert "temperature" not in history_needs([AbsoluteRule("temperature", Bands(red_high=39))])


def test_baseline_is_the_median_of_the_latest_max_readings() -> None:
    old = [Obs("spo2", 80, at(-600 + i)) for i in range(5)]
    recent = [Obs("spo2", v, at(-60 + i)) for i, v in enumerate([95, 96, 94, 95])]
    assert baseline_of(BASELINE, Obs("spo2", 91, at(0)), old + recent) == Baseline(95, 4)
    breach = check_baseline(BASELINE, Obs("spo2", 91, at(0)), old + recent)
    assert breach is not None and breach.severity is YELLOW and breach.detail["baseline"] == 95


def test_held_minutes_is_the_first_reading_old_enough() -> None:
    run = [Obs("pulse", 105, at(m)) for m in (-90, -60, -35, -20, -5)]
    breach = check_absolute(MINUTES, Obs("pulse", 104, at(0)), run)
    assert breach is not None and breach.detail["held_minutes"] == 35


# --- folding breaches into alerts ----------------------------------------------------------

P = uuid.uuid4()


def breach(severity: Severity, minutes: float, value: float, key: str = "absolute:spo2") -> Breach:
    return Breach(
        key, "spo2", severity, value, f"{severity.value} {value}", {"v": value}, at(minutes)
    )


def test_aggregate_counts_and_keeps_the_worst_latest_message() -> None:
    items = [
        (P, "copd", breach(YELLOW, 0, 89)),
        (P, "copd", breach(RED, -10, 86)),
        (P, "copd", breach(RED, -20, 84)),
        (P, "copd", breach(YELLOW, -5, 89.5, key="absolute:pulse")),
    ]
    spo2, pulse = aggregate(items, T0)
    assert (spo2.count, spo2.severity, spo2.message) == (3, RED, "red 86")
    assert (spo2.first_measured_at, spo2.last_measured_at, spo2.last_value) == (at(-20), at(0), 89)
    assert pulse.count == 1 and pulse.rule_key == "absolute:pulse"


def existing(severity: str, last: float, message: str = "old") -> Existing:
    return Existing(
        id=7,
        patient_id=P,
        rule_key="absolute:spo2",
        severity=severity,
        first_measured_at=at(last - 30),
        last_measured_at=at(last),
        last_value=88.0,
        count=2,
        message=message,
        detail={},
    )


def test_merge_upgrades_yellow_to_red_and_never_back() -> None:
    up = merge(existing("yellow", -60), aggregate([(P, "copd", breach(RED, 0, 85))], T0)[0])
    assert up is not None and up.upgraded and up.severity == "red" and up.count == 3
    assert up.message == "red 85" and up.last_value == 85
    down = merge(existing("red", -60), aggregate([(P, "copd", breach(YELLOW, 0, 89))], T0)[0])
    assert down is not None and not down.upgraded and down.severity == "red"
    assert down.message == "old" and down.last_value == 89 and down.last_measured_at == at(0)


def test_merge_of_a_late_reading_keeps_the_last_one() -> None:
    late = merge(existing("yellow", 0), aggregate([(P, "copd", breach(YELLOW, -300, 89))], T0)[0])
    assert late is not None and late.last_measured_at == at(0) and late.last_value == 88
    assert late.first_measured_at == at(-300) and late.message == "old" and late.count == 3


def test_merge_ignores_the_same_missed_slot_again() -> None:
    old = existing("yellow", 0)
    old.detail = {"slot_id": "2024-05-01"}
    same = Breach("missed:spo2", "spo2", YELLOW, None, "no", {"slot_id": "2024-05-01"}, at(0))
    assert merge(old, aggregate([(P, "copd", same)], T0)[0]) is None
    following = Breach("missed:spo2", "spo2", YELLOW, None, "no", {"slot_id": "2024-05-02"}, at(9))
    assert merge(old, aggregate([(P, "copd", following)], T0)[0]) is not None
