import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.checks import (
    check_absolute,
    check_baseline,
    check_change,
    check_inr,
    check_missed,
    evaluate,
)
from alerts.defaults import (
    InvalidOverride,
    Override,
    UnknownProgram,
    UnknownStratum,
    active_rules,
    default_rules,
    effective_rules,
    parse_inr_range,
    rules_from_json,
    rules_to_json,
)
from alerts.rules import (
    AbsoluteRule,
    Bands,
    BaselineRule,
    Breach,
    ChangeRule,
    InrRule,
    InvalidRule,
    MissedRule,
    Obs,
    Severity,
    Sustain,
    band_level,
    classify,
    history_window,
    validate_rule_set,
)
from telemed.catalogue.schedules import Schedule

T0 = datetime(2024, 3, 10, 8, 0, tzinfo=UTC)
RED, YELLOW = Severity.RED, Severity.YELLOW


def obs(metric: str, value: float, hours: float = 0.0, comparator: str | None = None) -> Obs:
    return Obs(metric, value, T0 + timedelta(hours=hours), comparator)  # type: ignore[arg-type]


def severity(breach: Breach | None) -> Severity | None:
    return None if breach is None else breach.severity


SPO2 = AbsoluteRule("spo2", Bands(red_low=88, yellow_low=90))
PULSE = AbsoluteRule("pulse", Bands(red_low=40, yellow_low=50, yellow_high=100, red_high=120))


# --- severity and bands --------------------------------------------------------------------


def test_severity_orders_red_above_yellow() -> None:
    assert RED > YELLOW and YELLOW < RED and RED >= RED and max([YELLOW, RED]) is RED
    assert sorted([RED, YELLOW]) == [YELLOW, RED]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"red_low": 90, "yellow_low": 88}, "red_low=90 not below yellow_low=88"),
        ({"red_low": 88, "yellow_low": 88}, "red_low=88 not below yellow_low=88"),
        ({"yellow_low": 50, "yellow_high": 40}, "yellow_low=50 not below yellow_high=40"),
        ({"yellow_high": 130, "red_high": 120}, "yellow_high=130 not below red_high=120"),
        ({"red_low": 100, "red_high": 90}, "red_low=100 not below red_high=90"),
        ({}, "no limit"),
        ({"yellow_low": float("nan")}, "finite"),
    ],
)
def test_bands_reject_bad_ordering_with_a_clear_message(kwargs: dict, fragment: str) -> None:
    with pytest.raises(InvalidRule, match=fragment):
        Bands(**kwargs)


def test_bands_decode_runs_the_same_validation() -> None:
    with pytest.raises(msgspec.ValidationError, match="not below"):
        msgspec.json.decode(b'{"red_low": 92, "yellow_low": 90}', type=Bands)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (87.9, RED),
        (88.0, YELLOW),  # equal to the red limit: strict, so only yellow
        (89.99, YELLOW),
        (90.0, None),  # equal to the yellow limit: not a breach
        (100.0, None),
    ],
)
def test_low_bands_are_strict(value: float, expected: Severity | None) -> None:
    hit = classify(SPO2.bands, value)
    assert (hit.severity if hit else None) is expected


@pytest.mark.parametrize(
    ("value", "expected", "side"),
    [
        (39, RED, "low"),
        (40, YELLOW, "low"),
        (49.5, YELLOW, "low"),
        (50, None, None),
        (100, None, None),
        (100.5, YELLOW, "high"),
        (120, YELLOW, "high"),
        (120.01, RED, "high"),
    ],
)
def test_two_sided_bands(value: float, expected: Severity | None, side: str | None) -> None:
    hit = classify(PULSE.bands, value)
    assert (hit.severity if hit else None) is expected
    assert (hit.side if hit else None) == side


def test_value_equal_to_limit_after_unit_conversion_rounding_is_not_a_breach() -> None:
    # Arithmetic on decimal values (unit conversion, averaging) can land one ulp off a limit,
    # as 0.1 * 3 lands on 0.30000000000000004; such a value is the limit, not beyond it.
    celsius = math.nextafter(38.5, math.inf)
    hit = classify(Bands(yellow_high=37.5, red_high=38.5), celsius)
    assert hit is not None and hit.severity is YELLOW
    assert classify(Bands(yellow_low=0.3), 0.1 * 3) is None
    assert classify(Bands(yellow_high=0.3), 0.1 * 3) is None


@st.composite
def band_sets(draw: st.DrawFn, hundredths: bool = False) -> Bands:
    # Hundredths keep limits and values apart by far more than the rounding tolerance.
    numbers = (
        st.integers(-100_000, 100_000).map(lambda n: n / 100)
        if hundredths
        else st.floats(-1000, 1000, allow_nan=False)
    )
    limits = sorted(draw(st.lists(numbers, min_size=4, max_size=4, unique=True)))
    keep = draw(st.lists(st.booleans(), min_size=4, max_size=4).filter(any))
    names = ("red_low", "yellow_low", "yellow_high", "red_high")
    return Bands(**{n: v for n, v, k in zip(names, limits, keep, strict=True) if k})


def _rank(level: Severity | None) -> int:
    return 0 if level is None else level.rank


@given(band_sets(), st.floats(-2000, 2000), st.floats(-2000, 2000))
def test_band_severity_is_monotone_on_each_side(bands: Bands, a: float, b: float) -> None:
    lower, upper = min(a, b), max(a, b)
    assert _rank(band_level(bands, lower, "low")) >= _rank(band_level(bands, upper, "low"))
    assert _rank(band_level(bands, upper, "high")) >= _rank(band_level(bands, lower, "high"))


@given(band_sets(hundredths=True), st.integers(-200_000, 200_000).map(lambda n: n / 100))
def test_classify_agrees_with_the_limits(bands: Bands, value: float) -> None:
    hit = classify(bands, value)
    below = [v for v in (bands.red_low, bands.yellow_low) if v is not None and value < v]
    above = [v for v in (bands.yellow_high, bands.red_high) if v is not None and value > v]
    if not below and not above:
        assert hit is None
    else:
        assert hit is not None
        assert hit.side == ("low" if below else "high")


# --- absolute rules and sustain ------------------------------------------------------------


def test_absolute_breach_message_is_clinician_readable() -> None:
    breach = check_absolute(SPO2, obs("spo2", 87), [])
    assert breach is not None
    assert breach.message == "SpO2 87 % below red limit 88 %"
    assert (breach.rule_key, breach.metric, breach.severity) == ("absolute:spo2", "spo2", RED)
    assert breach.measured_at == T0 and breach.detail["limit"] == 88


def test_absolute_ignores_other_metrics_and_normal_values() -> None:
    assert check_absolute(SPO2, obs("pulse", 30), []) is None
    assert check_absolute(SPO2, obs("spo2", 95), []) is None


RECHECKED = AbsoluteRule("spo2", Bands(red_low=88, yellow_low=90), Sustain(count=2))


def test_single_yellow_reading_does_not_fire_with_count_two() -> None:
    assert check_absolute(RECHECKED, obs("spo2", 89), []) is None
    assert check_absolute(RECHECKED, obs("spo2", 89), [obs("spo2", 95, -1)]) is None


def test_two_consecutive_yellow_readings_fire() -> None:
    breach = check_absolute(RECHECKED, obs("spo2", 89), [obs("spo2", 89.5, -0.2)])
    assert severity(breach) is YELLOW
    assert breach is not None and "2 consecutive readings" in breach.message


def test_red_fires_immediately_and_red_history_sustains_yellow() -> None:
    assert severity(check_absolute(RECHECKED, obs("spo2", 85), [])) is RED
    # A red reading before a yellow one still shows the yellow band held.
    assert severity(check_absolute(RECHECKED, obs("spo2", 89), [obs("spo2", 85, -1)])) is YELLOW


def test_consecutive_means_by_measured_time_not_list_order() -> None:
    history = [
        obs("spo2", 95, -1),  # the latest before the reading: normal, breaks the run
        obs("spo2", 89, -5),
        obs("spo2", 89, -3),
    ]
    assert check_absolute(RECHECKED, obs("spo2", 89), history) is None
    shuffled = [obs("spo2", 89, -1), obs("spo2", 95, -5)]
    assert severity(check_absolute(RECHECKED, obs("spo2", 89), shuffled)) is YELLOW


def test_late_reading_is_judged_by_what_preceded_it() -> None:
    # Arrives after readings measured later; those must not count as its predecessors.
    later = [obs("spo2", 89, 2), obs("spo2", 89, 3)]
    assert check_absolute(RECHECKED, obs("spo2", 89), later) is None
    assert severity(check_absolute(RECHECKED, obs("spo2", 89), [*later, obs("spo2", 89, -2)]))


def test_the_reading_itself_in_history_is_not_counted_twice() -> None:
    reading = obs("spo2", 89)
    assert check_absolute(RECHECKED, reading, [reading]) is None


def test_sustain_ignores_readings_older_than_within_hours() -> None:
    rule = AbsoluteRule("spo2", Bands(yellow_low=90), Sustain(count=2, within_hours=24))
    assert check_absolute(rule, obs("spo2", 89), [obs("spo2", 89, -24.01)]) is None
    assert check_absolute(rule, obs("spo2", 89), [obs("spo2", 89, -24)]) is not None


def test_sustain_requires_the_same_side() -> None:
    rule = msgspec.structs.replace(PULSE, sustain=Sustain(count=2))
    assert check_absolute(rule, obs("pulse", 105), [obs("pulse", 45, -1)]) is None
    assert severity(check_absolute(rule, obs("pulse", 105), [obs("pulse", 110, -1)])) is YELLOW


def test_sustain_including_red() -> None:
    rule = AbsoluteRule(
        "spo2", Bands(red_low=88, yellow_low=90), Sustain(count=2, include_red=True)
    )
    assert check_absolute(rule, obs("spo2", 85), []) is None
    assert severity(check_absolute(rule, obs("spo2", 85), [obs("spo2", 89, -1)])) is YELLOW
    assert severity(check_absolute(rule, obs("spo2", 85), [obs("spo2", 86, -1)])) is RED


def test_sustain_counts_three_readings() -> None:
    rule = AbsoluteRule("spo2", Bands(yellow_low=90), Sustain(count=3))
    assert check_absolute(rule, obs("spo2", 89), [obs("spo2", 89, -1)]) is None
    history = [obs("spo2", 89, -1), obs("spo2", 88, -2)]
    assert check_absolute(rule, obs("spo2", 89), history) is not None


MINUTES = AbsoluteRule("spo2", Bands(red_low=85, yellow_low=90), Sustain(minutes=10))


def minutes(value: float, offset: float) -> Obs:
    return obs("spo2", value, offset / 60)


def test_sustain_minutes_needs_the_band_held_long_enough() -> None:
    run = [minutes(89, -4), minutes(88, -8)]
    assert check_absolute(MINUTES, minutes(89, 0), run) is None  # held 8 min only
    held = [*run, minutes(89.5, -10)]
    breach = check_absolute(MINUTES, minutes(89, 0), held)
    assert severity(breach) is YELLOW and breach is not None  # exactly 10 min: at least
    assert "held for 10 min" in breach.message


def test_sustain_minutes_breaks_on_a_normal_reading() -> None:
    history = [minutes(89, -2), minutes(96, -5), minutes(89, -12)]
    assert check_absolute(MINUTES, minutes(89, 0), history) is None


def test_sustain_validation() -> None:
    with pytest.raises(InvalidRule, match="exactly one"):
        Sustain()
    with pytest.raises(InvalidRule, match="exactly one"):
        Sustain(count=2, minutes=5)
    with pytest.raises(InvalidRule, match="cover"):
        Sustain(minutes=120, within_hours=1)


def test_censored_absolute_reading_is_judged_at_its_limit() -> None:
    breach = check_absolute(SPO2, obs("spo2", 80, comparator="<"), [])
    assert severity(breach) is RED and breach is not None and breach.detail["censored"]
    assert breach.message.startswith("SpO2 <80 %")


# --- baseline rules ------------------------------------------------------------------------

PEF = BaselineRule("pef", "percent", yellow_drop=20, red_drop=30, window_days=14, min_readings=3)


def daily(metric: str, values: list[float]) -> list[Obs]:
    return [obs(metric, v, -24 * (i + 1)) for i, v in enumerate(values)]


def test_baseline_needs_min_readings() -> None:
    assert check_baseline(PEF, obs("pef", 100), []) is None
    assert check_baseline(PEF, obs("pef", 100), daily("pef", [400, 400])) is None
    assert severity(check_baseline(PEF, obs("pef", 100), daily("pef", [400, 400, 400]))) is RED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (321, None),  # 19.75 % below 400
        (320, YELLOW),  # exactly 20 %: inclusive
        (281, YELLOW),  # 29.75 %
        (280, RED),  # exactly 30 %
        (450, None),  # a rise is not a PEF breach
    ],
)
def test_percent_drop_limits_are_inclusive(value: float, expected: Severity | None) -> None:
    history = daily("pef", [400, 390, 410, 400, 395])  # median 400
    assert severity(check_baseline(PEF, obs("pef", value), history)) is expected


def test_fev1_exact_percent_survives_float_rounding() -> None:
    rule = BaselineRule("fev1", "percent", yellow_drop=20, red_drop=30)
    history = daily("fev1", [1.5, 1.5, 1.5])
    # 1.5 -> 1.2 is 20 % and 1.5 -> 1.05 is 30 %, though neither is exact in binary.
    assert severity(check_baseline(rule, obs("fev1", 1.2), history)) is YELLOW
    assert severity(check_baseline(rule, obs("fev1", 1.05), history)) is RED


def test_baseline_message_and_detail() -> None:
    breach = check_baseline(PEF, obs("pef", 270), daily("pef", [400, 380, 420]))
    assert breach is not None
    assert breach.message == (
        "PEF 270 L/min is 32.5 % below baseline 400 L/min "
        "(median of 3 readings over 14 days; red limit 30 %)"
    )
    assert breach.detail["baseline"] == 400 and breach.detail["direction"] == "drop"


def test_baseline_is_a_median_robust_to_one_outlier() -> None:
    history = daily("pef", [400, 400, 100, 400, 400])
    assert check_baseline(PEF, obs("pef", 330), history) is None  # 17.5 % below median 400


def test_baseline_uses_only_the_window_before_the_reading() -> None:
    old = [obs("pef", 500, -24 * 15), obs("pef", 500, -24 * 16), obs("pef", 500, -24 * 17)]
    later = [obs("pef", 500, 1), obs("pef", 500, 2), obs("pef", 500, 3)]
    assert check_baseline(PEF, obs("pef", 300), old + later) is None
    edge = [obs("pef", 500, -24 * 14), obs("pef", 500, -1), obs("pef", 500, -2)]
    assert check_baseline(PEF, obs("pef", 300), edge) is not None  # 14 days back is inside


def test_baseline_skips_censored_readings() -> None:
    history = [*daily("pef", [400, 400]), obs("pef", 900, -5, comparator=">")]
    assert check_baseline(PEF, obs("pef", 200), history) is None
    assert check_baseline(PEF, obs("pef", 200, comparator="<"), daily("pef", [400] * 3)) is None


def test_spo2_points_drop_and_cat_rise() -> None:
    spo2 = BaselineRule("spo2", "points", yellow_drop=3)
    history = daily("spo2", [95, 96, 94, 95])  # median 95
    assert check_baseline(spo2, obs("spo2", 93), history) is None
    breach = check_baseline(spo2, obs("spo2", 92), history)
    assert severity(breach) is YELLOW and breach is not None
    assert "3 points below baseline 95 %" in breach.message
    cat = BaselineRule("cat", "points", yellow_rise=4)
    cats = daily("cat", [10, 12, 11])  # median 11
    assert check_baseline(cat, obs("cat", 14), cats) is None
    assert severity(check_baseline(cat, obs("cat", 15), cats)) is YELLOW
    assert check_baseline(cat, obs("cat", 2), cats) is None  # improvement


def test_baseline_validation() -> None:
    with pytest.raises(InvalidRule, match="drop or rise"):
        BaselineRule("pef", "percent")
    with pytest.raises(InvalidRule, match="red_drop must be above"):
        BaselineRule("pef", "percent", yellow_drop=30, red_drop=20)
    with pytest.raises(InvalidRule, match="below 100"):
        BaselineRule("pef", "percent", red_drop=100)


# --- change rules --------------------------------------------------------------------------

WEIGHT = ChangeRule("weight", delta=2.0, within_hours=72)


@pytest.mark.parametrize(
    ("now", "expected"),
    [(82.0, YELLOW), (78.0, YELLOW), (81.9, None), (78.1, None), (80.0, None)],
)
def test_weight_change_either_direction(now: float, expected: Severity | None) -> None:
    assert severity(check_change(WEIGHT, obs("weight", now), [obs("weight", 80.0, -48)])) is (
        expected
    )


def test_change_window_is_inclusive_and_by_measured_time() -> None:
    assert check_change(WEIGHT, obs("weight", 83), [obs("weight", 80, -72)]) is not None
    assert check_change(WEIGHT, obs("weight", 83), [obs("weight", 80, -72.001)]) is None
    assert check_change(WEIGHT, obs("weight", 83), [obs("weight", 80, 1)]) is None
    assert check_change(WEIGHT, obs("weight", 83), []) is None


def test_change_reports_the_largest_change() -> None:
    history = [obs("weight", 81, -10), obs("weight", 80, -50), obs("weight", 84, -60)]
    breach = check_change(WEIGHT, obs("weight", 83), history)
    assert breach is not None and breach.detail["change"] == 3
    assert breach.message == (
        "Weight 83 kg, up 3 kg from 80 kg on 2024-03-08 07:00 (limit 2 kg within 3 days)"
    )


def test_change_direction_filter() -> None:
    rise = ChangeRule("weight", delta=2.0, direction="rise")
    assert check_change(rise, obs("weight", 77), [obs("weight", 80, -5)]) is None
    assert check_change(rise, obs("weight", 83), [obs("weight", 80, -5)]) is not None


# --- INR -----------------------------------------------------------------------------------

INR = InrRule(low=2.0, high=3.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.4, RED),
        (1.5, RED),  # urgent bound inclusive
        (1.51, YELLOW),
        (1.99, YELLOW),
        (2.0, None),  # range bounds are in range
        (2.5, None),
        (3.0, None),
        (3.01, YELLOW),
        (4.99, YELLOW),
        (5.0, RED),  # Danish labs phone above 5.0; 5.0 itself urgent
        (7.5, RED),
    ],
)
def test_inr_bands(value: float, expected: Severity | None) -> None:
    assert severity(check_inr(INR, obs("inr", value))) is expected


@pytest.mark.parametrize(("comparator", "limit"), [("<", 0.8), (">", 8.0)])
def test_censored_inr_is_urgent(comparator: str, limit: float) -> None:
    breach = check_inr(INR, obs("inr", limit, comparator=comparator))
    assert severity(breach) is RED and breach is not None
    assert (
        breach.message
        == f"INR {comparator}{limit:.1f} is outside the meter's measuring range: urgent"
    )
    assert breach.detail["censored"] is True


def test_inr_messages_and_other_ranges() -> None:
    breach = check_inr(InrRule(2.5, 3.5), obs("inr", 2.4))
    assert breach is not None and breach.message == "INR 2.4 below therapeutic range 2.5–3.5"
    assert check_inr(InrRule(3.0, 4.0), obs("inr", 4.0)) is None
    assert check_inr(INR, obs("spo2", 1.0)) is None


def test_inr_rule_validation() -> None:
    with pytest.raises(InvalidRule, match="urgent_low < low"):
        InrRule(low=1.5, high=2.5)
    with pytest.raises(InvalidRule):
        InrRule(low=3.0, high=2.0)


# --- evaluate, keys, window ----------------------------------------------------------------


def test_evaluate_applies_every_matching_rule() -> None:
    rules = default_rules("copd", "severe")
    history = [*daily("spo2", [95, 95, 95]), obs("spo2", 86, -0.1)]
    breaches = evaluate(obs("spo2", 87), history, rules)
    assert {(b.rule_key, b.severity) for b in breaches} == {
        ("absolute:spo2", RED),
        ("baseline:spo2", YELLOW),
    }
    assert evaluate(obs("mrc", 5), history, rules) == []
    assert evaluate(obs("spo2", 95), [], rules) == []


def test_evaluate_leaves_missed_rules_to_the_scheduler() -> None:
    rule = MissedRule("spo2", Schedule(every_n_days=1))
    assert evaluate(obs("spo2", 50), [], [rule]) == []


def test_check_missed_names_the_slot() -> None:
    rule = MissedRule("inr", Schedule(every_n_days=7, grace_hours=24))
    enrolled = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    breach = check_missed(rule, None, enrolled, datetime(2024, 3, 16, 12, tzinfo=UTC))
    assert breach is not None and breach.rule_key == "missed:inr"
    # Slots on 1, 8 and 15 March at 10:00 local (09:00 UTC); none was measured.
    assert breach.detail["slot_id"] == "2024-03-15" and breach.detail["missed_slots"] == 3
    assert "3 scheduled measurements missed in a row" in breach.message
    measured = datetime(2024, 3, 12, tzinfo=UTC)
    assert check_missed(rule, measured, enrolled, datetime(2024, 3, 16, 12, tzinfo=UTC)) is None


def test_rule_keys_are_stable() -> None:
    keys = [r.key for r in default_rules("copd", "mild")]
    assert keys == [
        "absolute:spo2",
        "absolute:pulse",
        "absolute:resp_rate",
        "absolute:temperature",
        "baseline:spo2",
        "baseline:fev1",
        "baseline:pef",
        "baseline:cat",
        "change:weight",
        "missed:spo2",
    ]
    assert [r.key for r in default_rules("ak", "2.0-3.0")] == ["inr:range", "missed:inr"]


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(InvalidRule, match="absolute:spo2"):
        validate_rule_set([SPO2, RECHECKED])


def test_history_window_covers_every_rule() -> None:
    assert history_window(default_rules("copd", "severe")) == timedelta(days=28)
    assert history_window(default_rules("ak", "2.0-3.0")) == timedelta(0)
    assert history_window([RECHECKED, WEIGHT]) == timedelta(hours=192)
    assert history_window([]) == timedelta(0)


def test_obs_requires_aware_time_and_finite_value() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Obs("spo2", 90, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="finite"):
        Obs("spo2", float("nan"), T0)


# --- defaults ------------------------------------------------------------------------------


def _bands(program: str, stratum: str, key: str) -> Bands:
    rule = next(r for r in default_rules(program, stratum) if r.key == key)
    assert isinstance(rule, AbsoluteRule)
    return rule.bands


def test_copd_defaults_follow_the_clinical_reference() -> None:
    assert _bands("copd", "severe", "absolute:spo2") == Bands(red_low=88, yellow_low=90)
    for stratum in ("mild", "moderate"):
        assert _bands("copd", stratum, "absolute:spo2") == Bands(red_low=90, yellow_low=92)
    assert _bands("copd", "severe", "absolute:pulse") == Bands(40, 50, 100, 120)
    assert _bands("copd", "severe", "absolute:temperature") == Bands(
        yellow_high=37.5, red_high=38.5
    )
    resp = _bands("copd", "severe", "absolute:resp_rate")
    assert (resp.yellow_high, resp.red_high) == (24, 30)


def test_copd_default_behaviour_end_to_end() -> None:
    rules = default_rules("copd", "severe")
    # One low SpO2 (89) pages nobody; the re-measurement confirms it; 87 is red at once.
    assert evaluate(obs("spo2", 89), [], rules) == []
    assert [b.severity for b in evaluate(obs("spo2", 89), [obs("spo2", 89, -0.1)], rules)] == [
        YELLOW
    ]
    assert [b.severity for b in evaluate(obs("spo2", 87), [], rules)] == [RED]
    assert [b.rule_key for b in evaluate(obs("weight", 82), [obs("weight", 80, -70)], rules)] == [
        "change:weight"
    ]
    assert [b.severity for b in evaluate(obs("temperature", 38.6), [], rules)] == [RED]
    fev1 = daily("fev1", [1.0, 1.0, 1.0])
    assert [b.severity for b in evaluate(obs("fev1", 0.7), fev1, rules)] == [RED]
    cat = daily("cat", [20, 20, 20])
    assert [b.severity for b in evaluate(obs("cat", 24), cat, rules)] == [YELLOW]


@pytest.mark.parametrize(
    ("stratum", "low", "high", "urgent_low"),
    [
        ("2.0-3.0", 2.0, 3.0, 1.5),
        ("2.5-3.5", 2.5, 3.5, 1.5),
        ("3.0-4.0", 3, 4, 1.5),
        # Ranges starting below 2.0 are urgent 0.5 below their low bound (docs/alert-rules.md).
        ("1.5-2.5", 1.5, 2.5, 1.0),
        ("1.8-2.5", 1.8, 2.5, 1.3),
    ],
)
def test_ak_defaults_use_the_stratum_range(
    stratum: str, low: float, high: float, urgent_low: float
) -> None:
    inr = default_rules("ak", stratum)[0]
    assert inr == InrRule(low=low, high=high, urgent_low=urgent_low, urgent_high=5.0)
    assert parse_inr_range(stratum) == (low, high)


@pytest.mark.parametrize(
    ("program", "stratum", "error"),
    [
        ("copd", "very severe", UnknownStratum),
        ("copd", "2.0-3.0", UnknownStratum),
        ("ak", "severe", UnknownStratum),
        ("ak", "2,0-3,0", UnknownStratum),
        ("ak", "4.0-5.0", UnknownStratum),  # holds the urgent bound 5.0
        ("ak", "1.0-1.4", UnknownStratum),  # below any range in use
        ("ak", "3.0-2.0", UnknownStratum),
        ("hf", "mild", UnknownProgram),
    ],
)
def test_unknown_program_or_stratum_is_a_clear_error(
    program: str, stratum: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=stratum if error is UnknownStratum else program):
        default_rules(program, stratum)


@pytest.mark.parametrize(
    ("program", "stratum"),
    [("copd", "mild"), ("copd", "moderate"), ("copd", "severe"), ("ak", "2.5-3.5")],
)
def test_rules_round_trip_through_json(program: str, stratum: str) -> None:
    rules = default_rules(program, stratum)
    data = rules_to_json(rules)
    assert rules_from_json(data) == rules
    assert rules_from_json(data.decode()) == rules


def test_stored_rules_are_validated_on_decode() -> None:
    bad = b'[{"kind": "absolute", "metric": "spo2", "bands": {"red_low": 95, "yellow_low": 90}}]'
    with pytest.raises(msgspec.ValidationError, match="not below"):
        rules_from_json(bad)
    with pytest.raises(msgspec.ValidationError):
        rules_from_json(b'[{"kind": "nonsense"}]')


# --- overrides -----------------------------------------------------------------------------

SET_AT = datetime(2024, 3, 1, 12, tzinfo=UTC)


def override(key: str, field: str, value: float | bool | None, hours: float = 0) -> Override:
    return Override(key, field, value, "dr.hansen", SET_AT + timedelta(hours=hours), "habitual 87")


def test_effective_rules_without_overrides_are_the_defaults() -> None:
    defaults = default_rules("copd", "severe")
    effective = effective_rules(defaults, [])
    assert [e.rule for e in effective] == defaults
    assert all(f.source == "default" for e in effective for f in e.fields)
    assert active_rules(effective) == defaults


def test_band_override_says_where_each_value_comes_from() -> None:
    defaults = default_rules("copd", "severe")
    effective = effective_rules(
        defaults,
        [override("absolute:spo2", "red_low", 85), override("absolute:spo2", "yellow_low", 87)],
    )
    spo2 = next(e for e in effective if e.key == "absolute:spo2")
    assert isinstance(spo2.rule, AbsoluteRule) and spo2.rule.bands == Bands(85, 87)
    assert spo2.rule.sustain == defaults[0].sustain  # type: ignore[union-attr]
    fields = {f.field: f for f in spo2.fields}
    assert fields["red_low"].source == "override" and fields["red_low"].default == 88
    assert (fields["red_low"].set_by, fields["red_low"].reason) == ("dr.hansen", "habitual 87")
    assert fields["red_high"].source == "default" and fields["red_high"].value is None
    assert severity(check_absolute(spo2.rule, obs("spo2", 84), [])) is RED
    assert severity(check_absolute(spo2.rule, obs("spo2", 86), [obs("spo2", 86, -1)])) is YELLOW
    assert check_absolute(spo2.rule, obs("spo2", 88), [obs("spo2", 88, -1)]) is None


def test_latest_override_wins_and_none_removes_a_limit() -> None:
    defaults = default_rules("copd", "mild")
    overrides = [
        override("absolute:pulse", "yellow_high", 110, hours=2),
        override("absolute:pulse", "yellow_high", 105, hours=1),
        override("absolute:pulse", "red_low", None),
    ]
    pulse = next(e for e in effective_rules(defaults, overrides) if e.key == "absolute:pulse")
    assert pulse.rule.bands == Bands(None, 50, 110, 120)  # type: ignore[union-attr]


def test_override_can_switch_a_rule_off_and_set_integer_fields() -> None:
    defaults = default_rules("copd", "mild")
    effective = effective_rules(
        defaults,
        [
            override("change:weight", "enabled", False),
            override("baseline:pef", "min_readings", 5.0),
            override("missed:spo2", "grace_hours", 6),
        ],
    )
    keys = [r.key for r in active_rules(effective)]
    assert "change:weight" not in keys and len(keys) == len(defaults) - 1
    pef = next(e.rule for e in effective if e.key == "baseline:pef")
    assert isinstance(pef, BaselineRule) and pef.min_readings == 5
    missed_rule = next(e.rule for e in effective if e.key == "missed:spo2")
    assert isinstance(missed_rule, MissedRule) and missed_rule.schedule.grace_hours == 6


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (override("absolute:fev1", "red_low", 1), "unknown rule"),
        (override("absolute:spo2", "colour", 1), "no overridable field"),
        (override("absolute:spo2", "yellow_low", 80), "invalid"),  # below red_low 88
        (override("baseline:pef", "min_readings", 2.5), "whole number"),
        (override("inr:range", "low", None), "cannot be removed"),
        (override("absolute:spo2", "enabled", 1), "true or false"),
        (override("absolute:spo2", "red_low", True), "needs a number"),
    ],
)
def test_bad_overrides_are_rejected(item: Override, fragment: str) -> None:
    defaults = default_rules("copd", "severe") + default_rules("ak", "2.0-3.0")
    with pytest.raises(InvalidOverride, match=fragment):
        effective_rules(defaults, [item])


def test_inr_range_override_and_json_override_records() -> None:
    stored = msgspec.json.encode([override("inr:range", "high", 3.5)])
    records = msgspec.json.decode(stored, type=list[Override])
    effective = effective_rules(default_rules("ak", "2.0-3.0"), records)
    assert effective[0].rule == InrRule(2.0, 3.5)
    assert check_inr(effective[0].rule, obs("inr", 3.4)) is None  # type: ignore[arg-type]
