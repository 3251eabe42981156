"""Measurement schedules and which due slot a patient missed (the no-data alert).

A schedule is data (`telemed.catalogue.schedules`, where the programs' defaults are): slots
fall on local calendar days in Europe/Copenhagen counted from the enrolment day, each due at
`due_time` local time and missed once `grace_hours` have passed after that without a
measurement. A measurement counts for a slot when it was taken after the previous slot's
deadline (early is fine) — or later, once it is there: a late measurement clears the no-data
state even though it came after the deadline.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from telemed.catalogue.schedules import Schedule

LOCAL_TZ = ZoneInfo("Europe/Copenhagen")


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
