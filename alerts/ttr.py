"""Time in therapeutic range (TTR) by Rosendaal linear interpolation (LOINC 72281-9).

Conventions (CLINICAL.md):
- a result's day is its calendar day in Europe/Copenhagen; results of one day are averaged
  (CMS179 keeps the value closest to 2.5 instead);
- between consecutive result days the INR is a straight line; time in range is the exact
  fraction of each interval where the line lies within [low, high] (bounds inclusive), in
  continuous time, not whole days;
- an interval longer than 56 days is not interpolated and leaves numerator and denominator,
  judged on its full length before any window clipping;
- a window [start, end] covers the calendar days start..end inclusive, i.e. day numbers
  [start, end + 1), with each result at the start of its day; intervals straddling the window
  are clipped, keeping the line between their two results; nothing is carried past the last
  result;
- censored meter values ("<0.8", ">8.0") enter at their limit and are flagged;
- fewer than two result days, or no interpolated time, gives no TTR and a reason.

Arithmetic is done in exact fractions, so hand-computed examples compare exactly.
"""

import itertools
import math
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Literal

import msgspec

from alerts.schedule import LOCAL_TZ

MAX_INTERVAL_DAYS = 56
METHOD = (
    "Rosendaal linear interpolation; calendar days in Europe/Copenhagen; same-day results "
    "averaged; exact crossing times within [low, high] inclusive; intervals over "
    f"{MAX_INTERVAL_DAYS} days excluded; window clipped on the interpolated line; nothing "
    "carried past the last result; censored values at their limit"
)


class InrResult(msgspec.Struct, frozen=True):
    measured_at: datetime
    value: float
    comparator: Literal["<", "<=", ">", ">="] | None = None


class TtrResult(msgspec.Struct, frozen=True):
    percent: float | None
    days_in_range: float
    days_total: float
    intervals: int
    excluded: int
    censored_used: bool
    reason: str | None
    method: str = METHOD
    excluded_days: float = 0.0


class _Day(msgspec.Struct, frozen=True):
    number: int
    value: Fraction
    censored: bool


def result_days(results: Sequence[InrResult]) -> list[_Day]:
    """One averaged value per local calendar day, in day order."""
    grouped: dict[int, list[InrResult]] = {}
    for result in results:
        if result.measured_at.tzinfo is None or result.measured_at.utcoffset() is None:
            raise ValueError("INR result measured_at must be timezone-aware")
        if not (math.isfinite(result.value) and result.value > 0):
            raise ValueError(f"INR value must be a positive number, got {result.value}")
        day = result.measured_at.astimezone(LOCAL_TZ).date().toordinal()
        grouped.setdefault(day, []).append(result)
    return [
        _Day(
            number,
            sum((Fraction(r.value) for r in items), Fraction(0)) / len(items),
            any(r.comparator is not None for r in items),
        )
        for number, items in sorted(grouped.items())
    ]


def _in_range_length(
    first: _Day, second: _Day, begin: Fraction, finish: Fraction, low: Fraction, high: Fraction
) -> Fraction:
    """Length of [begin, finish] where the line from `first` to `second` lies in [low, high]."""
    v0, v1 = first.value, second.value
    if v0 == v1:
        return finish - begin if low <= v0 <= high else Fraction(0)
    slope = (v1 - v0) / (second.number - first.number)
    at_low = first.number + (low - v0) / slope
    at_high = first.number + (high - v0) / slope
    enter, leave = min(at_low, at_high), max(at_low, at_high)
    return max(Fraction(0), min(leave, finish) - max(enter, begin))


def ttr(
    results: Sequence[InrResult],
    low: float,
    high: float,
    start: date | None = None,
    end: date | None = None,
) -> TtrResult:
    """TTR of `results` for the range [low, high] over the calendar days start..end."""
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"therapeutic range must satisfy 0 < low < high, got {low}-{high}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"window end {end} is before its start {start}")
    days = result_days(results)
    if len(days) < 2:
        return TtrResult(None, 0.0, 0.0, 0, 0, False, "fewer than two result days")
    lo, hi = Fraction(low), Fraction(high)
    window_begin = Fraction(start.toordinal()) if start is not None else None
    window_finish = Fraction(end.toordinal() + 1) if end is not None else None
    in_range = total = excluded_days = Fraction(0)
    used = excluded = 0
    censored = False
    for first, second in itertools.pairwise(days):
        begin = Fraction(first.number)
        finish = Fraction(second.number)
        if window_begin is not None:
            begin = max(begin, window_begin)
        if window_finish is not None:
            finish = min(finish, window_finish)
        if finish <= begin:
            continue
        if second.number - first.number > MAX_INTERVAL_DAYS:
            excluded += 1
            excluded_days += finish - begin
            continue
        used += 1
        total += finish - begin
        in_range += _in_range_length(first, second, begin, finish, lo, hi)
        censored = censored or first.censored or second.censored
    if total == 0:
        reason = (
            f"every interval in the window is longer than {MAX_INTERVAL_DAYS} days"
            if excluded
            else "no interpolated time within the window"
        )
        return TtrResult(None, 0.0, 0.0, 0, excluded, False, reason, METHOD, float(excluded_days))
    return TtrResult(
        percent=float(in_range * 100 / total),
        days_in_range=float(in_range),
        days_total=float(total),
        intervals=used,
        excluded=excluded,
        censored_used=censored,
        reason=None,
        excluded_days=float(excluded_days),
    )
