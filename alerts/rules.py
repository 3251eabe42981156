"""Alert rules as data: the rule kinds, their validation, readings and breaches.

Rules are frozen msgspec Structs in a tagged union (field `kind`), so a rule set is stored as
JSON and decoded with its validation. The functions that judge a reading against a rule are in
`alerts.checks`; what history they need is described here (`history_window`, `history_needs`)
so that a caller can load exactly that much.

Values equal within floating-point rounding (1e-9 relative) are treated as equal: a band limit
is strict, so a value equal to the limit is not a breach; baseline, change and urgent INR
limits are inclusive, so an equal value is.
"""

import enum
import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple

import msgspec

from telemed.catalogue.schedules import Schedule

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
    """Compare with the median of the patient's own readings of the last `window_days`, at
    most the latest `max_readings` of them.

    `points` compares differences in the metric's unit, `percent` relative to the baseline;
    limits are inclusive (a drop of exactly 20 % is a 20 % drop). The cap keeps the baseline a
    bounded amount of work when a device sends far more often than the daily or weekly
    measurements the windows are written for; at that pace the median is of recent readings."""

    metric: str
    mode: Literal["points", "percent"]
    yellow_drop: float | None = None
    red_drop: float | None = None
    yellow_rise: float | None = None
    red_rise: float | None = None
    window_days: float = 14.0
    min_readings: int = 3
    max_readings: int = 100

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
        if self.max_readings < self.min_readings:
            raise InvalidRule("max_readings must be at least min_readings")

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


class ReadingRef(msgspec.Struct, frozen=True):
    """Which stored reading a breach is about (the readings' unique key with the measured
    time), and when it arrived."""

    origin: str
    message_id: str
    received_at: datetime


class Breach(msgspec.Struct, frozen=True):
    rule_key: str
    metric: str
    severity: Severity
    value: float | None
    message: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)
    measured_at: datetime | None = None
    # Set on the ingest path, where each breach is one stored reading's (alerts.ledger).
    reading: ReadingRef | None = None


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


class HistoryNeed(msgspec.Struct, frozen=True):
    """The part of one metric's earlier readings its rules can look at, so that a caller can
    load a bounded history and still get what `evaluate` would decide on the full one:

    - the latest `latest` readings within `latest_hours` (sustain by count);
    - every reading within `span_minutes`, and the latest one before that within `span_hours`
      (sustain by minutes: the streak either breaks inside the span or reaches beyond it);
    - the lowest and the highest exact reading within `extremes_hours`, the earliest of equal
      values (change: the largest change is against one of them);
    - the median and count of the exact readings within `baseline_days`, at most the latest
      `baseline_max` (baseline).
    """

    latest: int = 0
    latest_hours: float = 0.0
    span_minutes: float = 0.0
    span_hours: float = 0.0
    extremes_hours: float = 0.0
    baseline_days: float = 0.0
    baseline_max: int = 0

    def merge(self, other: "HistoryNeed") -> "HistoryNeed":
        pairs = zip(_astuple(self), _astuple(other), strict=True)
        return HistoryNeed(*(max(a, b) for a, b in pairs))

    @property
    def empty(self) -> bool:
        return self == HistoryNeed()


def _astuple(need: HistoryNeed) -> tuple[float, ...]:
    return msgspec.structs.astuple(need)


def history_need(rule: Rule) -> HistoryNeed:
    """What one rule needs to see before a reading of its metric."""
    if isinstance(rule, AbsoluteRule) and rule.sustain is not None:
        sustain = rule.sustain
        if sustain.count is not None:
            return HistoryNeed(latest=sustain.count - 1, latest_hours=sustain.within_hours)
        return HistoryNeed(span_minutes=sustain.minutes or 0.0, span_hours=sustain.within_hours)
    if isinstance(rule, ChangeRule):
        return HistoryNeed(extremes_hours=rule.within_hours)
    if isinstance(rule, BaselineRule):
        return HistoryNeed(baseline_days=rule.window_days, baseline_max=rule.max_readings)
    return HistoryNeed()


def reach_seconds(rule: Rule) -> float:
    """How long after a reading it can still change the decision on another reading of its
    metric under this rule (the rule's look-back, seen from the other side); 0 for a rule
    that looks at no history."""
    if isinstance(rule, AbsoluteRule) and rule.sustain is not None:
        return rule.sustain.within_hours * 3600
    if isinstance(rule, ChangeRule):
        return rule.within_hours * 3600
    if isinstance(rule, BaselineRule):
        return rule.window_days * 86400
    return 0.0


def history_needs(rules: Sequence[Rule]) -> dict[str, HistoryNeed]:
    """Per metric, what the rules evaluated per reading need of its history."""
    needs: dict[str, HistoryNeed] = {}
    for rule in rules:
        need = history_need(rule)
        if not need.empty:
            metric = rule.metric
            needs[metric] = needs[metric].merge(need) if metric in needs else need
    return needs
