from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.nomogram import Suggestion, suggest_weekly_dose


def change(inr: float, low: float = 2.0, high: float = 3.0, dose: float = 35.0) -> int | None:
    suggestion = suggest_weekly_dose(inr, low, high, dose)
    return None if suggestion is None else suggestion.change_percent


@pytest.mark.parametrize(
    ("inr", "expected"),
    [
        (0.9, 20),
        (1.49, 20),
        (1.5, 10),  # "1.5 to < 2.0"
        (1.99, 10),
        (2.0, 0),
        (2.5, 0),
        (3.0, 0),
        (3.01, -10),  # "> 3.0 to 4.5"
        (4.5, -10),
        (4.51, -20),  # "> 4.5 pause then -20 %"
        (10.0, -20),
    ],
)
def test_standard_range_bands(inr: float, expected: int) -> None:
    assert change(inr) == expected


@pytest.mark.parametrize(
    ("low", "high", "cases"),
    [
        # Shifted by +0.5: < 2.0, 2.0 to < 2.5, 2.5-3.5, > 3.5 to 5.0, > 5.0.
        (2.5, 3.5, [(1.99, 20), (2.0, 10), (2.49, 10), (2.5, 0), (3.5, 0), (3.51, -10),
                    (5.0, -10), (5.01, -20)]),
        # Shifted by +1.0: < 2.5, 2.5 to < 3.0, 3.0-4.0, > 4.0 to 5.5, > 5.5.
        (3.0, 4.0, [(2.49, 20), (2.5, 10), (2.99, 10), (3.0, 0), (4.0, 0), (4.01, -10),
                    (5.5, -10), (5.51, -20)]),
    ],
)  # fmt: skip
def test_bands_shift_with_the_patients_range(
    low: float, high: float, cases: list[tuple[float, int]]
) -> None:
    assert [(inr, change(inr, low, high)) for inr, _ in cases] == cases


def test_dose_is_rounded_to_half_tablets_and_says_so() -> None:
    # 35 mg * 1.10 = 38.5 mg; in 1.25 mg steps 38.5 / 1.25 = 30.8 -> 31 steps = 38.75 mg.
    suggestion = suggest_weekly_dose(1.7, 2.0, 3.0, 35.0)
    assert suggestion == Suggestion(
        band="below",
        change_percent=10,
        pause=False,
        current_weekly_mg=35.0,
        exact_weekly_mg=38.5,
        new_weekly_mg=38.75,
        step_mg=1.25,
        text=(
            "Nomogram suggestion, not an instruction: INR 1.7 is below range 2.0–3.0; increase the "
            "weekly dose by 10 %: 35 mg → 38.75 mg (exactly 38.5 mg, rounded to 1.25 mg)."
        ),
    )
    # 0.5 mg steps for other tablet strengths: 38.5 stays 38.5.
    halves = suggest_weekly_dose(1.7, 2.0, 3.0, 35.0, step_mg=0.5)
    assert halves is not None and halves.new_weekly_mg == 38.5


def test_pause_then_reduce() -> None:
    # 35 mg * 0.80 = 28 mg; 28 / 1.25 = 22.4 -> 22 steps = 27.5 mg.
    suggestion = suggest_weekly_dose(6.2, 2.0, 3.0, 35.0)
    assert suggestion is not None and suggestion.pause is True
    assert (suggestion.exact_weekly_mg, suggestion.new_weekly_mg) == (28.0, 27.5)
    assert "pause warfarin, then reduce the weekly dose by 20 %" in suggestion.text


def test_in_range_keeps_the_dose_unrounded() -> None:
    suggestion = suggest_weekly_dose(2.4, 2.0, 3.0, 33.0)
    assert suggestion is not None and suggestion.new_weekly_mg == 33.0
    assert suggestion.text.endswith("keep the weekly dose at 33 mg.")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((2.5, 2.0, 3.5, 35.0), {}),  # range not 1.0 wide
        ((2.5, 2.0, 2.5, 35.0), {}),
        ((4.0, 3.5, 4.5, 35.0), {}),  # low bound outside 1.5-3.0
        ((10.5, 2.0, 3.0, 35.0), {}),  # ACCP: above 10 vitamin K, a specialist's decision
        ((8.0, 2.0, 3.0, 35.0), {"comparator": ">"}),  # may be above 10
        ((1.8, 2.0, 3.0, 35.0), {"comparator": "<"}),  # may be below 1.5 or in 1.5-1.8
        ((1.7, 2.0, 3.0, 5.0), {}),  # 5.5 mg rounds back to 5.0: the change would vanish
        ((float("nan"), 2.0, 3.0, 35.0), {}),
        ((2.5, 2.0, 3.0, 0.0), {}),
        ((2.5, 2.0, 3.0, -5.0), {}),
        ((-1.0, 2.0, 3.0, 35.0), {}),
    ],
)
def test_no_suggestion_where_unsure(args: tuple, kwargs: dict) -> None:
    assert suggest_weekly_dose(*args, **kwargs) is None


def test_censored_low_meter_value_is_certain() -> None:
    suggestion = suggest_weekly_dose(0.8, 2.0, 3.0, 35.0, comparator="<")
    assert suggestion is not None and suggestion.change_percent == 20
    assert "INR <0.8" in suggestion.text


def test_small_dose_rounding_within_half_the_change_is_kept() -> None:
    # 10 mg * 1.10 = 11 mg -> 9 steps of 1.25 = 11.25 mg; off by 0.25, under half of 1 mg.
    suggestion = suggest_weekly_dose(1.7, 2.0, 3.0, 10.0)
    assert suggestion is not None and suggestion.new_weekly_mg == 11.25


two_decimals = st.integers(1, 1000).map(lambda n: n / 100)
ranges = st.sampled_from([(2.0, 3.0), (2.5, 3.5), (3.0, 4.0), (1.5, 2.5)])


@given(two_decimals, ranges)
def test_every_two_decimal_value_gets_exactly_one_band(inr: float, rng: tuple) -> None:
    suggestion = suggest_weekly_dose(inr, *rng, 35.0)
    assert suggestion is not None
    low, high = Decimal(str(rng[0])), Decimal(str(rng[1]))
    value = Decimal(str(inr))
    expected = (
        20 if value < low - Decimal("0.5") else
        10 if value < low else
        0 if value <= high else
        -10 if value <= high + Decimal("1.5") else
        -20
    )  # fmt: skip
    assert suggestion.change_percent == expected


@given(two_decimals, two_decimals, ranges)
def test_change_is_monotone_in_inr(a: float, b: float, rng: tuple) -> None:
    lower, upper = (
        suggest_weekly_dose(min(a, b), *rng, 35.0),
        suggest_weekly_dose(max(a, b), *rng, 35.0),
    )
    assert lower is not None and upper is not None
    assert lower.change_percent >= upper.change_percent


@given(two_decimals, ranges)
def test_shifted_range_equals_standard_range_shifted(inr: float, rng: tuple) -> None:
    shift = Decimal(str(rng[0])) - 2
    standard_inr = float(Decimal(str(inr)) - shift)
    shifted = suggest_weekly_dose(inr, *rng, 35.0)
    if standard_inr > 0 and standard_inr <= 10:
        standard = suggest_weekly_dose(standard_inr, 2.0, 3.0, 35.0)
        assert shifted is not None and standard is not None
        assert shifted.change_percent == standard.change_percent


@given(st.floats(10, 80), st.sampled_from([0.9, 1.7, 2.5, 3.8, 6.0]))
def test_rounded_dose_stays_on_the_step_and_in_the_right_direction(dose: float, inr: float) -> None:
    suggestion = suggest_weekly_dose(inr, 2.0, 3.0, dose)
    if suggestion is None:
        # Refused only when the nearest 1.25 mg step is off by more than half the change.
        change = {0.9: 20, 1.7: 10, 3.8: -10, 6.0: -20}[inr]
        exact = Decimal(str(dose)) * (100 + change) / 100
        nearest = (exact / Decimal("1.25")).quantize(Decimal(1), rounding=ROUND_HALF_UP) * Decimal(
            "1.25"
        )
        assert abs(nearest - exact) * 2 > abs(exact - Decimal(str(dose)))
        return
    if suggestion.change_percent:
        steps = Decimal(str(suggestion.new_weekly_mg)) / Decimal("1.25")
        assert steps == steps.to_integral_value()
        moved = suggestion.new_weekly_mg - dose
        assert (moved > 0) == (suggestion.change_percent > 0)
        assert abs(suggestion.new_weekly_mg - suggestion.exact_weekly_mg) <= 0.625 + 1e-9
