"""Routing rules and due times: pure functions, checked against the calendar and a brute-force
count of working minutes."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wounds.routing import (
    COPENHAGEN,
    PatientPlace,
    RoutingRule,
    ServiceLevel,
    choose_rule,
    danish_holidays,
    due_at,
    easter_sunday,
    is_working_day,
)

URGENT = ServiceLevel(urgency="urgent", working_hours=4)
NORMAL = ServiceLevel(urgency="normal", working_days=1)
CLINIC, VASCULAR, ENDO = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=COPENHAGEN)


# --- calendar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2000, date(2000, 4, 23)), (2019, date(2019, 4, 21)), (2024, date(2024, 3, 31)),
     (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2038, date(2038, 4, 25))],
)  # fmt: skip
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


@given(st.integers(1900, 2200))
def test_easter_is_a_sunday_in_its_window(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


def test_danish_holidays_2025() -> None:
    expected = {
        date(2025, 1, 1),
        date(2025, 4, 17),  # skærtorsdag
        date(2025, 4, 18),  # langfredag
        date(2025, 4, 20),
        date(2025, 4, 21),  # 2. påskedag
        date(2025, 5, 29),  # Kristi himmelfartsdag
        date(2025, 6, 8),
        date(2025, 6, 9),  # 2. pinsedag
        date(2025, 6, 5),  # grundlovsdag: clinics closed
        date(2025, 12, 24),
        date(2025, 12, 25),
        date(2025, 12, 26),
        date(2025, 12, 31),
    }
    assert danish_holidays(2025) == expected


def test_great_prayer_day_ends_after_2023() -> None:
    assert date(2023, 5, 5) in danish_holidays(2023)
    assert not is_working_day(date(2023, 5, 5))
    assert is_working_day(date(2024, 4, 26))


# --- due times: examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "level", "due"),
    [
        (local(2025, 3, 4, 10, 0), NORMAL, local(2025, 3, 5, 15, 30)),  # Tue -> Wed
        (local(2025, 3, 7, 16, 0), NORMAL, local(2025, 3, 10, 15, 30)),  # Fri evening -> Mon
        (local(2025, 3, 8, 11, 0), NORMAL, local(2025, 3, 10, 15, 30)),  # Sat -> Mon
        (local(2025, 4, 16, 9, 0), NORMAL, local(2025, 4, 22, 15, 30)),  # over Easter
        (local(2025, 3, 3, 9, 0), URGENT, local(2025, 3, 3, 13, 0)),
        (local(2025, 3, 3, 6, 0), URGENT, local(2025, 3, 3, 12, 0)),  # before opening
        (local(2025, 3, 3, 14, 0), URGENT, local(2025, 3, 4, 10, 30)),  # 1.5 h + 2.5 h
        (local(2025, 3, 3, 11, 30), URGENT, local(2025, 3, 3, 15, 30)),  # exactly at closing
        (local(2025, 3, 7, 15, 0), URGENT, local(2025, 3, 10, 11, 30)),  # over a weekend
        (local(2025, 3, 28, 14, 0), URGENT, local(2025, 3, 31, 10, 30)),  # over the DST change
        (local(2025, 12, 23, 14, 0), URGENT, local(2025, 12, 29, 10, 30)),  # over Christmas
        (
            local(2025, 3, 3, 9, 0),
            ServiceLevel(urgency="normal", working_days=2, day_end=time(14, 0)),
            local(2025, 3, 5, 14, 0),
        ),
    ],
)
def test_due_at_examples(received: datetime, level: ServiceLevel, due: datetime) -> None:
    assert due_at(received, level) == due
    assert due_at(received, level).tzinfo is UTC


def test_due_at_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        due_at(datetime(2025, 3, 3, 9, 0), URGENT)


def test_service_level_is_hours_or_days() -> None:
    with pytest.raises(ValueError):
        ServiceLevel(urgency="urgent", working_hours=4, working_days=1)
    with pytest.raises(ValueError):
        ServiceLevel(urgency="urgent")
    with pytest.raises(ValueError):
        ServiceLevel(urgency="urgent", working_hours=4, day_start=time(16), day_end=time(8))


# --- due times: properties against a brute-force count --------------------------------------


def _working_minute(moment: datetime, level: ServiceLevel) -> bool:
    """Whether the minute starting at `moment` (Copenhagen wall clock) is working time."""
    return is_working_day(moment.date()) and level.day_start <= moment.time() < level.day_end


def working_minutes(start: datetime, end: datetime, level: ServiceLevel) -> int:
    """Counted one wall-clock minute at a time, the slow obvious way."""
    moment = start.astimezone(COPENHAGEN).replace(tzinfo=None)
    stop = end.astimezone(COPENHAGEN).replace(tzinfo=None)
    count = 0
    while moment < stop:
        count += _working_minute(moment, level)
        moment += timedelta(minutes=1)
    return count


instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(second=0, microsecond=0))
levels_in_hours = st.builds(
    lambda hours, start, length: ServiceLevel(
        urgency="urgent",
        working_hours=hours,
        day_start=time(start),
        day_end=time(start + length, 30),
    ),
    st.integers(1, 8),
    st.integers(6, 9),
    st.integers(6, 9),
)


@settings(max_examples=60, deadline=None)
@given(instants, levels_in_hours)
def test_urgent_due_is_exactly_n_working_hours_later(
    received: datetime, level: ServiceLevel
) -> None:
    due = due_at(received, level)
    assert due > received
    assert working_minutes(received, due, level) == level.working_hours * 60
    due_local = due.astimezone(COPENHAGEN)
    assert is_working_day(due_local.date())
    assert level.day_start < due_local.time() <= level.day_end


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(1, 5))
def test_normal_due_is_closing_time_of_the_nth_working_day(received: datetime, n: int) -> None:
    level = ServiceLevel(urgency="normal", working_days=n)
    due = due_at(received, level).astimezone(COPENHAGEN)
    assert due.time() == level.day_end
    day, counted = received.astimezone(COPENHAGEN).date(), 0
    while day < due.date():
        day += timedelta(days=1)
        counted += is_working_day(day)
    assert counted == n
    assert is_working_day(due.date())


@settings(max_examples=100, deadline=None)
@given(instants, st.integers(0, 72 * 60), st.sampled_from([URGENT, NORMAL]))
def test_a_later_case_is_never_due_earlier(
    received: datetime, minutes_later: int, level: ServiceLevel
) -> None:
    later = received + timedelta(minutes=minutes_later)
    assert due_at(later, level) >= due_at(received, level)


# --- routing rules --------------------------------------------------------------------------

PLACE = PatientPlace(region="Region Nordjylland", hospitals=frozenset({"Aalborg UH"}))


def rule(rule_id: int, org: uuid.UUID, *, priority: int = 100, **match: str | None) -> RoutingRule:
    return RoutingRule(
        id=rule_id,
        wound_type=match.get("wound_type"),
        region=match.get("region"),
        hospital=match.get("hospital"),
        specialist_org_id=org,
        priority=priority,
    )


def test_no_rule_no_route() -> None:
    assert choose_rule([], "pressure_ulcer", PLACE) is None
    other_region = rule(1, CLINIC, region="Region Hovedstaden")
    assert choose_rule([other_region], "pressure_ulcer", PLACE) is None


def test_the_more_specific_rule_wins_at_equal_priority() -> None:
    rules = [
        rule(1, CLINIC, region="Region Nordjylland"),
        rule(2, ENDO, region="Region Nordjylland", wound_type="diabetic_foot_ulcer"),
        rule(3, VASCULAR, wound_type="arterial_ulcer", hospital="Aalborg UH"),
    ]
    assert choose_rule(rules, "diabetic_foot_ulcer", PLACE).specialist_org_id == ENDO
    assert choose_rule(rules, "arterial_ulcer", PLACE).specialist_org_id == VASCULAR
    assert choose_rule(rules, "pressure_ulcer", PLACE).specialist_org_id == CLINIC
    elsewhere = PatientPlace(region="Region Nordjylland", hospitals=frozenset({"Hjørring"}))
    assert choose_rule(rules, "arterial_ulcer", elsewhere).specialist_org_id == CLINIC


def test_priority_comes_before_specificity() -> None:
    rules = [
        rule(1, ENDO, wound_type="diabetic_foot_ulcer", region="Region Nordjylland"),
        rule(2, CLINIC, priority=10),
    ]
    assert choose_rule(rules, "diabetic_foot_ulcer", PLACE).id == 2


rules_strategy = st.lists(
    st.builds(
        rule,
        st.integers(1, 10_000),
        st.sampled_from([CLINIC, VASCULAR, ENDO]),
        priority=st.integers(0, 3),
        wound_type=st.sampled_from([None, "pressure_ulcer", "arterial_ulcer"]),
        region=st.sampled_from([None, "Region Nordjylland", "Region Sjælland"]),
        hospital=st.sampled_from([None, "Aalborg UH", "Roskilde"]),
    ),
    max_size=12,
    unique_by=lambda r: r.id,
)


@given(rules_strategy, st.sampled_from(["pressure_ulcer", "arterial_ulcer", "burn"]), st.randoms())
def test_choice_is_a_match_and_ignores_order_and_non_matching_rules(
    rules: list[RoutingRule], wound_type: str, rnd: random.Random
) -> None:
    chosen = choose_rule(rules, wound_type, PLACE)
    shuffled = rules[:]
    rnd.shuffle(shuffled)
    assert choose_rule(shuffled, wound_type, PLACE) == chosen
    matching = [
        r
        for r in rules
        if r.wound_type in (None, wound_type)
        and r.region in (None, PLACE.region)
        and r.hospital in (None, *PLACE.hospitals)
    ]
    assert (chosen is None) == (not matching)
    if chosen is not None:
        assert chosen in matching
        assert chosen.priority == min(r.priority for r in matching)
        strays = [rule(20_000, VASCULAR, priority=0, region="Region Syddanmark")]
        assert choose_rule(rules + strays, wound_type, PLACE) == chosen
