"""The metric catalogue: codes, units, plausible ranges and exact unit conversions."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemed.catalogue.metrics import (
    METRICS,
    Implausible,
    Metric,
    MetricError,
    NotFinite,
    UnknownMetric,
    UnsupportedUnit,
    canonical_value,
    check_plausible,
    fmt_number,
    get_metric,
    to_canonical,
)

# (code, canonical unit, low, high, LOINC, MDC, Danish code), as in CLINICAL.md "Metrics".
CLINICAL_TABLE = [
    ("spo2", "%", 50, 100, ("59408-5", "2708-6"), 150456, "NPU03011"),
    ("pulse", "/min", 25, 250, ("8867-4",), 149530, "NPU21692"),
    ("resp_rate", "/min", 4, 60, ("9279-1",), 151562, "MCS88122"),
    ("fev1", "L", 0.1, 8, ("20150-9",), 152586, "MCS88015"),
    ("pef", "L/min", 30, 900, ("19935-6", "33452-4"), 152584, None),
    ("weight", "kg", 20, 327.6, ("29463-7",), 188736, "NPU03804"),
    ("temperature", "Cel", 30, 43, ("8310-5",), 150364, "NPU08676"),
    ("cat", "{score}", 0, 40, (), None, "MCS88137"),
    ("mrc", "{score}", 1, 5, (), None, "MCS88021"),
    ("inr", "{INR}", 0.5, 20, ("34714-6", "6301-6", "46418-0"), 160260, "NPU01685"),
]
CODES = [row[0] for row in CLINICAL_TABLE]


def test_catalogue_holds_exactly_the_ten_metrics_in_order() -> None:
    assert list(METRICS) == CODES
    assert all(isinstance(m, Metric) and m.code == code for code, m in METRICS.items())


@pytest.mark.parametrize(("code", "unit", "low", "high", "loinc", "mdc", "danish"), CLINICAL_TABLE)
def test_metric_matches_clinical_table(
    code: str,
    unit: str,
    low: float,
    high: float,
    loinc: tuple[str, ...],
    mdc: int | None,
    danish: str | None,
) -> None:
    m = METRICS[code]
    assert (m.unit, m.low, m.high, m.loinc, m.mdc, m.danish) == (
        unit,
        low,
        high,
        loinc,
        mdc,
        danish,
    )
    assert m.name


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        METRICS["glucose"] = METRICS["spo2"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        METRICS["spo2"].low = 0  # type: ignore[misc]


def test_only_scores_are_whole_numbers() -> None:
    assert {m.code for m in METRICS.values() if m.whole_numbers} == {"cat", "mrc"}


# --- range edges -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_range_bounds_are_inclusive(code: str) -> None:
    m = METRICS[code]
    assert canonical_value(code, m.low, m.unit) == m.low
    assert canonical_value(code, m.high, m.unit) == m.high


@pytest.mark.parametrize("code", CODES)
def test_just_outside_the_range_is_rejected(code: str) -> None:
    m = METRICS[code]
    for outside in (math.nextafter(m.low, -math.inf), math.nextafter(m.high, math.inf)):
        with pytest.raises(Implausible, match=f"outside the plausible range .* for {code}$"):
            canonical_value(code, outside, m.unit)


@pytest.mark.parametrize("code", ["cat", "mrc"])
def test_scores_off_by_one_point_are_rejected(code: str) -> None:
    m = METRICS[code]
    for outside in (m.low - 1, m.high + 1):
        with pytest.raises(Implausible, match="outside the plausible range"):
            canonical_value(code, outside, "{score}")


@pytest.mark.parametrize(("code", "value"), [("mrc", 2.5), ("cat", 17.5), ("cat", 0.1)])
def test_scores_must_be_whole_numbers(code: str, value: float) -> None:
    with pytest.raises(Implausible) as err:
        canonical_value(code, value, "{score}")
    assert (
        str(err.value)
        == f"{fmt_number(value)} {{score}} is not a whole number of points for {code}"
    )


def test_range_message_spells_value_bounds_and_unit() -> None:
    with pytest.raises(Implausible) as err:
        canonical_value("spo2", 130, "%")
    assert str(err.value) == "130 % is outside the plausible range 50–100 % for spo2"
    assert err.value.field == "value"
    assert err.value.value == 130


def test_range_message_shows_the_converted_value() -> None:
    with pytest.raises(Implausible) as err:
        canonical_value("weight", 800, "lb")
    assert str(err.value) == (
        "800 lb (= 362.873896 kg) is outside the plausible range 20–327.6 kg for weight"
    )


def test_check_plausible_takes_canonical_values() -> None:
    check_plausible(METRICS["pulse"], 60.0)
    with pytest.raises(Implausible, match=r"^24 /min is outside the plausible range 25–250 /min"):
        check_plausible(METRICS["pulse"], 24.0)


# --- conversions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("temperature", 98.6, "[degF]", 37.0),
        ("temperature", 98.6, "°F", 37.0),
        ("temperature", 98.6, "degF", 37.0),
        ("temperature", 86, "[degF]", 30.0),
        ("temperature", 109.4, "[degF]", 43.0),
        ("temperature", 212, "[degF]", 100.0),
        ("weight", 1, "[lb_av]", 0.45359237),
        ("weight", 1, "lb", 0.45359237),
        ("weight", 1, "lbs", 0.45359237),
        ("weight", 100, "[lb_av]", 45.359237),
        ("spo2", 0.95, "1", 95.0),
        ("spo2", 0.95, "{fraction}", 95.0),
        ("spo2", 0.5, "{fraction}", 50.0),
        ("spo2", 1, "1", 100.0),
        ("spo2", 0.97, "1", 97.0),
        ("pef", 5, "L/s", 300.0),
        ("pef", 5, "l/s", 300.0),
        ("pef", 0.5, "L/s", 30.0),
        ("pef", 7.35, "L/s", 441.0),
        ("fev1", 2500, "mL", 2.5),
        ("fev1", 2500, "ml", 2.5),
        ("fev1", 100, "mL", 0.1),
        ("fev1", 1234, "mL", 1.234),
    ],
)
def test_conversion_is_exact(code: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(code, value, unit) == expected
    m = METRICS[code]
    if m.low <= expected <= m.high:
        assert canonical_value(code, value, unit) == expected
    else:
        with pytest.raises(Implausible):
            canonical_value(code, value, unit)


@pytest.mark.parametrize(
    ("code", "unit"),
    [(code, alias.unit) for code in CODES for alias in METRICS[code].aliases if alias.is_identity],
)
def test_other_spellings_of_the_canonical_unit_keep_the_value(code: str, unit: str) -> None:
    m = METRICS[code]
    middle = float(round((m.low + m.high) / 2))
    assert to_canonical(code, middle, unit) == middle


def test_declared_units_are_as_documented() -> None:
    accepted = {code: METRICS[code].accepted_units() for code in CODES}
    assert accepted == {
        "spo2": ("%", "1", "{fraction}"),
        "pulse": ("/min", "1/min", "{beats}/min", "{beat}/min", "bpm"),
        "resp_rate": ("/min", "1/min", "{breaths}/min", "{breath}/min"),
        "fev1": ("L", "l", "mL", "ml"),
        "pef": ("L/min", "l/min", "L/s", "l/s"),
        "weight": ("kg", "[lb_av]", "lb", "lbs"),
        "temperature": ("Cel", "°C", "degC", "[degF]", "°F", "degF"),
        "cat": ("{score}",),
        "mrc": ("{score}",),
        "inr": ("{INR}", "INR", "{ratio}", "1"),
    }


def test_spo2_fraction_is_decided_by_the_unit_not_the_number() -> None:
    assert to_canonical("spo2", 1, "%") == 1.0
    assert to_canonical("spo2", 1, "1") == 100.0
    with pytest.raises(Implausible, match=r"^1 % is outside"):
        canonical_value("spo2", 1, "%")
    with pytest.raises(Implausible, match=r"^95 1 \(= 9500 %\) is outside"):
        canonical_value("spo2", 95, "1")


def test_converted_edges() -> None:
    # 20 kg = 44.0924524... lb; 327.6 kg = 722.2339... lb
    with pytest.raises(Implausible):
        canonical_value("weight", 44.09, "lb")
    assert canonical_value("weight", 44.1, "lb") == pytest.approx(20.0035, abs=1e-4)
    assert canonical_value("weight", 722.23, "lb") < 327.6
    with pytest.raises(Implausible):
        canonical_value("weight", 722.24, "lb")
    assert canonical_value("pef", 15, "L/s") == 900.0
    with pytest.raises(Implausible):
        canonical_value("pef", 15.01, "L/s")
    with pytest.raises(Implausible):
        canonical_value("fev1", 99, "mL")
    assert canonical_value("fev1", 8000, "mL") == 8.0
    with pytest.raises(Implausible):
        canonical_value("temperature", 85.9, "[degF]")


def test_surrounding_whitespace_in_a_unit_is_ignored_case_is_not() -> None:
    assert to_canonical("weight", 70, " kg ") == 70.0
    with pytest.raises(UnsupportedUnit):
        to_canonical("weight", 70, "KG")


@pytest.mark.parametrize(
    ("code", "unit"),
    [("spo2", "mmHg"), ("weight", "g"), ("fev1", "L/min"), ("pef", "L"), ("temperature", "K")],
)
def test_unsupported_unit_names_the_unit_and_the_accepted_ones(code: str, unit: str) -> None:
    with pytest.raises(UnsupportedUnit) as err:
        to_canonical(code, 1.0, unit)
    assert err.value.unit == unit
    assert err.value.metric == code
    assert err.value.field == "unit"
    assert str(err.value).startswith(f"{unit!r} is not an accepted unit for {code} (accepted: ")
    assert METRICS[code].unit in str(err.value)


def test_unknown_metric() -> None:
    with pytest.raises(UnknownMetric) as err:
        to_canonical("glucose", 5.0, "mmol/L")
    assert err.value.field == "type"
    assert str(err.value).startswith("unknown metric 'glucose' (known: spo2, pulse,")
    with pytest.raises(UnknownMetric):
        get_metric("SpO2")
    assert get_metric("inr") is METRICS["inr"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("unit", ["%", "1"])
def test_non_finite_values_are_refused(value: float, unit: str) -> None:
    with pytest.raises(NotFinite) as err:
        to_canonical("spo2", value, unit)
    assert err.value.field == "value"
    expected = "NaN is not a measurement" if math.isnan(value) else f"{value} is not a finite"
    assert str(err.value).startswith(expected)


def test_overflowing_conversion_is_implausible_not_an_exception() -> None:
    assert to_canonical("pef", 1e308, "L/s") == math.inf
    with pytest.raises(Implausible, match=r"\(= inf L/min\) is outside"):
        canonical_value("pef", 1e308, "L/s")
    assert to_canonical("pef", -1e308, "L/s") == -math.inf


def test_errors_are_value_errors() -> None:
    for exc in (UnknownMetric, UnsupportedUnit, NotFinite, Implausible):
        assert issubclass(exc, MetricError)
        assert issubclass(exc, ValueError)


def test_fmt_number() -> None:
    assert fmt_number(100.0) == "100"
    assert fmt_number(327.6) == "327.6"
    assert fmt_number(0.45359237) == "0.45359237"
    assert fmt_number(math.nan) == "nan"
    assert fmt_number(1e20) == "1e+20"


# --- properties --------------------------------------------------------------------------------

decimals = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)


@given(decimals)
def test_fahrenheit_is_the_correctly_rounded_exact_value(f: Decimal) -> None:
    exact = (Fraction(f) - 32) * Fraction(5, 9)
    assert to_canonical("temperature", float(f), "[degF]") == float(exact)


@given(decimals)
def test_pounds_are_the_correctly_rounded_exact_value(lb: Decimal) -> None:
    assert to_canonical("weight", float(lb), "lb") == float(Fraction(lb) * Fraction("0.45359237"))


@given(st.decimals(min_value=0, max_value=1, places=4))
def test_a_fraction_becomes_the_percent_it_spells(x: Decimal) -> None:
    assert to_canonical("spo2", float(x), "{fraction}") == float(x * 100)


@given(st.integers(min_value=0, max_value=10**6))
def test_millilitres_and_litres_per_second(n: int) -> None:
    assert to_canonical("fev1", n, "mL") == float(Fraction(n, 1000))
    assert to_canonical("pef", n / 100, "L/s") == float(Fraction(n * 60, 100))


@given(
    st.sampled_from([(code, unit) for code in CODES for unit in METRICS[code].accepted_units()]),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_canonical_value_is_plausible_or_a_metric_error(pair: tuple[str, str], x: float) -> None:
    code, unit = pair
    m = METRICS[code]
    try:
        value = canonical_value(code, x, unit)
    except MetricError as exc:
        assert exc.field == "value"
        assert str(exc)
    else:
        assert m.low <= value <= m.high
        assert not m.whole_numbers or value.is_integer()
