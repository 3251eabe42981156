"""Measurement schedules and which due slot a patient missed (the no-data alert).

A schedule is data: slots fall on local calendar days in Europe/Copenhagen counted from the
enrolment day, each due at `due_time` local time and missed once `grace_hours` have passed
after that without a measurement. A measurement counts for a slot when it was taken after the
previous slot's deadline (early is fine) — or later, once it is there: a late measurement
clears the no-data state even though it came after the deadline.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

LOCAL_TZ = ZoneInfo("Europe/Copenhagen")


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


class Slot(msgspec.Struct, frozen=True):
    index: int
    day: date
    due_at: datetime
    deadline: datetime


class MissedInfo(msgspec.Struct, frozen=True):
    """The latest slot whose deadline passed without a measurement.

    `slot_id` (the slot's local day) is stable across sweeps, so the caller raises one alert per
    slot; `missed_slots` counts the passed slots in a row since the last measurement.
    """

    slot_id: str
    slot_index: int
    slot_day: date
    due_at: datetime
    deadline: datetime
    missed_slots: int
    last_measured: datetime | None


def _initial_count(schedule: Schedule) -> int:
    return -(-schedule.initial_days // schedule.initial_every_n_days)


def slot_offset(schedule: Schedule, index: int) -> int:
    """Days from the enrolment day to slot `index`."""
    first = _initial_count(schedule)
    if index < first:
        return index * schedule.initial_every_n_days
    return schedule.initial_days + (index - first) * schedule.every_n_days


def _index_at_or_before(schedule: Schedule, day_offset: int) -> int | None:
    if day_offset < 0:
        return None
    if day_offset < schedule.initial_days:
        return day_offset // schedule.initial_every_n_days
    return _initial_count(schedule) + (day_offset - schedule.initial_days) // schedule.every_n_days


def slot(schedule: Schedule, enrolled_on: date, index: int) -> Slot:
    """Slot `index` with its due time and deadline in UTC.

    The due time is a local wall-clock time, so it moves by an hour in UTC across DST; the grace
    is elapsed time, added in UTC. A due time that does not exist on a spring-forward day is read
    with the offset before the change (zoneinfo's fold=0).
    """
    day = enrolled_on + timedelta(days=slot_offset(schedule, index))
    due = datetime.combine(day, schedule.due_time, tzinfo=LOCAL_TZ).astimezone(UTC)
    return Slot(index, day, due, due + timedelta(hours=schedule.grace_hours))


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def missed(
    schedule: Schedule, last_measured: datetime | None, enrolled_at: datetime, now: datetime
) -> MissedInfo | None:
    """The latest passed slot if it was missed, else None.

    Slots due before `enrolled_at` do not exist for the patient. The first real slot accepts any
    earlier measurement; later slots accept measurements after the previous slot's deadline.
    """
    _require_aware("enrolled_at", enrolled_at)
    _require_aware("now", now)
    if last_measured is not None:
        _require_aware("last_measured", last_measured)
    enrolled_on = enrolled_at.astimezone(LOCAL_TZ).date()
    index = _index_at_or_before(schedule, (now.astimezone(LOCAL_TZ).date() - enrolled_on).days)
    while index is not None and index >= 0:
        current = slot(schedule, enrolled_on, index)
        if current.deadline <= now:
            break
        index -= 1
    else:
        return None
    if current.due_at < enrolled_at:
        return None
    if last_measured is not None and last_measured > _window_start(
        schedule, enrolled_on, enrolled_at, index
    ):
        return None
    count = 1
    previous = index - 1
    while previous >= 0:
        earlier = slot(schedule, enrolled_on, previous)
        if earlier.due_at < enrolled_at:
            break
        if last_measured is not None and last_measured > _window_start(
            schedule, enrolled_on, enrolled_at, previous
        ):
            break
        count += 1
        previous -= 1
    return MissedInfo(
        slot_id=current.day.isoformat(),
        slot_index=index,
        slot_day=current.day,
        due_at=current.due_at,
        deadline=current.deadline,
        missed_slots=count,
        last_measured=last_measured,
    )


def slot_window(
    schedule: Schedule, enrolled_at: datetime, day: date
) -> tuple[datetime, datetime] | None:
    """(start, deadline) of the slot on local `day`: a measurement taken after `start` and at
    or before `deadline` was in time for it. None if no slot of the schedule falls on `day`."""
    _require_aware("enrolled_at", enrolled_at)
    enrolled_on = enrolled_at.astimezone(LOCAL_TZ).date()
    index = _index_at_or_before(schedule, (day - enrolled_on).days)
    if index is None:
        return None
    found = slot(schedule, enrolled_on, index)
    if found.day != day:
        return None
    return _window_start(schedule, enrolled_on, enrolled_at, index), found.deadline


def _window_start(
    schedule: Schedule, enrolled_on: date, enrolled_at: datetime, index: int
) -> datetime:
    if index == 0:
        return datetime.min.replace(tzinfo=UTC)
    previous = slot(schedule, enrolled_on, index - 1)
    if previous.due_at < enrolled_at:
        return datetime.min.replace(tzinfo=UTC)
    return previous.deadline


# Danish COPD tele-monitoring enrols GOLD 3–4 patients and has them measure daily for 14 days,
# then weekly or as agreed (TeleCare Nord / FUT practice, CLINICAL.md). SpO2 and pulse come from
# one oximeter reading, so one no-data rule on SpO2 stands for the session.
COPD_SCHEDULES: dict[str, Schedule] = {
    "spo2": Schedule(
        every_n_days=7,
        due_time=time(10, 0),
        grace_hours=4.0,
        initial_days=14,
        initial_every_n_days=1,
    ),
}
# Self-testing AK patients in Denmark measure INR weekly (home self-management, CLINICAL.md);
# a day's grace because the agreed weekday often slips by one.
AK_SCHEDULES: dict[str, Schedule] = {
    "inr": Schedule(every_n_days=7, due_time=time(12, 0), grace_hours=24.0),
}
COPD_STRATA = ("mild", "moderate", "severe")
_RANGE = re.compile(r"^\d+(\.\d+)?-\d+(\.\d+)?$")


def default_schedules(program: str, stratum: str) -> dict[str, Schedule]:
    """Measurement schedules per metric for a program and stratum."""
    if program == "copd":
        if stratum not in COPD_STRATA:
            raise ValueError(f"unknown COPD stratum {stratum!r}; expected one of {COPD_STRATA}")
        return dict(COPD_SCHEDULES)
    if program == "ak":
        if not _RANGE.match(stratum):
            raise ValueError(
                f"AK stratum must name the therapeutic range like '2.0-3.0', got {stratum!r}"
            )
        return dict(AK_SCHEDULES)
    raise ValueError(f"unknown program {program!r}; expected 'copd' or 'ak'")
