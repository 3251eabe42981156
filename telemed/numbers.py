"""The numbers people type into clinical forms: what each field accepts, and the server's check.

A page reads what was typed with one parser (`app/web/static/js/numbers.js`, rules in
docs/web.md) against the field's `NumberSpec`; the spec travels to the page from here, so the
page and the server judge a value by the same bounds. The server checks every number again with
`check` — the one function for it — after the JSON is decoded, and refuses with a stable code
(docs/errors.md) naming the field. Nothing here turns a value into another or into null.

Plausible ranges of the metrics come from the metric catalogue through `metric_spec`, the one
place that imports it.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from telemed.catalogue.metrics import METRICS
from telemed.errors import FieldProblem


class NumberSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What one number field accepts. `unit` is shown beside the field and may be typed after
    the number (or one of `units`, lower case); `scale` is a denominator that may be typed
    ("5/10" on a 0–10 scale). Bounds are inclusive unless `min_exclusive`."""

    unit: str = ""
    units: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    whole: bool = False
    scale: int | None = None
    required: bool = False

    def params(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "unit": self.unit}


# UCUM codes as a clinician writes them, and what else may be typed after a number.
UNIT_LABEL: Final = {"Cel": "°C", "{INR}": "", "{score}": "", "/min": "/min"}
_SPELLINGS: Final = {
    "%": ("%", "procent"),
    "/min": ("/min", "pr. min", "pr min", "pr. min.", "min"),
    "Cel": ("°c", "c", "grader"),
    "kg": ("kg",),
    "L": ("l", "liter"),
    "L/min": ("l/min", "liter/min"),
}

# Weekly anticoagulant dose: the bounds the instruction form and API accept at all. What is
# usual, and when a read-back is needed, is alerts.doses' business (docs/doses.md).
WEEKLY_DOSE_MAX_MG: Final = 200.0

SPECS: Final[dict[str, NumberSpec]] = {
    # wounds.observations.WoundObservation: sizes in cm, pain on the 0–10 scale.
    "wound.length_cm": NumberSpec(unit="cm", units=("cm",), min=0, max=100),
    "wound.width_cm": NumberSpec(unit="cm", units=("cm",), min=0, max=100),
    "wound.depth_cm": NumberSpec(unit="cm", units=("cm",), min=0, max=30),
    "wound.pain": NumberSpec(min=0, max=10, whole=True, scale=10),
    # WoundInstructions.new_photos_in_days: new photos in 1–90 days (14 is Danish practice).
    "wound.new_photos_in_days": NumberSpec(
        unit="dage", units=("dage", "dag", "days", "day"), min=1, max=90, whole=True, required=True
    ),
    "dose.weekly_mg": NumberSpec(
        unit="mg",
        units=("mg", "mg/uge", "mg pr. uge"),
        min=0,
        max=WEEKLY_DOSE_MAX_MG,
        min_exclusive=True,
    ),
    # alerts.instructions.CopdFields: oxygen flow for change_oxygen.
    "oxygen.l_min": NumberSpec(unit="L/min", units=("l/min", "l"), min=0, max=15),
}


def unit_label(unit: str) -> str:
    return UNIT_LABEL.get(unit, unit)


def metric_spec(code: str, *, required: bool = False) -> NumberSpec:
    """A metric's value in its canonical unit, within its plausible range."""
    metric = METRICS[code]
    return NumberSpec(
        unit=unit_label(metric.unit),
        units=_SPELLINGS.get(metric.unit, ()),
        min=metric.low,
        max=metric.high,
        whole=metric.whole_numbers,
        required=required,
    )


def canonical_unit(code: str) -> str:
    """The metric's canonical UCUM unit, as the readings API takes it."""
    return METRICS[code].unit


def metric_codes() -> tuple[str, ...]:
    return tuple(METRICS)


def check(field: str, value: object, spec: NumberSpec) -> FieldProblem | None:
    """Why `value` (a decoded JSON number, or None when absent) does not fit `spec`; None when
    it does."""
    if value is None:
        if spec.required:
            return FieldProblem(field, "a number is required", "required", spec.params())
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return FieldProblem(field, "must be a number", "not_a_number", spec.params())
    if not math.isfinite(value):
        return FieldProblem(field, "must be a finite number", "not_a_number", spec.params())
    low_ok = spec.min is None or (value > spec.min if spec.min_exclusive else value >= spec.min)
    if not low_ok or (spec.max is not None and value > spec.max):
        return FieldProblem(field, _range_text(spec), "out_of_range", spec.params())
    if spec.whole and not float(value).is_integer():
        return FieldProblem(field, "must be a whole number", "not_whole", spec.params())
    return None


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _range_text(spec: NumberSpec) -> str:
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.min is not None and spec.max is not None:
        above = "above" if spec.min_exclusive else "from"
        return f"must be {above} {_fmt(spec.min)} to {_fmt(spec.max)}{unit}"
    if spec.min is not None:
        return f"must be at least {_fmt(spec.min)}{unit}"
    return f"must be at most {_fmt(spec.max)}{unit}"


def for_page() -> dict[str, dict[str, Any]]:
    """Every spec a page's script may need, by name: the form fields and `metric.<code>`."""
    specs = {name: msgspec.to_builtins(spec) for name, spec in SPECS.items()}
    for code in metric_codes():
        specs[f"metric.{code}"] = msgspec.to_builtins(metric_spec(code))
    return specs
