"""TTR against examples computed by hand; the arithmetic is in the comments."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.schedule import LOCAL_TZ
from alerts.ttr import InrResult, TtrResult, ttr

DAY0 = date(2024, 1, 1)


def on(day: int, value: float, hour: int = 9, comparator: str | None = None) -> InrResult:
    moment = datetime.combine(DAY0 + timedelta(days=day), datetime.min.time(), tzinfo=LOCAL_TZ)
    return InrResult(moment.replace(hour=hour), value, comparator)  # type: ignore[arg-type]


def d(day: int) -> date:
    return DAY0 + timedelta(days=day)


def test_rising_line_leaves_the_range_half_way() -> None:
    # 2.0 on day 0 -> 4.0 on day 10: INR = 2.0 + 0.2 t, reaches 3.0 at t = 5.
    # In range 0..5 = 5 days of 10 = 50 %.
    result = ttr([on(0, 2.0), on(10, 4.0)], 2.0, 3.0)
    assert (result.percent, result.days_in_range, result.days_total) == (50.0, 5.0, 10.0)
    assert (result.intervals, result.excluded, result.censored_used, result.reason) == (
        1,
        0,
        False,
        None,
    )


def test_line_crossing_both_bounds_counts_only_the_middle() -> None:
    # 1.0 -> 4.0 over 6 days: INR = 1.0 + 0.5 t; 2.0 at t = 2, 3.0 at t = 4.
    # In range 2..4 = 2 days of 6 = 33.33 %.
    result = ttr([on(0, 1.0), on(6, 4.0)], 2.0, 3.0)
    assert result.days_in_range == 2.0 and result.days_total == 6.0
    assert result.percent == pytest.approx(100 / 3)
    # Falling through the range gives the same: 4.0 -> 1.0 is in range 2..4 as well.
    assert ttr([on(0, 4.0), on(6, 1.0)], 2.0, 3.0).days_in_range == 2.0


def test_several_intervals_add_up() -> None:
    # Day 0 -> 7 at 2.5 throughout: 7 days in range.
    # Day 7 -> 14 from 2.5 to 3.5: INR = 2.5 + t/7, 3.0 at t = 3.5: 3.5 days in range.
    # Total 14 days, 10.5 in range = 75 %.
    result = ttr([on(0, 2.5), on(7, 2.5), on(14, 3.5)], 2.0, 3.0)
    assert (result.days_in_range, result.days_total, result.percent) == (10.5, 14.0, 75.0)
    assert result.intervals == 2


def test_order_of_the_input_does_not_matter() -> None:
    results = [on(14, 3.5), on(0, 2.5), on(7, 2.5)]
    assert ttr(results, 2.0, 3.0).percent == 75.0


def test_a_range_other_than_standard() -> None:
    # Mechanical valve range 2.5-3.5. 2.0 -> 4.0 over 10 days: INR = 2 + 0.2 t;
    # 2.5 at t = 2.5, 3.5 at t = 7.5: 5 days in range of 10 = 50 %.
    assert ttr([on(0, 2.0), on(10, 4.0)], 2.5, 3.5).days_in_range == 5.0


def test_bounds_are_inclusive_for_a_flat_line_on_the_bound() -> None:
    # 2.0 -> 2.0 over 5 days lies on the lower bound: all 5 days in range.
    assert ttr([on(0, 2.0), on(5, 2.0)], 2.0, 3.0).percent == 100.0
    assert ttr([on(0, 3.0), on(5, 3.0)], 2.0, 3.0).percent == 100.0
    assert ttr([on(0, 3.01), on(5, 3.01)], 2.0, 3.0).percent == 0.0


def test_window_clips_at_the_start_keeping_the_line() -> None:
    # 2.0 on 1 Jan (day 0) -> 4.0 on day 10. Window from day 2 (3 Jan): the line is still
    # 2.0 + 0.2 t, clipped to t in [2, 10]: 8 days, in range 2..5 = 3 days = 37.5 %.
    result = ttr([on(0, 2.0), on(10, 4.0)], 2.0, 3.0, start=d(2), end=d(30))
    assert (result.days_in_range, result.days_total, result.percent) == (3.0, 8.0, 37.5)


def test_window_end_includes_its_whole_day() -> None:
    # End day 2 (3 Jan) covers t up to 3 (the end of that day): t in [0, 3], value 2.0..2.6,
    # all in range: 3 of 3 days.
    result = ttr([on(0, 2.0), on(10, 4.0)], 2.0, 3.0, end=d(2))
    assert (result.days_in_range, result.days_total) == (3.0, 3.0)
    # Window of days 4 and 5: t in [4, 6]; in range until t = 5: 1 of 2 days.
    result = ttr([on(0, 2.0), on(10, 4.0)], 2.0, 3.0, start=d(4), end=d(5))
    assert (result.days_in_range, result.days_total, result.percent) == (1.0, 2.0, 50.0)


def test_consecutive_windows_tile_the_whole() -> None:
    # Days 0..9 and 10..19 of a 0 -> 20 series split it without a gap or overlap.
    results = [on(0, 2.0), on(10, 4.0), on(20, 2.0)]
    whole = ttr(results, 2.0, 3.0)
    first = ttr(results, 2.0, 3.0, start=d(0), end=d(9))
    second = ttr(results, 2.0, 3.0, start=d(10), end=d(19))
    assert first.days_total + second.days_total == whole.days_total == 20.0
    assert first.days_in_range + second.days_in_range == whole.days_in_range == 10.0


def test_nothing_is_carried_past_the_last_result() -> None:
    # Window days 0..29 but the last result is on day 10: the denominator stops at 10.
    result = ttr([on(0, 2.5), on(10, 2.5)], 2.0, 3.0, start=d(0), end=d(29))
    assert result.days_total == 10.0 and result.percent == 100.0
    after = ttr([on(0, 2.5), on(10, 2.5)], 2.0, 3.0, start=d(11), end=d(29))
    assert after.percent is None and after.reason == "no interpolated time within the window"


def test_interval_over_56_days_is_excluded() -> None:
    # Day 0 -> 57 is 57 days: not interpolated, out of numerator and denominator.
    # Day 57 -> 64 at 2.5: 7 days, all in range: 100 % of 7 days.
    result = ttr([on(0, 1.0), on(57, 2.5), on(64, 2.5)], 2.0, 3.0)
    assert (result.percent, result.days_total, result.excluded, result.intervals) == (
        100.0,
        7.0,
        1,
        1,
    )
    assert result.excluded_days == 57.0
    # 56 days exactly is still interpolated: 1.0 -> 2.5 over 56 days reaches 2.0 at
    # t = 56 * (1.0 / 1.5) = 37.33; in range 18.67 days; plus 7 = 25.67 of 63.
    kept = ttr([on(0, 1.0), on(56, 2.5), on(63, 2.5)], 2.0, 3.0)
    assert kept.excluded == 0 and kept.days_total == 63.0
    assert kept.days_in_range == pytest.approx(56 / 3 + 7)


def test_long_interval_is_judged_before_window_clipping() -> None:
    # The window holds only the last 7 days (50..56) of the 57-day interval: still excluded.
    result = ttr([on(0, 2.5), on(57, 2.5)], 2.0, 3.0, start=d(50), end=d(56))
    assert result.percent is None and result.excluded == 1
    assert result.reason == "every interval in the window is longer than 56 days"
    assert result.excluded_days == 7.0


def test_same_day_results_are_averaged() -> None:
    # 1.8 and 2.2 on day 0 average to 2.0; then 2.0 -> 4.0 over 10 days: 50 %.
    # (CMS179 would keep 2.2, closest to 2.5: 2.2 -> 4.0 reaches 3.0 at t = 10 * 0.8 / 1.8
    # = 4.44, so 44.4 % — the convention matters.)
    result = ttr([on(0, 1.8, hour=8), on(0, 2.2, hour=17), on(10, 4.0)], 2.0, 3.0)
    assert result.percent == 50.0 and result.intervals == 1


def test_censored_value_enters_at_its_limit_and_is_flagged() -> None:
    # ">8.0" on day 0 taken as 8.0; 8.0 -> 2.0 over 10 days: INR = 8 - 0.6 t, 3.0 at
    # t = 5 / 0.6 = 8.33; in range 8.33..10 = 1.67 days of 10 = 16.67 %.
    result = ttr([on(0, 8.0, comparator=">"), on(10, 2.0)], 2.0, 3.0)
    assert result.censored_used is True
    assert result.days_in_range == pytest.approx(5 / 3)
    assert result.percent == pytest.approx(50 / 3)
    # A censored result outside the window's intervals does not flag the window.
    clean = ttr([on(0, 8.0, comparator=">"), on(10, 2.5), on(20, 2.5)], 2.0, 3.0, start=d(10))
    assert clean.censored_used is False and clean.percent == 100.0


def test_result_day_is_the_copenhagen_calendar_day_across_dst() -> None:
    # 30 March 2024 23:30 UTC is 31 March 00:30 in Copenhagen (CET; CEST starts 01:00 UTC).
    # Local days: 21 Mar 2.5 -> 31 Mar 4.0 (10 days; 3.0 at t = 10 * 0.5 / 1.5 = 3.33) and
    # 31 Mar 4.0 -> 10 Apr 4.0 (10 days, none in range): 3.33 of 20 = 16.67 %.
    # Counting UTC days instead would give 9 + 11 days and 3 of 20 = 15 %.
    results = [
        InrResult(datetime(2024, 3, 21, 9, tzinfo=UTC), 2.5),
        InrResult(datetime(2024, 3, 30, 23, 30, tzinfo=UTC), 4.0),
        InrResult(datetime(2024, 4, 10, 9, tzinfo=UTC), 4.0),
    ]
    result = ttr(results, 2.0, 3.0)
    assert result.days_total == 20.0
    assert result.percent == pytest.approx(50 / 3)


def test_the_25_hour_day_counts_as_one_day() -> None:
    # 27 Oct 2024 lasts 25 hours locally; day counting is by calendar day: 26 -> 28 Oct is 2.
    results = [
        InrResult(datetime(2024, 10, 26, 10, tzinfo=UTC), 2.5),
        InrResult(datetime(2024, 10, 27, 0, 30, tzinfo=UTC), 2.5),  # 02:30 CEST, 27 Oct
        InrResult(datetime(2024, 10, 28, 10, tzinfo=UTC), 2.5),
    ]
    assert ttr(results, 2.0, 3.0).days_total == 2.0


@pytest.mark.parametrize(
    "results",
    [[], [on(0, 2.5)], [on(0, 2.5, hour=8), on(0, 2.7, hour=18)]],
)
def test_fewer_than_two_result_days_is_not_calculable(results: list[InrResult]) -> None:
    result = ttr(results, 2.0, 3.0)
    assert result.percent is None and result.reason == "fewer than two result days"
    assert result.days_total == 0.0


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="low < high"):
        ttr([on(0, 2.5), on(1, 2.5)], 3.0, 2.0)
    with pytest.raises(ValueError, match="before its start"):
        ttr([on(0, 2.5), on(1, 2.5)], 2.0, 3.0, start=d(5), end=d(4))
    with pytest.raises(ValueError, match="timezone-aware"):
        ttr([InrResult(datetime(2024, 1, 1), 2.5), on(1, 2.5)], 2.0, 3.0)
    with pytest.raises(ValueError, match="positive"):
        ttr([on(0, 0.0), on(1, 2.5)], 2.0, 3.0)


def test_method_is_described() -> None:
    method = ttr([on(0, 2.5), on(1, 2.5)], 2.0, 3.0).method
    assert "Rosendaal" in method and "averaged" in method and "56" in method


inr_values = st.integers(5, 120).map(lambda n: n / 10)
series = st.lists(
    st.tuples(st.integers(0, 400), inr_values, st.sampled_from([None, None, None, "<", ">"])),
    min_size=0,
    max_size=25,
)


def _results(items: list[tuple[int, float, str | None]]) -> list[InrResult]:
    return [on(day, value, comparator=comp) for day, value, comp in items]


def _check(result: TtrResult) -> None:
    assert 0.0 <= result.days_in_range <= result.days_total
    if result.percent is None:
        assert result.reason is not None
    else:
        assert 0.0 <= result.percent <= 100.0 and result.reason is None
        assert result.days_total > 0


@given(series, st.sampled_from([(2.0, 3.0), (2.5, 3.5), (3.0, 4.0)]))
def test_ttr_invariants(items: list[tuple[int, float, str | None]], rng: tuple) -> None:
    _check(ttr(_results(items), *rng))


@given(series, st.integers(0, 400), st.integers(1, 100))
def test_windowed_invariants_and_tiling(
    items: list[tuple[int, float, str | None]], start: int, length: int
) -> None:
    results = _results(items)
    cut = start + length // 2
    whole = ttr(results, 2.0, 3.0, start=d(start), end=d(start + length))
    left = ttr(results, 2.0, 3.0, start=d(start), end=d(cut))
    right = ttr(results, 2.0, 3.0, start=d(cut + 1), end=d(start + length))
    for part in (whole, left, right):
        _check(part)
    if whole.days_total:
        assert left.days_total + right.days_total == pytest.approx(whole.days_total)
        assert left.days_in_range + right.days_in_range == pytest.approx(whole.days_in_range)


@given(
    st.lists(st.integers(1, 56), min_size=1, max_size=20),
    st.integers(20, 30).map(lambda n: n / 10),
)
def test_constant_in_range_inr_is_100_percent(gaps: list[int], value: float) -> None:
    days = [0]
    for gap in gaps:
        days.append(days[-1] + gap)
    result = ttr([on(day, value) for day in days], 2.0, 3.0)
    assert result.percent == 100.0 and result.days_total == float(days[-1])


@given(series)
def test_widening_the_range_never_loses_time_in_range(
    items: list[tuple[int, float, str | None]],
) -> None:
    results = _results(items)
    narrow, wide = ttr(results, 2.0, 3.0), ttr(results, 1.5, 3.5)
    assert wide.days_in_range >= narrow.days_in_range
    assert wide.days_total == narrow.days_total
