"""Weekly warfarin dose suggestion, shown beside a specialist's instruction, never applied.

The nomogram (CLINICAL.md) is written for the range 2.0–3.0 and shifted with the patient's
range [L, H] (H = L + 1):

    INR < L − 0.5              weekly dose +20 %
    L − 0.5 <= INR < L         +10 %
    L <= INR <= H              unchanged
    H < INR <= H + 1.5         −10 %
    INR > H + 1.5              pause, then −20 %

The bands meet without gaps, so every value, with any number of decimals, falls in exactly one.
No suggestion (None) where the nomogram is not known to apply: a range that is not 1.0 wide or
whose low bound is outside 1.5–3.0; INR above 10 (ACCP 9th edition then advises vitamin K, a
specialist's decision); a censored meter value whose band is uncertain (">8.0" may be above
10); a new dose whose rounding would distort the change by more than half of it.
"""

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec

# Marevan 2.5 mg is the warfarin tablet in common Danish use and is split in halves, so a weekly
# dose moves in steps of half a tablet.
DEFAULT_STEP_MG = 1.25
ACCP_VITAMIN_K_ABOVE = 10.0
_LOW_BOUNDS = (1.5, 3.0)


class Suggestion(msgspec.Struct, frozen=True):
    band: Literal["far_below", "below", "in_range", "above", "far_above"]
    change_percent: int
    pause: bool
    current_weekly_mg: float
    exact_weekly_mg: float
    new_weekly_mg: float
    step_mg: float
    text: str


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def _band(
    inr: Decimal, low: Decimal, high: Decimal
) -> tuple[Literal["far_below", "below", "in_range", "above", "far_above"], int]:
    if inr < low - Decimal("0.5"):
        return "far_below", 20
    if inr < low:
        return "below", 10
    if inr <= high:
        return "in_range", 0
    if inr <= high + Decimal("1.5"):
        return "above", -10
    return "far_above", -20


def _fmt(value: Decimal | float) -> str:
    text = f"{Decimal(str(value)).quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")
    return text or "0"


def _fmt_inr(value: Decimal) -> str:
    text = _fmt(value)
    return text if "." in text else f"{text}.0"


def suggest_weekly_dose(
    inr: float,
    low: float,
    high: float,
    current_weekly_mg: float,
    *,
    comparator: Literal["<", "<=", ">", ">="] | None = None,
    step_mg: float = DEFAULT_STEP_MG,
) -> Suggestion | None:
    """The nomogram's weekly dose for `inr`, rounded to `step_mg`, or None where unsure."""
    numbers = (inr, low, high, current_weekly_mg, step_mg)
    if not all(math.isfinite(v) for v in numbers) or min(numbers) <= 0:
        return None
    lo, hi, value = _dec(low), _dec(high), _dec(inr)
    if hi - lo != 1 or not _LOW_BOUNDS[0] <= low <= _LOW_BOUNDS[1]:
        return None
    band, change = _band(value, lo, hi)
    # A censored value is usable only when every value it stands for lands in one band; above a
    # meter's upper limit the true INR may exceed 10, so ">" never is.
    if comparator is not None and not (comparator in ("<", "<=") and band == "far_below"):
        return None
    if value > _dec(ACCP_VITAMIN_K_ABOVE):
        return None
    current = _dec(current_weekly_mg)
    step = _dec(step_mg)
    exact = current * (100 + change) / 100
    if change == 0:
        new = current
    else:
        new = (exact / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
        if abs(new - exact) * 2 > abs(exact - current):
            return None
    span = f"{_fmt_inr(lo)}–{_fmt_inr(hi)}"
    shown = f"INR {comparator or ''}{_fmt_inr(value)}"
    if band == "in_range":
        action = f"keep the weekly dose at {_fmt(current)} mg"
    else:
        verb = "increase" if change > 0 else "reduce"
        pause = "pause warfarin, then " if band == "far_above" else ""
        action = (
            f"{pause}{verb} the weekly dose by {abs(change)} %: {_fmt(current)} mg → "
            f"{_fmt(new)} mg (exactly {_fmt(exact)} mg, rounded to {_fmt(step)} mg)"
        )
    where = {
        "far_below": "well below",
        "below": "below",
        "in_range": "within",
        "above": "above",
        "far_above": "well above",
    }[band]
    text = f"Nomogram suggestion, not an instruction: {shown} is {where} range {span}; {action}."
    return Suggestion(
        band=band,
        change_percent=change,
        pause=band == "far_above",
        current_weekly_mg=float(current),
        exact_weekly_mg=float(exact),
        new_weekly_mg=float(new),
        step_mg=float(step),
        text=text,
    )
