"""Judging one reading against the rules: `evaluate(reading, history, rules)` and one
`check_*` function per rule kind, each returning a Breach (with a sentence for clinicians) or
None.

A check looks only at readings measured at or before the reading (by measured time, whatever
the arrival order), so a late reading is judged against what preceded it when it was taken.
The baseline of a reading can be passed in already computed (`Baseline`), as the database
computes it for the ingest path; otherwise it is the median of the history given.
"""

import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from alerts.rules import (
    AbsoluteRule,
    BandHit,
    BaselineRule,
    Breach,
    ChangeRule,
    InrRule,
    MissedRule,
    Obs,
    Rule,
    Severity,
    Sustain,
    _ge,
    _limit,
    _lt,
    band_level,
    classify,
)
from alerts.schedule import LOCAL_TZ, missed


class Baseline(NamedTuple):
    """The median of a reading's baseline window and how many readings it is the median of."""

    value: float
    readings: int


_METRICS: dict[str, tuple[str, str]] = {
    "spo2": ("SpO2", " %"),
    "pulse": ("Pulse", " /min"),
    "resp_rate": ("Respiratory rate", " /min"),
    "fev1": ("FEV1", " L"),
    "pef": ("PEF", " L/min"),
    "weight": ("Weight", " kg"),
    "temperature": ("Temperature", " °C"),
    "cat": ("CAT score", ""),
    "mrc": ("MRC dyspnoea grade", ""),
    "inr": ("INR", ""),
}


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _inr(value: float) -> str:
    text = _num(value)
    return text if "." in text else f"{text}.0"


def _show(metric: str, value: float) -> str:
    return f"{_num(value)}{_METRICS.get(metric, (metric, ''))[1]}"


def _name(metric: str) -> str:
    return _METRICS.get(metric, (metric, ""))[0]


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def _prior(reading: Obs, history: Sequence[Obs], since: datetime, exact: bool) -> list[Obs]:
    """Same-metric readings measured in [since, reading], oldest first, without the reading."""
    found = [
        obs
        for obs in history
        if obs.metric == reading.metric
        and since <= obs.measured_at <= reading.measured_at
        and obs != reading
        and not (exact and obs.comparator is not None)
    ]
    found.sort(key=lambda obs: obs.measured_at)
    return found


def check_absolute(rule: AbsoluteRule, reading: Obs, history: Sequence[Obs]) -> Breach | None:
    if reading.metric != rule.metric:
        return None
    hit = classify(rule.bands, reading.value)
    if hit is None:
        return None
    severity = hit.severity
    detail: dict[str, Any] = {"side": hit.side}
    if rule.sustain is not None:
        sustained, held = _sustained(rule, rule.sustain, reading, history, hit)
        if sustained is None:
            return None
        severity = sustained
        detail.update(held)
    limit = getattr(rule.bands, f"{severity.value}_{hit.side}")
    where = "below" if hit.side == "low" else "above"
    message = (
        f"{_name(rule.metric)} {_censored(reading)}{_show(rule.metric, reading.value)} {where} "
        f"{severity.value} limit {_show(rule.metric, limit)}"
    )
    if "readings" in detail:
        message += f" ({detail['readings']} consecutive readings)"
    elif "held_minutes" in detail:
        message += f" (held for {_num(detail['held_minutes'])} min)"
    detail["limit"] = limit
    if reading.comparator is not None:
        detail["censored"] = True
    return _breach(rule.key, reading, severity, message, detail)


def _censored(reading: Obs) -> str:
    return reading.comparator or ""


def _sustained(
    rule: AbsoluteRule, sustain: Sustain, reading: Obs, history: Sequence[Obs], hit: BandHit
) -> tuple[Severity | None, dict[str, Any]]:
    since = reading.measured_at - timedelta(hours=sustain.within_hours)
    prior = _prior(reading, history, since, exact=False)
    candidates = [hit.severity]
    if hit.severity is Severity.RED and _limit(rule.bands, Severity.YELLOW, hit.side) is not None:
        candidates.append(Severity.YELLOW)
    for severity in candidates:
        if severity is Severity.RED and not sustain.include_red:
            return severity, {}

        def in_band(obs: Obs, severity: Severity = severity) -> bool:
            level = band_level(rule.bands, obs.value, hit.side)
            return level is not None and level >= severity

        if sustain.count is not None:
            need = sustain.count - 1
            recent = prior[len(prior) - need :] if need else []
            if len(recent) == need and all(in_band(obs) for obs in recent):
                return severity, {"readings": sustain.count}
        elif sustain.minutes is not None:
            held = _held_minutes(reading, prior, in_band, sustain.minutes)
            if _ge(held, sustain.minutes):
                return severity, {"held_minutes": held}
    return None, {}


def _held_minutes(
    reading: Obs, prior: list[Obs], in_band: Callable[[Obs], bool], minutes: float
) -> float:
    """Minutes back to the earliest reading of the unbroken in-band run, walking back from the
    reading and stopping at the first one at least `minutes` old: whatever lies before it
    cannot change the decision, so a history cut just beyond that reading decides the same."""
    start = reading.measured_at
    for obs in reversed(prior):
        if not in_band(obs):
            break
        start = obs.measured_at
        if _ge((reading.measured_at - start).total_seconds() / 60, minutes):
            break
    return (reading.measured_at - start).total_seconds() / 60


def baseline_of(rule: BaselineRule, reading: Obs, history: Sequence[Obs]) -> Baseline | None:
    """The median of the exact readings in the window before the reading, at most the latest
    `max_readings`; None when there are none."""
    since = reading.measured_at - timedelta(days=rule.window_days)
    values = [obs.value for obs in _prior(reading, history, since, exact=True)]
    values = values[-rule.max_readings :]
    return Baseline(statistics.median(values), len(values)) if values else None


def check_baseline(rule: BaselineRule, reading: Obs, history: Sequence[Obs]) -> Breach | None:
    if reading.metric != rule.metric or reading.comparator is not None:
        return None
    return judge_baseline(rule, reading, baseline_of(rule, reading, history))


def judge_baseline(rule: BaselineRule, reading: Obs, baseline: Baseline | None) -> Breach | None:
    """Judge a reading against its baseline, however it was computed (`baseline_of` here, the
    same median in SQL on the ingest path)."""
    if reading.metric != rule.metric or reading.comparator is not None:
        return None
    if baseline is None or baseline.readings < rule.min_readings:
        return None
    count = baseline.readings
    median = baseline.value
    if rule.mode == "percent" and not median > 0:
        return None
    diff = reading.value - median
    amount = abs(diff) * 100 / median if rule.mode == "percent" else abs(diff)
    if diff < 0:
        direction, yellow, red = "below", rule.yellow_drop, rule.red_drop
    else:
        direction, yellow, red = "above", rule.yellow_rise, rule.red_rise
    if red is not None and _ge(amount, red):
        severity, limit = Severity.RED, red
    elif yellow is not None and _ge(amount, yellow):
        severity, limit = Severity.YELLOW, yellow
    else:
        return None
    unit = " %" if rule.mode == "percent" else " points"
    message = (
        f"{_name(rule.metric)} {_show(rule.metric, reading.value)} is {_num(amount)}{unit} "
        f"{direction} baseline {_show(rule.metric, median)} (median of {count} readings "
        f"over {_num(rule.window_days)} days; {severity.value} limit {_num(limit)}{unit})"
    )
    detail = {
        "baseline": median,
        "baseline_readings": count,
        "window_days": rule.window_days,
        "mode": rule.mode,
        "direction": "drop" if diff < 0 else "rise",
        "amount": amount,
        "limit": limit,
    }
    return _breach(rule.key, reading, severity, message, detail)


def check_change(rule: ChangeRule, reading: Obs, history: Sequence[Obs]) -> Breach | None:
    if reading.metric != rule.metric or reading.comparator is not None:
        return None
    since = reading.measured_at - timedelta(hours=rule.within_hours)
    best: tuple[float, Obs] | None = None
    for obs in _prior(reading, history, since, exact=True):
        diff = reading.value - obs.value
        if (rule.direction == "rise" and diff < 0) or (rule.direction == "drop" and diff > 0):
            continue
        if _ge(abs(diff), rule.delta) and (best is None or abs(diff) > abs(best[0])):
            best = (diff, obs)
    if best is None:
        return None
    diff, base = best
    hours = rule.within_hours
    span = f"{_num(hours / 24)} days" if hours % 24 == 0 else f"{_num(hours)} h"
    message = (
        f"{_name(rule.metric)} {_show(rule.metric, reading.value)}, "
        f"{'up' if diff > 0 else 'down'} {_show(rule.metric, abs(diff))} from "
        f"{_show(rule.metric, base.value)} on {_local(base.measured_at)} "
        f"(limit {_show(rule.metric, rule.delta)} within {span})"
    )
    detail = {
        "change": diff,
        "compared_value": base.value,
        "compared_at": base.measured_at.isoformat(),
        "limit": rule.delta,
        "within_hours": hours,
    }
    return _breach(rule.key, reading, rule.severity, message, detail)


def check_inr(rule: InrRule, reading: Obs, history: Sequence[Obs] = ()) -> Breach | None:
    if reading.metric != InrRule.metric:
        return None
    value, shown = reading.value, f"INR {_censored(reading)}{_inr(reading.value)}"
    span = f"{_inr(rule.low)}–{_inr(rule.high)}"
    detail: dict[str, Any] = {"low": rule.low, "high": rule.high}
    if reading.comparator is not None:
        severity = Severity.RED
        message = f"{shown} is outside the meter's measuring range: urgent"
        detail["censored"] = True
    elif _ge(value, rule.urgent_high):
        severity = Severity.RED
        message = f"{shown} at or above urgent limit {_inr(rule.urgent_high)}"
        detail["limit"] = rule.urgent_high
    elif _ge(rule.urgent_low, value):
        severity = Severity.RED
        message = f"{shown} at or below urgent limit {_inr(rule.urgent_low)}"
        detail["limit"] = rule.urgent_low
    elif _lt(value, rule.low) or _lt(rule.high, value):
        severity = Severity.YELLOW
        where = "below" if value < rule.low else "above"
        message = f"{shown} {where} therapeutic range {span}"
    else:
        return None
    return _breach(rule.key, reading, severity, message, detail)


def check_missed(
    rule: MissedRule, last_measured: datetime | None, enrolled_at: datetime, now: datetime
) -> Breach | None:
    """The no-data alert for the latest passed slot; `detail['slot_id']` names the slot."""
    info = missed(rule.schedule, last_measured, enrolled_at, now)
    if info is None:
        return None
    message = (
        f"No {_name(rule.metric)} measurement for the slot due {_local(info.due_at)} "
        f"(missed at {_local(info.deadline)})"
    )
    if info.missed_slots > 1:
        message += f"; {info.missed_slots} scheduled measurements missed in a row"
    detail = {
        "slot_id": info.slot_id,
        "due_at": info.due_at.isoformat(),
        "deadline": info.deadline.isoformat(),
        "missed_slots": info.missed_slots,
        "last_measured": info.last_measured.isoformat() if info.last_measured else None,
    }
    return Breach(rule.key, rule.metric, rule.severity, None, message, detail, info.deadline)


def _breach(
    key: str, reading: Obs, severity: Severity, message: str, detail: dict[str, Any]
) -> Breach:
    return Breach(
        key, reading.metric, severity, reading.value, message, detail, reading.measured_at
    )


def evaluate(
    reading: Obs,
    history: Sequence[Obs],
    rules: Sequence[Rule],
    baselines: Mapping[str, Baseline | None] | None = None,
) -> list[Breach]:
    """Every breach of `rules` by `reading`; missed-measurement rules are left to the scheduler.

    `baselines` maps a baseline rule's key to its baseline when the caller computed it (a
    missing key means: compute it from `history`)."""
    breaches: list[Breach] = []
    for rule in rules:
        match rule:
            case AbsoluteRule():
                breach = check_absolute(rule, reading, history)
            case BaselineRule():
                if baselines is not None and rule.key in baselines:
                    breach = judge_baseline(rule, reading, baselines[rule.key])
                else:
                    breach = check_baseline(rule, reading, history)
            case ChangeRule():
                breach = check_change(rule, reading, history)
            case InrRule():
                breach = check_inr(rule, reading, history)
            case _:
                breach = None
        if breach is not None:
            breaches.append(breach)
    return breaches
