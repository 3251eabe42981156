"""What the pages show of a patient, worked out from the service's answers. Pure functions."""

from __future__ import annotations

import msgspec

from telemed import numbers
from telemed.catalogue.programs import parse_ak_stratum
from telemed.patients import PatientDetail

# What a program's patient measures, in the order the console shows the plots.
PROGRAM_METRICS = {
    "copd": ("spo2", "pulse", "resp_rate", "temperature", "fev1", "pef", "weight", "cat"),
    "ak": ("inr",),
}
# What a nurse may type in for a patient, by program.
NURSE_METRICS = {
    "copd": ("spo2", "pulse", "resp_rate", "temperature", "weight", "fev1", "pef"),
    "ak": ("inr",),
}


class MetricView(msgspec.Struct, frozen=True):
    code: str
    unit: str
    label: str
    low: float
    high: float
    step: float


class PatientView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    programs: list[str]
    metrics: list[MetricView]
    inr_range: tuple[float, float] | None = None


def unit_label(unit: str) -> str:
    return numbers.unit_label(unit)


def metric_view(code: str) -> MetricView:
    spec = numbers.metric_spec(code)
    step = 1.0 if spec.whole else (0.1 if code in ("inr", "temperature", "weight") else 1.0)
    if code == "fev1":
        step = 0.01
    unit = numbers.canonical_unit(code)
    return MetricView(code, unit, spec.unit, float(spec.min or 0), float(spec.max or 0), step)


def inr_range(stratum: str) -> tuple[float, float] | None:
    found = parse_ak_stratum(stratum)
    return found if found is not None and found[0] < found[1] else None


def running(detail: PatientDetail) -> list:
    return [e for e in detail.enrollments if e.end_date is None]


def patient_view(detail: PatientDetail, table: dict = PROGRAM_METRICS) -> PatientView:
    programs = [e.program for e in running(detail)]
    codes: list[str] = []
    for program in programs:
        codes += [c for c in table.get(program, ()) if c not in codes]
    ak = next((e for e in running(detail) if e.program == "ak"), None)
    return PatientView(
        id=str(detail.id),
        programs=programs,
        metrics=[metric_view(c) for c in codes],
        inr_range=inr_range(ak.stratum) if ak else None,
    )


def nurse_view(detail: PatientDetail) -> PatientView:
    view = patient_view(detail, NURSE_METRICS)
    if not view.metrics:
        # A patient in no program can still have any vital sign taken.
        return msgspec.structs.replace(
            view, metrics=[metric_view(c) for c in NURSE_METRICS["copd"]]
        )
    return view


def _values(enum: type) -> list[str]:
    return [member.value for member in enum]


def wound_choices() -> dict[str, list[str]]:
    """The options of the wound forms, by the name of their vocabulary (texts: enum.<name>.*)."""
    from wounds import observations as o

    return {
        "wound_type": _values(o.WoundType),
        "body_location": _values(o.BodyLocation),
        "laterality": _values(o.Laterality),
        "exudate_amount": _values(o.ExudateAmount),
        "exudate_type": _values(o.ExudateType),
        "infection_sign": _values(o.InfectionSign),
        "odour": _values(o.Odour),
        "pressure_category": _values(o.PressureCategory),
        "change_frequency": _values(o.ChangeFrequency),
        "hospital_visit": _values(o.HospitalVisit),
    }


# Wound cases waiting for the specialist team; the others wait for the nurse or are done.
FOR_SPECIALIST = ("submitted", "awaiting_specialist")


def wounds_of(cases: list, patient_id: object) -> list:
    """The patient's distinct wounds among queue items, newest case first."""
    seen: dict = {}
    for case in sorted(cases, key=lambda c: c.submitted_at, reverse=True):
        if case.patient_id == patient_id and case.wound_id not in seen:
            seen[case.wound_id] = case
    return list(seen.values())
