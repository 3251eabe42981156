"""The metric catalogue: one canonical UCUM unit per metric, its codes, plausible range and the
alternative units a device may declare, with exact conversions.

Codes and ranges are from the project's clinical reference (CLINICAL.md, "Metrics"), which
gathers them from LOINC, ISO/IEEE 11073 MDC and the Danish NPU/MCS code lists.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

import msgspec


class MetricError(ValueError):
    """A reading that cannot be turned into a canonical value; `field` names the reading field
    at fault ("type", "unit" or "value") so that a caller can build a field path."""

    field = "value"


class UnknownMetric(MetricError):
    field = "type"

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown metric {_show(code)} (known: {', '.join(METRICS)})")
        self.code = code


class UnsupportedUnit(MetricError):
    field = "unit"

    def __init__(self, metric: Metric, unit: str) -> None:
        accepted = ", ".join(metric.accepted_units())
        super().__init__(
            f"{_show(unit)} is not an accepted unit for {metric.code} (accepted: {accepted})"
        )
        self.metric = metric.code
        self.unit = unit


class NotFinite(MetricError):
    def __init__(self, value: float) -> None:
        if math.isnan(value):
            text = "NaN is not a measurement (a device sends NaN when it has no value)"
        else:
            text = f"{value} is not a finite number"
        super().__init__(text)
        self.value = value


class Implausible(MetricError):
    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.value = value


class UnitAlias(msgspec.Struct, frozen=True):
    """A unit a device may declare: canonical = (value + offset) * scale, in exact arithmetic."""

    unit: str
    scale: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    @property
    def is_identity(self) -> bool:
        return self.scale == 1 and self.offset == 0


class Metric(msgspec.Struct, frozen=True):
    code: str
    name: str
    unit: str
    low: float
    high: float
    loinc: tuple[str, ...] = ()
    mdc: int | None = None
    danish: str | None = None
    whole_numbers: bool = False
    aliases: tuple[UnitAlias, ...] = ()

    def accepted_units(self) -> tuple[str, ...]:
        return (self.unit, *(alias.unit for alias in self.aliases))

    def alias(self, unit: str) -> UnitAlias | None:
        """The alias a device may declare instead of the canonical unit; None for any other."""
        return next((a for a in self.aliases if a.unit == unit), None)

    def plausible(self, value: float) -> bool:
        """Whether canonical `value` is a possible measurement (check_plausible says why not)."""
        return self.low <= value <= self.high and (not self.whole_numbers or value.is_integer())


_LB = Fraction("0.45359237")  # the international avoirdupois pound, exact by definition (1959)

# Ranges: "plausible range (reject outside)" column of CLINICAL.md, bounds inclusive.
_CATALOGUE = (
    Metric(
        code="spo2",
        name="Oxygen saturation (SpO2)",
        unit="%",
        low=50,
        high=100,
        loinc=("59408-5", "2708-6"),
        mdc=150456,
        danish="NPU03011",
        # A fraction only when the declared unit says so: a bare 1 could be 1 % or 100 %.
        aliases=(UnitAlias("1", Fraction(100)), UnitAlias("{fraction}", Fraction(100))),
    ),
    Metric(
        code="pulse",
        name="Pulse rate",
        unit="/min",
        low=25,
        high=250,
        loinc=("8867-4",),
        mdc=149530,
        danish="NPU21692",
        aliases=tuple(UnitAlias(u) for u in ("1/min", "{beats}/min", "{beat}/min", "bpm")),
    ),
    Metric(
        code="resp_rate",
        name="Respiratory rate",
        unit="/min",
        low=4,
        high=60,
        loinc=("9279-1",),
        mdc=151562,
        danish="MCS88122",
        aliases=tuple(UnitAlias(u) for u in ("1/min", "{breaths}/min", "{breath}/min")),
    ),
    Metric(
        code="fev1",
        name="Forced expiratory volume in 1 second (FEV1)",
        unit="L",
        low=0.1,
        high=8,
        loinc=("20150-9",),
        mdc=152586,
        danish="MCS88015",
        aliases=(
            UnitAlias("l"),
            UnitAlias("mL", Fraction(1, 1000)),
            UnitAlias("ml", Fraction(1, 1000)),
        ),
    ),
    Metric(
        code="pef",
        name="Peak expiratory flow (PEF)",
        unit="L/min",
        low=30,
        high=900,
        loinc=("19935-6", "33452-4"),
        mdc=152584,
        aliases=(
            UnitAlias("l/min"),
            UnitAlias("L/s", Fraction(60)),
            UnitAlias("l/s", Fraction(60)),
        ),
    ),
    Metric(
        code="weight",
        name="Body weight",
        unit="kg",
        low=20,
        high=327.6,  # bathroom scales cap near 327 kg
        loinc=("29463-7",),
        mdc=188736,
        danish="NPU03804",
        aliases=tuple(UnitAlias(u, _LB) for u in ("[lb_av]", "lb", "lbs")),
    ),
    Metric(
        code="temperature",
        name="Body temperature",
        unit="Cel",
        low=30,
        high=43,
        loinc=("8310-5",),
        mdc=150364,
        danish="NPU08676",
        aliases=(
            UnitAlias("°C"),
            UnitAlias("degC"),
            *(UnitAlias(u, Fraction(5, 9), Fraction(-32)) for u in ("[degF]", "°F", "degF")),
        ),
    ),
    Metric(
        code="cat",
        name="COPD Assessment Test (CAT) score",
        unit="{score}",
        low=0,
        high=40,  # the sum of 8 answers scored 0-5
        danish="MCS88137",
        whole_numbers=True,
    ),
    Metric(
        code="mrc",
        name="MRC dyspnoea scale",
        unit="{score}",
        low=1,
        high=5,
        danish="MCS88021",
        whole_numbers=True,
    ),
    Metric(
        code="inr",
        name="International normalised ratio (INR)",
        unit="{INR}",
        low=0.5,
        high=20,  # lab results above a point-of-care meter's 8.0 are real
        loinc=("34714-6", "6301-6", "46418-0"),
        mdc=160260,
        danish="NPU01685",
        aliases=tuple(UnitAlias(u) for u in ("INR", "{ratio}", "1")),
    ),
)

METRICS: MappingProxyType[str, Metric] = MappingProxyType({m.code: m for m in _CATALOGUE})

CAT_ITEMS = 8
CAT_ITEM_MAX = 5


def get_metric(code: str) -> Metric:
    try:
        return METRICS[code]
    except KeyError:
        raise UnknownMetric(code) from None


def to_canonical(metric: Metric | str, value: float, unit: str) -> float:
    """Convert `value` in the declared `unit` to the metric's canonical unit.

    The number is taken as the decimal the device wrote (the shortest repr of the float),
    converted in exact rational arithmetic and rounded once, so 98.6 [degF] is exactly 37 Cel.
    Raises UnknownMetric, UnsupportedUnit or NotFinite; no range check (see `canonical_value`).
    """
    m = metric if isinstance(metric, Metric) else get_metric(metric)
    value = float(value)
    if not math.isfinite(value):
        raise NotFinite(value)
    unit = unit.strip()
    if unit == m.unit:
        return value
    alias = m.alias(unit)
    if alias is None:
        raise UnsupportedUnit(m, unit)
    if alias.is_identity:
        return value
    exact = (Fraction(Decimal(repr(value))) + alias.offset) * alias.scale
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def check_plausible(metric: Metric, value: float, *, shown: str | None = None) -> None:
    """Raise Implausible unless canonical `value` is a possible measurement of `metric`.

    `shown` is how the value was declared (e.g. "110 [degF]"), for the message.
    """
    if metric.plausible(value):
        return
    here = shown or f"{fmt_number(value)} {metric.unit}"
    if not metric.low <= value <= metric.high:
        bounds = f"{fmt_number(metric.low)}–{fmt_number(metric.high)} {metric.unit}"
        raise Implausible(
            f"{here} is outside the plausible range {bounds} for {metric.code}", value
        )
    if metric.whole_numbers and not value.is_integer():
        raise Implausible(f"{here} is not a whole number of points for {metric.code}", value)


def canonical_value(metric: Metric | str, value: float, unit: str) -> float:
    """Convert to the canonical unit and check the plausible range; raises a MetricError."""
    m = metric if isinstance(metric, Metric) else get_metric(metric)
    canonical = to_canonical(m, value, unit)
    if m.plausible(canonical):
        return canonical  # no message to spell
    shown = f"{fmt_number(float(value))} {unit}"
    if unit.strip() != m.unit:
        shown += f" (= {fmt_number(canonical)} {m.unit})"
    check_plausible(m, canonical, shown=shown)
    return canonical


def fmt_number(x: float) -> str:
    """The shortest exact spelling of a number: 100 rather than 100.0, 0.45359237 as is."""
    x = float(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
