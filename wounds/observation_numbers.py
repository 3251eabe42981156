"""The numbers in a nurse's wound observation (sizes in cm, pain 0–10): what her form accepts
for each (telemed.numbers, the same specs the page reads them by), and the refusal of a number
sent as null."""

from __future__ import annotations

from typing import Final

import msgspec

from telemed import numbers
from wounds.observations import FieldProblem

# The observation's numbers and what the nurse's form accepts for each (telemed.numbers).
NUMBER_FIELDS: Final = {
    "length_cm": "wound.length_cm",
    "width_cm": "wound.width_cm",
    "depth_cm": "wound.depth_cm",
    "pain": "wound.pain",
}


def number_spec(path: str) -> numbers.NumberSpec | None:
    """The spec of an observation's number field named by a path such as
    `case.observation.pain`."""
    head, _, name = path.rpartition(".")
    if not head.endswith("observation") or name not in NUMBER_FIELDS:
        return None
    return numbers.SPECS[NUMBER_FIELDS[name]]


def null_numbers(raw: bytes | str) -> list[FieldProblem]:
    """Numbers of a case part's observation sent as null. A number not measured is left out; a
    null is what a form sends when it could not read what was typed, so it is refused."""
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return []  # the decoder says why
    observation = doc.get("observation") if isinstance(doc, dict) else None
    if not isinstance(observation, dict):
        return []
    return [
        FieldProblem(
            name, "null_not_allowed", "leave the field out when not measured; null is no number"
        )
        for name in NUMBER_FIELDS
        if name in observation and observation[name] is None
    ]
