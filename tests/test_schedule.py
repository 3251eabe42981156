from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.schedule import LOCAL_TZ, missed, slot, slot_offset
from telemed.catalogue.schedules import InvalidSchedule, Schedule, default_schedules

COPD = Schedule(every_n_days=7, due_time=time(10), grace_hours=4, initial_days=14)
WEEKLY = Schedule(every_n_days=7, due_time=time(12), grace_hours=24)


def local(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=LOCAL_TZ)


ENROLLED = local(1, 8)  # Friday 1 March 2024, before the 10:00 due time


def test_slot_offsets_daily_then_weekly() -> None:
    assert [slot_offset(COPD, i) for i in range(16)] == [*range(14), 14, 21]
    every_other = Schedule(every_n_days=7, initial_days=5, initial_every_n_days=2)
    assert [slot_offset(every_other, i) for i in range(5)] == [0, 2, 4, 5, 12]


def test_nothing_missed_before_the_first_deadline() -> None:
    assert missed(COPD, None, ENROLLED, local(1, 13, 59)) is None


def test_first_slot_missed_at_its_deadline() -> None:
    info = missed(COPD, None, ENROLLED, local(1, 14))
    assert info is not None
    assert (info.slot_id, info.slot_index, info.missed_slots) == ("2024-03-01", 0, 1)
    assert info.due_at == local(1, 10) and info.deadline == local(1, 14)


def test_a_measurement_in_the_window_satisfies_the_slot() -> None:
    assert missed(COPD, local(1, 9), ENROLLED, local(1, 20)) is None
    assert missed(COPD, local(1, 14), ENROLLED, local(1, 20)) is None  # at the deadline


def test_slot_due_before_enrolment_does_not_exist() -> None:
    enrolled = local(1, 15)
    assert missed(COPD, None, enrolled, local(1, 23)) is None
    assert missed(COPD, None, enrolled, local(2, 13)) is None
    info = missed(COPD, None, enrolled, local(2, 14))
    assert info is not None and info.slot_id == "2024-03-02" and info.missed_slots == 1


def test_one_slot_id_across_sweeps_until_the_next_slot() -> None:
    ids = [missed(COPD, None, ENROLLED, now) for now in (local(2, 14, 30), local(3, 9))]
    assert [i.slot_id for i in ids if i] == ["2024-03-02", "2024-03-02"]
    info = missed(COPD, None, ENROLLED, local(3, 14))
    assert info is not None and info.slot_id == "2024-03-03" and info.missed_slots == 3


def test_early_measurement_counts_for_the_next_slot_and_late_one_clears() -> None:
    # After the 2 March deadline, so it belongs to the 3 March slot.
    assert missed(COPD, local(2, 20), ENROLLED, local(3, 14)) is None
    info = missed(COPD, local(2, 9), ENROLLED, local(3, 14))
    assert info is not None and info.slot_id == "2024-03-03" and info.missed_slots == 1
    # Measured after the deadline: the slot was late, but the patient is measuring again.
    assert missed(COPD, local(3, 15), ENROLLED, local(3, 16)) is None


def test_weekly_phase_after_fourteen_days() -> None:
    # Last measured on day 13 (14 March); the next slot is day 14 (15 March), then 22 March.
    last = local(14, 9)
    assert missed(COPD, last, ENROLLED, local(15, 13)) is None
    info = missed(COPD, last, ENROLLED, local(20, 12))
    assert info is not None and info.slot_id == "2024-03-15" and info.missed_slots == 1
    # Any measurement during the week after the 15 March deadline counts for 22 March.
    assert missed(COPD, local(16, 9), ENROLLED, local(22, 23)) is None
    assert missed(COPD, local(15, 9), ENROLLED, local(22, 13, 59)) is None
    info = missed(COPD, local(15, 9), ENROLLED, local(22, 14))
    assert info is not None and info.slot_id == "2024-03-22" and info.missed_slots == 1


def test_counts_every_missed_slot_since_the_last_measurement() -> None:
    info = missed(COPD, None, ENROLLED, local(22, 15))
    assert info is not None and info.missed_slots == 14 + 2  # 14 daily, 15 and 22 March


def test_due_time_is_local_across_daylight_saving_time() -> None:
    # Copenhagen moves to CEST on 31 March 2024 and back on 27 October 2024.
    enrolled_on = date(2024, 3, 1)
    daily = Schedule(every_n_days=1, due_time=time(10), grace_hours=4)
    before, after = slot(daily, enrolled_on, 29), slot(daily, enrolled_on, 30)
    assert before.day == date(2024, 3, 30) and before.due_at == datetime(2024, 3, 30, 9, tzinfo=UTC)
    assert after.day == date(2024, 3, 31) and after.due_at == datetime(2024, 3, 31, 8, tzinfo=UTC)
    # Grace is elapsed time: 4 h after 08:00 UTC, 14:00 local summer time.
    assert after.deadline == datetime(2024, 3, 31, 12, tzinfo=UTC)
    october = slot(daily, enrolled_on, (date(2024, 10, 27) - enrolled_on).days)
    assert october.due_at == datetime(2024, 10, 27, 9, tzinfo=UTC)


def test_due_time_inside_the_spring_gap_uses_the_earlier_offset() -> None:
    night = Schedule(every_n_days=1, due_time=time(2, 30), grace_hours=1)
    gap = slot(night, date(2024, 3, 31), 0)
    assert gap.due_at == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    ambiguous = slot(night, date(2024, 10, 27), 0)
    assert ambiguous.due_at == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_missed_across_the_dst_change() -> None:
    daily = Schedule(every_n_days=1, due_time=time(10), grace_hours=4)
    enrolled = local(30, 8)
    assert missed(daily, local(30, 9), enrolled, local(31, 13, 59)) is None
    info = missed(daily, local(30, 9), enrolled, local(31, 14))
    assert info is not None and info.slot_id == "2024-03-31"
    assert info.deadline == datetime(2024, 3, 31, 12, tzinfo=UTC)


def test_weekly_inr_with_a_days_grace() -> None:
    enrolled = local(1, 8)
    assert missed(WEEKLY, None, enrolled, local(2, 11, 59)) is None
    info = missed(WEEKLY, None, enrolled, local(2, 12))
    assert info is not None and info.slot_id == "2024-03-01"
    assert missed(WEEKLY, local(5, 18), enrolled, local(9, 12)) is None
    info = missed(WEEKLY, local(5, 18), enrolled, local(16, 12))
    assert info is not None and info.slot_id == "2024-03-15" and info.missed_slots == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"every_n_days": 0}, "at least 1"),
        ({"every_n_days": 1, "grace_hours": 24}, "below 24"),
        ({"every_n_days": 7, "grace_hours": 30, "initial_days": 14}, "below 24"),
        ({"every_n_days": 7, "grace_hours": -1}, "at least 0"),
        ({"every_n_days": 7, "due_time": time(10, tzinfo=UTC)}, "no tzinfo"),
        ({"every_n_days": 7, "initial_days": -1}, "negative"),
    ],
)
def test_schedule_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(InvalidSchedule, match=fragment):
        Schedule(**kwargs)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        missed(COPD, None, datetime(2024, 3, 1), local(2, 12))
    with pytest.raises(ValueError, match="timezone-aware"):
        missed(COPD, datetime(2024, 3, 1), ENROLLED, local(2, 12))


def test_default_schedules() -> None:
    copd = default_schedules("copd", "severe")
    assert copd["spo2"] == Schedule(
        every_n_days=7, due_time=time(10), grace_hours=4, initial_days=14, initial_every_n_days=1
    )
    assert default_schedules("ak", "2.5-3.5")["inr"].every_n_days == 7
    for program, stratum in (("copd", "extreme"), ("ak", "high"), ("hf", "mild")):
        with pytest.raises(ValueError, match=stratum if program != "hf" else program):
            default_schedules(program, stratum)


schedules = st.builds(
    Schedule,
    every_n_days=st.integers(1, 14),
    due_time=st.times(),
    grace_hours=st.floats(0, 23.9),
    initial_days=st.integers(0, 20),
    initial_every_n_days=st.integers(1, 3),
)
moments = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)


@given(schedules, moments, st.floats(0, 24 * 90), st.floats(0, 24 * 30) | st.none())
def test_missed_invariants(
    schedule: Schedule, enrolled: datetime, after_hours: float, since_last: float | None
) -> None:
    now = enrolled + timedelta(hours=after_hours)
    last = None if since_last is None else now - timedelta(hours=since_last)
    info = missed(schedule, last, enrolled, now)
    assert missed(schedule, now, enrolled, now) is None  # a measurement just now clears it
    if info is None:
        return
    assert enrolled <= info.due_at <= info.deadline <= now
    assert info.deadline <= now and info.missed_slots >= 1
    enrolled_on = enrolled.astimezone(LOCAL_TZ).date()
    assert slot(schedule, enrolled_on, info.slot_index + 1).deadline > now
    assert last is None or last <= info.deadline
    # The same sweep a minute later, still before the next deadline, names the same slot.
    later = now + timedelta(minutes=1)
    if slot(schedule, enrolled_on, info.slot_index + 1).deadline > later:
        again = missed(schedule, last, enrolled, later)
        assert again is not None and again.slot_id == info.slot_id
