"""Which specialist team receives a wound case, and by when it must answer.

Pure functions over data: the rules and the service levels are rows an administrator manages
(tables wound_routing_rules and wound_service_levels); nothing here touches the database.

- A rule matches when each of its wound type, region and hospital is empty or equal to the
  case's (the hospital: any hospital taking part in the patient's care). Of the matching rules the
  lowest priority number wins, then the more specific one, then the older one.
- Working time is Monday to Friday within the team's opening hours in Europe/Copenhagen, less
  the Danish public holidays and the days most outpatient clinics close (Constitution Day,
  Christmas Eve, New Year's Eve).
- An urgent case is due a number of working hours after it arrives (counted from the next
  opening if it arrives outside hours); a normal case at closing time of the n-th working day
  after the day it arrived (Pleje.net: the specialist replies the next working day).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

import msgspec

COPENHAGEN: Final = ZoneInfo("Europe/Copenhagen")
Urgency = Literal["urgent", "normal"]

# Not public holidays by law, but days on which Danish outpatient clinics are closed.
CLOSED_DATES: Final = frozenset({(6, 5), (12, 24), (12, 31)})
# Store Bededag (fourth Friday after Easter) was abolished as a public holiday from 2024.
LAST_GREAT_PRAYER_DAY: Final = 2023


class RoutingRule(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    wound_type: str | None
    region: str | None
    hospital: str | None
    specialist_org_id: uuid.UUID
    priority: int

    def specificity(self) -> int:
        return sum(x is not None for x in (self.wound_type, self.region, self.hospital))


class PatientPlace(msgspec.Struct, frozen=True, kw_only=True):
    """Where a patient is treated: the region, and the hospitals of the teams in their care."""

    region: str | None
    hospitals: frozenset[str] = frozenset()


class ServiceLevel(msgspec.Struct, frozen=True, kw_only=True):
    urgency: Urgency
    working_hours: int | None = None
    working_days: int | None = None
    day_start: time = time(8, 0)
    day_end: time = time(15, 30)

    def __post_init__(self) -> None:
        if (self.working_hours is None) == (self.working_days is None):
            raise ValueError("a service level has either working_hours or working_days")
        if self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start")


def matches(rule: RoutingRule, wound_type: str, place: PatientPlace) -> bool:
    return (
        rule.wound_type in (None, wound_type)
        and (rule.region is None or rule.region == place.region)
        and (rule.hospital is None or rule.hospital in place.hospitals)
    )


def choose_rule(
    rules: Iterable[RoutingRule], wound_type: str, place: PatientPlace
) -> RoutingRule | None:
    candidates = [r for r in rules if matches(r, wound_type, place)]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.priority, -r.specificity(), r.id))


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous algorithm of Meeus, Jones and Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def danish_holidays(year: int) -> frozenset[date]:
    """Public holidays (helligdage) that fall on weekdays or not, and the closed dates."""
    easter = easter_sunday(year)
    offsets = [-3, -2, 0, 1, 39, 49, 50]  # Maundy Thursday ... Whit Monday
    if year <= LAST_GREAT_PRAYER_DAY:
        offsets.append(26)
    days = {easter + timedelta(days=n) for n in offsets}
    days |= {date(year, 1, 1), date(year, 12, 25), date(year, 12, 26)}
    days |= {date(year, month, day) for month, day in CLOSED_DATES}
    return frozenset(days)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in danish_holidays(day.year)


def next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def due_at(received: datetime, level: ServiceLevel, *, tz: ZoneInfo = COPENHAGEN) -> datetime:
    """When the answer to a case received at `received` (aware) is due, in UTC."""
    if received.tzinfo is None:
        raise ValueError("received must be timezone-aware")
    local = received.astimezone(tz)
    if level.working_days is not None:
        day = local.date()
        for _ in range(level.working_days):
            day = next_working_day(day)
        return datetime.combine(day, level.day_end, tz).astimezone(UTC)
    assert level.working_hours is not None
    return _add_working_time(local, timedelta(hours=level.working_hours), level, tz)


def _add_working_time(
    start: datetime, amount: timedelta, level: ServiceLevel, tz: ZoneInfo
) -> datetime:
    # Opening hours never span a DST change (those happen at night), so wall-clock arithmetic
    # within one day is exact.
    remaining = amount
    day, moment = start.date(), start.replace(tzinfo=None)
    while True:
        if is_working_day(day):
            opens = datetime.combine(day, level.day_start)
            closes = datetime.combine(day, level.day_end)
            begin = max(moment, opens)
            if begin < closes:
                if remaining <= closes - begin:
                    return (begin + remaining).replace(tzinfo=tz).astimezone(UTC)
                remaining -= closes - begin
        day += timedelta(days=1)
        moment = datetime.combine(day, time(0))
