"""Programs, their strata, the therapeutic INR ranges the system accepts with their urgent
bounds, and the anticoagulant products.

A COPD patient is enrolled in a stratum (mild, moderate, severe); an AK patient in a therapeutic
INR range written like "2.0-3.0". A range is accepted only with urgent bounds lying outside it,
so that every accepted range has an INR rule (docs/alert-rules.md, "The clinical catalogue",
gives the decision and its sources):

- the low bound is 1.5 to 4.0 and the high bound at most 4.5, the range 0.5 to 1.5 wide, both
  bounds with one decimal;
- urgent high is INR >= 5.0 for every range (Danish laboratories phone results above 5.0; the
  ACCP band of 4.5-10 without bleeding starts there), which is why no range reaches above 4.5;
- urgent low is INR <= 1.5 for a range starting at 2.0 or above (CLINICAL.md); below 2.0 it is
  the low bound minus 0.5, the standard range's own distance and the step at which the dose
  nomogram moves into its strongest band, so 1.5-2.5 is urgent at 1.0 or below.

Values are kept in tenths of an INR unit, so the grid of ranges is exact.
"""

from __future__ import annotations

import re
from functools import cache
from types import MappingProxyType
from typing import Literal, get_args

import msgspec

# The programs, as a type (what an enrollment's `program` may be) and as a tuple.
Program = Literal["copd", "ak"]
PROGRAMS: tuple[Program, ...] = get_args(Program)
PROGRAM_NAMES = MappingProxyType(
    {"copd": "COPD (KOL) home monitoring", "ak": "oral anticoagulation (AK), INR self-testing"}
)
COPD_STRATA = ("mild", "moderate", "severe")
# What a program's patient measures: a COPD kit (oximeter, spirometer, scale, thermometer and the
# questionnaires) or an INR meter.
_COPD_KIT = ("spo2", "pulse", "resp_rate", "temperature", "fev1", "pef", "weight")
PROGRAM_METRICS = MappingProxyType({"copd": (*_COPD_KIT, "cat", "mrc"), "ak": ("inr",)})

# The policy, in tenths of an INR unit.
AK_LOW_MIN = 15
AK_HIGH_MAX = 45
AK_WIDTH_MIN = 5
AK_WIDTH_MAX = 15
URGENT_HIGH = 50
URGENT_LOW = 15
URGENT_LOW_MARGIN = 5

_AK_STRATUM = re.compile(r"([0-9])\.([0-9])-([0-9])\.([0-9])")


class UnknownProgram(ValueError):
    """A program the catalogue does not know."""

    def __init__(self, program: str) -> None:
        super().__init__(f"unknown program {_show(program)}; allowed: {', '.join(PROGRAMS)}")
        self.program = program


class UnknownStratum(ValueError):
    """A stratum the catalogue does not cover; `reason` says why, `allowed` what would do."""

    def __init__(self, program: str, stratum: str, reason: str) -> None:
        self.program, self.stratum, self.reason = program, stratum, reason
        self.allowed = allowed_text(program)
        super().__init__(f"{_show(stratum)} {reason}; allowed: {self.allowed}")


class InrRange(msgspec.Struct, frozen=True):
    """An accepted therapeutic range with the urgent bounds that go with it."""

    low: float
    high: float
    urgent_low: float
    urgent_high: float

    @property
    def stratum(self) -> str:
        return f"{self.low:.1f}-{self.high:.1f}"


class AkProduct(msgspec.Struct, frozen=True):
    """A Danish oral anticoagulant product (CLINICAL.md, "Doses"). Warfarin products are not
    substitutable for one another (Danish Medicines Agency, 20 April 2015), so the product
    matters; `scored` (a score line, so half tablets are given) is None where our sources do
    not say."""

    code: str
    name: str
    substance: Literal["warfarin", "phenprocoumon"]
    tablet_mg: float
    scored: bool | None


AK_PRODUCTS = MappingProxyType(
    {
        p.code: p
        for p in (
            AkProduct("marevan", "Marevan", "warfarin", 2.5, True),
            AkProduct("waran", "Waran", "warfarin", 2.5, True),
            AkProduct("warfarin_orion", 'Warfarin "Orion"', "warfarin", 2.5, True),
            AkProduct("marcoumar", "Marcoumar", "phenprocoumon", 3.0, None),
        )
    }
)


def _tenths(x: int) -> float:
    return x / 10


def urgent_low_for(low_tenths: int) -> int:
    """The urgent low bound, in tenths, of a range starting at `low_tenths`."""
    return min(URGENT_LOW, low_tenths - URGENT_LOW_MARGIN)


def _range_problem(low: int, high: int) -> str | None:
    """Why the range low-high (tenths) is not accepted, or None."""
    if high <= low:
        return "is not a range: the high bound must be above the low bound"
    if low < AK_LOW_MIN:
        return (
            f"starts below {_tenths(AK_LOW_MIN)}: no range in use starts lower, and an urgent "
            "low bound below it would be the INR of an untreated patient"
        )
    if high > AK_HIGH_MAX:
        return (
            f"ends above {_tenths(AK_HIGH_MAX)}: the urgent bound INR >= "
            f"{_tenths(URGENT_HIGH)} would not lie at least {_tenths(URGENT_LOW_MARGIN)} above it"
        )
    if not AK_WIDTH_MIN <= high - low <= AK_WIDTH_MAX:
        return (
            f"is {_tenths(high - low)} wide; a therapeutic range is "
            f"{_tenths(AK_WIDTH_MIN)} to {_tenths(AK_WIDTH_MAX)} wide"
        )
    return None


def parse_ak_stratum(stratum: str) -> tuple[float, float] | None:
    """The two numbers of an AK stratum written like "2.0-3.0", whether or not the catalogue
    accepts the range (to show what an older enrolment holds); None if it is not so written."""
    match = _AK_STRATUM.fullmatch(stratum)
    if match is None:
        return None
    a, b, c, d = (int(g) for g in match.groups())
    return _tenths(10 * a + b), _tenths(10 * c + d)


def inr_range(stratum: str) -> InrRange:
    """The accepted range an AK stratum names, with its urgent bounds; UnknownStratum if none."""
    match = _AK_STRATUM.fullmatch(stratum)
    if match is None:
        raise UnknownStratum(
            "ak", stratum, "is not written like 2.0-3.0 (one decimal each, a point as decimal sign)"
        )
    a, b, c, d = (int(g) for g in match.groups())
    low, high = 10 * a + b, 10 * c + d
    problem = _range_problem(low, high)
    if problem is not None:
        raise UnknownStratum("ak", stratum, problem)
    return InrRange(_tenths(low), _tenths(high), _tenths(urgent_low_for(low)), _tenths(URGENT_HIGH))


@cache
def ak_ranges() -> tuple[InrRange, ...]:
    """Every accepted range, by low then high bound."""
    found = []
    for low in range(AK_LOW_MIN, AK_HIGH_MAX + 1):
        for high in range(low + 1, AK_HIGH_MAX + 1):
            if _range_problem(low, high) is None:
                found.append(inr_range(f"{low / 10:.1f}-{high / 10:.1f}"))
    return tuple(found)


def accepted_strata(program: str) -> tuple[str, ...]:
    """Every stratum the catalogue accepts for `program`."""
    if program == "copd":
        return COPD_STRATA
    if program == "ak":
        return tuple(r.stratum for r in ak_ranges())
    raise UnknownProgram(program)


def check_stratum(program: str, stratum: str) -> None:
    """Raise UnknownProgram or UnknownStratum unless the catalogue covers the pair."""
    if program == "copd":
        if stratum not in COPD_STRATA:
            raise UnknownStratum("copd", stratum, "is not a COPD stratum")
    elif program == "ak":
        inr_range(stratum)
    else:
        raise UnknownProgram(program)


def accepts(program: str, stratum: str) -> bool:
    try:
        check_stratum(program, stratum)
    except ValueError:
        return False
    return True


def allowed_text(program: str) -> str:
    """What the catalogue accepts for a program, in a sentence for an error message."""
    if program == "copd":
        return f"one of {', '.join(COPD_STRATA)}"
    if program == "ak":
        return (
            "a therapeutic INR range written low-high with one decimal each, e.g. 2.0-3.0 or "
            f"2.5-3.5: low bound {_tenths(AK_LOW_MIN)} to {_tenths(AK_HIGH_MAX - AK_WIDTH_MIN)}, "
            f"high bound at most {_tenths(AK_HIGH_MAX)}, {_tenths(AK_WIDTH_MIN)} to "
            f"{_tenths(AK_WIDTH_MAX)} wide"
        )
    return f"a program first ({', '.join(PROGRAMS)})"


def _show(text: str, limit: int = 30) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
