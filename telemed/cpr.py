"""Shape validation of Danish CPR numbers (never logged, never in a URL).

The modulus-11 check is not used: since 2007 CPR numbers are issued that fail it
(CPR-kontoret). We check ten digits, a real date, and the century given by the 7th digit.
"""

from __future__ import annotations

import re
from datetime import date

_CPR = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d{4})$")


class CprError(ValueError):
    pass


def _century(yy: int, digit7: int) -> int:
    if digit7 <= 3:
        return 1900
    if digit7 in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def normalise_cpr(value: str) -> str:
    """Return the ten digits of a CPR number written as DDMMYYSSSS or DDMMYY-SSSS."""
    m = _CPR.match(value.strip())
    if not m:
        raise CprError("must be ten digits, DDMMYYSSSS or DDMMYY-SSSS")
    return "".join(m.groups())


def birth_date(cpr: str) -> date:
    digits = normalise_cpr(cpr)
    dd, mm, yy, d7 = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    try:
        return date(_century(yy, d7) + yy, mm, dd)
    except ValueError:
        raise CprError("the first six digits are not a valid date") from None
