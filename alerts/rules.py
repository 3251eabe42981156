"""Alert rules as data, and pure functions deciding whether a reading breaches them.

Rules are frozen msgspec Structs in a tagged union (field `kind`), so a rule set is stored as
JSON and decoded with its validation. `evaluate(reading, history, rules)` looks only at
readings measured at or before the reading (by measured time, whatever the arrival order), so a
late reading is judged against what preceded it when it was taken.

Values equal within floating-point rounding (1e-9 relative) are treated as equal: a band limit
is strict, so a value equal to the limit is not a breach; baseline, change and urgent INR
limits are inclusive, so an equal value is.
"""

import enum
import itertools
import math
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple

import msgspec

from alerts.schedule import LOCAL_TZ, Schedule, missed

Comparator = Literal["<", "<=", ">", ">="]


class InvalidRule(ValueError):
    """A rule whose values contradict each other."""


class Severity(enum.Enum):
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        return 2 if self is Severity.RED else 1

    def __lt__(self, other: object) -> bool:
        return self.rank < other.rank if isinstance(other, Severity) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.rank <= other.rank if isinstance(other, Severity) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.rank > other.rank if isinstance(other, Severity) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.rank >= other.rank if isinstance(other, Severity) else NotImplemented


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _lt(a: float, b: float) -> bool:
    return a < b and not _same(a, b)


def _ge(a: float, b: float) -> bool:
    return a >= b or _same(a, b)


BAND_FIELDS = ("red_low", "yellow_low", "yellow_high", "red_high")


class Bands(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenTele convention: red_high > yellow_high > yellow_low > red_low, strict comparisons."""

    red_low: float | None = None
    yellow_low: float | None = None
    yellow_high: float | None = None
    red_high: float | None = None

    def __post_init__(self) -> None:
        present = [(n, getattr(self, n)) for n in BAND_FIELDS if getattr(self, n) is not None]
        if not present:
            raise InvalidRule("bands set no limit")
        for name, value in present:
            if not math.isfinite(value):
                raise InvalidRule(f"band {name} must be a finite number, got {value}")
        for (lo_name, lo), (hi_name, hi) in itertools.pairwise(present):
            if not lo < hi:
                raise InvalidRule(
                    "bands must satisfy red_low < yellow_low < yellow_high < red_high; "
                    f"got {lo_name}={lo} not below {hi_name}={hi}"
                )


class BandHit(NamedTuple):
    severity: Severity
    side: Literal["low", "high"]
    limit: float


def band_level(bands: Bands, value: float, side: Literal["low", "high"]) -> Severity | None:
    """Severity of `value` on one side of the bands, None when that side is not breached."""
    if side == "low":
        red, yellow = bands.red_low, bands.yellow_low
    else:
        red, yellow = bands.red_high, bands.yellow_high
    for limit, severity in ((red, Severity.RED), (yellow, Severity.YELLOW)):
        if limit is not None and (_lt(value, limit) if side == "low" else _lt(limit, value)):
            return severity
    return None


def classify(bands: Bands, value: float) -> BandHit | None:
    """The band `value` falls in, red before yellow; None inside the normal range."""
    for side in ("low", "high"):
        level = band_level(bands, value, side)
        if level is not None:
            return BandHit(level, side, getattr(bands, f"{level.value}_{side}"))
    return None


def _limit(bands: Bands, severity: Severity, side: str) -> float | None:
    return getattr(bands, f"{severity.value}_{side}")


class Sustain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fire only when the band held: `count` consecutive readings (this one included) or for
    `minutes`, using readings of the last `within_hours`. Red fires at once unless
    `include_red`; a red reading that is not yet sustained as red can still be a yellow one."""

    count: int | None = None
    minutes: float | None = None
    within_hours: float = 192.0
    include_red: bool = False

    def __post_init__(self) -> None:
        if (self.count is None) == (self.minutes is None):
            raise InvalidRule("sustain needs exactly one of count or minutes")
        if self.count is not None and self.count < 1:
            raise InvalidRule("sustain count must be at least 1")
        if self.minutes is not None and not self.minutes > 0:
            raise InvalidRule("sustain minutes must be positive")
        if not self.within_hours > 0 or (
            self.minutes is not None and self.within_hours * 60 < self.minutes
        ):
            raise InvalidRule("sustain within_hours must be positive and cover the minutes")


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    pass


class AbsoluteRule(_Rule, tag="absolute"):
    metric: str
    bands: Bands
    sustain: Sustain | None = None

    @property
    def key(self) -> str:
        return f"absolute:{self.metric}"


class BaselineRule(_Rule, tag="baseline"):
    """Compare with the median of the patient's own readings of the last `window_days`.

    `points` compares differences in the metric's unit, `percent` relative to the baseline;
    limits are inclusive (a drop of exactly 20 % is a 20 % drop)."""

    metric: str
    mode: Literal["points", "percent"]
    yellow_drop: float | None = None
    red_drop: float | None = None
    yellow_rise: float | None = None
    red_rise: float | None = None
    window_days: float = 14.0
    min_readings: int = 3

    def __post_init__(self) -> None:
        limits = (self.yellow_drop, self.red_drop, self.yellow_rise, self.red_rise)
        if all(v is None for v in limits):
            raise InvalidRule("baseline rule needs a drop or rise limit")
        if any(v is not None and not (math.isfinite(v) and v > 0) for v in limits):
            raise InvalidRule("baseline limits must be positive numbers")
        for yellow, red, what in ((self.yellow_drop, self.red_drop, "drop"),
                                  (self.yellow_rise, self.red_rise, "rise")):  # fmt: skip
            if yellow is not None and red is not None and not red > yellow:
                raise InvalidRule(f"red_{what} must be above yellow_{what}")
        if self.mode == "percent" and any(
            v is not None and v >= 100 for v in (self.yellow_drop, self.red_drop)
        ):
            raise InvalidRule("a percent drop limit must be below 100")
        if not self.window_days > 0 or self.min_readings < 1:
            raise InvalidRule("window_days must be positive and min_readings at least 1")

    @property
    def key(self) -> str:
        return f"baseline:{self.metric}"


class ChangeRule(_Rule, tag="change"):
    """A change of at least `delta` against any reading of the last `within_hours`."""

    metric: str
    delta: float
    within_hours: float = 72.0
    direction: Literal["either", "rise", "drop"] = "either"
    severity: Severity = Severity.YELLOW

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delta) and self.delta > 0 and self.within_hours > 0):
            raise InvalidRule("change delta and within_hours must be positive")

    @property
    def key(self) -> str:
        return f"change:{self.metric}"


class InrRule(_Rule, tag="inr"):
    """Outside [low, high] is yellow; at or beyond the urgent bounds, or censored, is red."""

    metric: ClassVar[str] = "inr"
    low: float
    high: float
    urgent_low: float = 1.5
    urgent_high: float = 5.0

    def __post_init__(self) -> None:
        values = (self.urgent_low, self.low, self.high, self.urgent_high)
        if not all(math.isfinite(v) for v in values) or not (
            0 < self.urgent_low < self.low < self.high < self.urgent_high
        ):
            raise InvalidRule(
                "INR limits must satisfy 0 < urgent_low < low < high < urgent_high; got "
                f"{self.urgent_low} / {self.low}-{self.high} / {self.urgent_high}"
            )

    @property
    def key(self) -> str:
        return "inr:range"


class MissedRule(_Rule, tag="missed"):
    """No measurement of `metric` for a due slot; checked by the scheduler, not per reading."""

    metric: str
    schedule: Schedule
    severity: Severity = Severity.YELLOW

    @property
    def key(self) -> str:
        return f"missed:{self.metric}"


Rule = AbsoluteRule | BaselineRule | ChangeRule | InrRule | MissedRule


def validate_rule_set(rules: Sequence[Rule]) -> None:
    """At most one rule per key: the key is what keeps one open alert per patient and rule."""
    seen: set[str] = set()
    for rule in rules:
        if rule.key in seen:
            raise InvalidRule(f"two rules share the key {rule.key!r}")
        seen.add(rule.key)


class Obs(msgspec.Struct, frozen=True):
    """One reading in its canonical unit; a censored value is its limit plus a comparator."""

    metric: str
    value: float
    measured_at: datetime
    comparator: Comparator | None = None

    def __post_init__(self) -> None:
        if self.measured_at.tzinfo is None or self.measured_at.utcoffset() is None:
            raise ValueError("measured_at must be timezone-aware")
        if not math.isfinite(self.value):
            raise ValueError(f"reading value must be finite, got {self.value}")


class Breach(msgspec.Struct, frozen=True):
    rule_key: str
    metric: str
    severity: Severity
    value: float | None
    message: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
    measured_at: datetime | None = None


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
    severity: Severity | None = hit.severity
    detail: dict[str, Any] = {"side": hit.side}
    if rule.sustain is not None:
        severity, held = _sustained(rule, rule.sustain, reading, history, hit)
        if severity is None:
            return None
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
        else:
            start = reading.measured_at
            for obs in reversed(prior):
                if not in_band(obs):
                    break
                start = obs.measured_at
            held = (reading.measured_at - start).total_seconds() / 60
            if sustain.minutes is not None and _ge(held, sustain.minutes):
                return severity, {"held_minutes": held}
    return None, {}


def check_baseline(rule: BaselineRule, reading: Obs, history: Sequence[Obs]) -> Breach | None:
    if reading.metric != rule.metric or reading.comparator is not None:
        return None
    since = reading.measured_at - timedelta(days=rule.window_days)
    values = [obs.value for obs in _prior(reading, history, since, exact=True)]
    if len(values) < rule.min_readings:
        return None
    baseline = statistics.median(values)
    if rule.mode == "percent" and not baseline > 0:
        return None
    diff = reading.value - baseline
    amount = abs(diff) * 100 / baseline if rule.mode == "percent" else abs(diff)
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
        f"{direction} baseline {_show(rule.metric, baseline)} (median of {len(values)} readings "
        f"over {_num(rule.window_days)} days; {severity.value} limit {_num(limit)}{unit})"
    )
    detail = {
        "baseline": baseline,
        "baseline_readings": len(values),
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


def evaluate(reading: Obs, history: Sequence[Obs], rules: Sequence[Rule]) -> list[Breach]:
    """Every breach of `rules` by `reading`; missed-measurement rules are left to the scheduler."""
    breaches: list[Breach] = []
    for rule in rules:
        match rule:
            case AbsoluteRule():
                breach = check_absolute(rule, reading, history)
            case BaselineRule():
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


def history_window(rules: Sequence[Rule]) -> timedelta:
    """How far before a reading `evaluate` may look: load at least this much history."""
    window = timedelta(0)
    for rule in rules:
        if isinstance(rule, AbsoluteRule) and rule.sustain is not None:
            window = max(window, timedelta(hours=rule.sustain.within_hours))
        elif isinstance(rule, BaselineRule):
            window = max(window, timedelta(days=rule.window_days))
        elif isinstance(rule, ChangeRule):
            window = max(window, timedelta(hours=rule.within_hours))
    return window
