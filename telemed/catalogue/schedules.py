"""Measuring schedules as data, and the default schedule of each program and stratum.

A `Schedule` says when a patient measures one metric: slots on local calendar days in
Europe/Copenhagen counted from the enrolment day, each due at `due_time` and missed once
`grace_hours` have passed (alerts.schedule finds the slot a patient missed).
"""

from __future__ import annotations

from datetime import time
from types import MappingProxyType

import msgspec

from telemed.catalogue.programs import check_stratum


class InvalidSchedule(ValueError):
    """A schedule whose values cannot describe a sensible measurement plan."""


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every `every_n_days` days, after `initial_days` days at every `initial_every_n_days`."""

    every_n_days: int
    due_time: time = time(10, 0)
    grace_hours: float = 4.0
    initial_days: int = 0
    initial_every_n_days: int = 1

    def __post_init__(self) -> None:
        if self.every_n_days < 1 or self.initial_every_n_days < 1:
            raise InvalidSchedule("every_n_days and initial_every_n_days must be at least 1")
        if self.initial_days < 0:
            raise InvalidSchedule("initial_days must not be negative")
        if self.due_time.tzinfo is not None:
            raise InvalidSchedule("due_time is local Europe/Copenhagen time: give it no tzinfo")
        shortest = self.every_n_days
        if self.initial_days > 0:
            shortest = min(shortest, self.initial_every_n_days)
        # Overlapping tolerance windows would let one measurement satisfy two slots.
        if not 0 <= self.grace_hours < 24 * shortest:
            raise InvalidSchedule(
                f"grace_hours must be at least 0 and below {24 * shortest} "
                f"(the shortest spacing of {shortest} day(s)), got {self.grace_hours}"
            )


# Danish COPD tele-monitoring enrols GOLD 3–4 patients and has them measure daily for 14 days,
# then weekly or as agreed (TeleCare Nord / FUT practice, CLINICAL.md). SpO2 and pulse come from
# one oximeter reading, so one no-data rule on SpO2 stands for the session.
COPD_SCHEDULES = MappingProxyType(
    {
        "spo2": Schedule(
            every_n_days=7,
            due_time=time(10, 0),
            grace_hours=4.0,
            initial_days=14,
            initial_every_n_days=1,
        ),
    }
)
# Self-testing AK patients in Denmark measure INR weekly (home self-management, CLINICAL.md);
# a day's grace because the agreed weekday often slips by one.
AK_SCHEDULES = MappingProxyType(
    {"inr": Schedule(every_n_days=7, due_time=time(12, 0), grace_hours=24.0)}
)


def default_schedules(program: str, stratum: str) -> dict[str, Schedule]:
    """Measuring schedules per metric for a program and stratum the catalogue accepts; raises
    UnknownProgram or UnknownStratum (both ValueError) for any other."""
    check_stratum(program, stratum)
    return dict(COPD_SCHEDULES if program == "copd" else AK_SCHEDULES)
