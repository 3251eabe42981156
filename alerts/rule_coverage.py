"""Rule coverage: every enrolled patient is watched by rules, checked three ways.

- `coverage()` (pure, for `telemed rules coverage`): every program and stratum the clinical
  catalogue accepts, with the rules its default set holds, or the reason it has none.
- `diagnose()` (pure): what keeps one enrolment's rules from being built as configured: a
  stratum outside the catalogue (no rules at all), a stored override that cannot be read, or
  one that no longer fits its rule (the rule then runs at its default).
- `check_rule_coverage()` (the scheduler's `rule_coverage` job) runs `diagnose` over every
  running enrolment in the database and raises one alert per patient and program
  (`coverage:<program>`) to the organisation holding the patient; when the rules build again it
  resolves that alert, or, if readings arrived meanwhile, says so and leaves it to a clinician.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection

from alerts.defaults import Override, default_rules, effective_per_rule
from alerts.lifecycle import change_state, upsert_breaches
from alerts.rules import AbsoluteRule, Breach, InrRule, MissedRule, Rule, Severity
from alerts.schedule import LOCAL_TZ
from telemed.catalogue.programs import PROGRAM_METRICS, PROGRAMS, accepted_strata
from telemed.catalogue.schedules import AK_SCHEDULES, COPD_SCHEDULES
from telemed.errors import Conflict

RULE_PREFIX = "coverage"
# The metric an alert about a program's rules is filed under: the one its schedule watches.
PROGRAM_METRIC = {"copd": next(iter(COPD_SCHEDULES)), "ak": next(iter(AK_SCHEDULES))}


def rule_key(program: str) -> str:
    return f"{RULE_PREFIX}:{program}"


class CoverageLine(msgspec.Struct, frozen=True):
    program: str
    stratum: str
    rules: tuple[str, ...]
    problem: str | None = None


def _num(x: float) -> str:
    return f"{x:g}"


def describe(rule: Rule) -> str:
    """A rule in a few words, for the coverage listing."""
    if isinstance(rule, InrRule):
        return (
            f"{rule.key} {rule.low:.1f}-{rule.high:.1f} "
            f"(urgent <= {rule.urgent_low:.1f}, >= {rule.urgent_high:.1f})"
        )
    if isinstance(rule, MissedRule):
        s = rule.schedule
        first = f"daily for {s.initial_days} days, then " if s.initial_days else ""
        return (
            f"{rule.key} ({first}every {s.every_n_days} days, due {s.due_time:%H:%M}, "
            f"{_num(s.grace_hours)} h grace)"
        )
    if isinstance(rule, AbsoluteRule):
        b = rule.bands
        limits = [
            f"{name} {sign} {_num(value)}"
            for name, sign, value in (
                ("red", "<", b.red_low),
                ("yellow", "<", b.yellow_low),
                ("yellow", ">", b.yellow_high),
                ("red", ">", b.red_high),
            )
            if value is not None
        ]
        return f"{rule.key} ({', '.join(limits)})"
    return rule.key


def gap(program: str, rules: Sequence[Rule]) -> str | None:
    """What a program's rule set lacks to watch a patient, or None."""
    main = InrRule if program == "ak" else AbsoluteRule
    missing = []
    if not any(isinstance(r, main) for r in rules):
        missing.append("INR rule" if program == "ak" else "COPD threshold rules")
    if not any(isinstance(r, MissedRule) for r in rules):
        missing.append("missed-measurement rule")
    return f"no {' and no '.join(missing)}" if missing else None


def coverage_of(program: str, stratum: str) -> CoverageLine:
    try:
        rules = default_rules(program, stratum)
    except ValueError as exc:
        return CoverageLine(program, stratum, (), f"no rules: {exc}")
    return CoverageLine(program, stratum, tuple(describe(r) for r in rules), gap(program, rules))


def coverage() -> list[CoverageLine]:
    """One line per program and stratum the catalogue accepts."""
    return [coverage_of(p, s) for p in PROGRAMS for s in accepted_strata(p)]


class Problem(msgspec.Struct, frozen=True):
    severity: Literal["yellow", "red"]
    text: str
    no_rules: bool = False


_OVERRIDE = msgspec.json.Decoder(Override)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def _which(raw: msgspec.Raw) -> str:
    """The rule and field a stored override names, as far as it can be read."""
    try:
        found = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "a threshold"
    if not isinstance(found, dict):
        return "a threshold"
    return f"{str(found.get('rule_key'))[:60]}.{str(found.get('field'))[:60]}"


def diagnose(program: str, stratum: str, overrides_json: str | bytes) -> list[Problem]:
    """Why the rules of an enrolment cannot be built as configured; [] when they can."""
    try:
        defaults = default_rules(program, stratum)
    except ValueError as exc:
        return [
            Problem(
                "red",
                f"no alert rules: {exc}. Readings are stored but judged by no rule, and missed "
                "measurements go unnoticed; enrol the patient in a stratum the catalogue covers",
                no_rules=True,
            )
        ]
    problems: list[Problem] = []
    lacking = gap(program, defaults)
    if lacking is not None:
        problems.append(Problem("red", f"the program's default rules have {lacking}"))
    overrides: list[Override] = []
    for raw in _RAW_LIST.decode(overrides_json):
        try:
            overrides.append(_OVERRIDE.decode(raw))
        except msgspec.ValidationError as exc:
            problems.append(
                Problem(
                    "red",
                    f"the stored override of {_which(raw)} cannot be read ({exc}), so alerting "
                    "cannot use the patient's thresholds; set that threshold again",
                )
            )
    _, invalid = effective_per_rule(defaults, overrides)
    for exc in invalid:
        problems.append(
            Problem(
                "yellow",
                f"rule {exc.rule_key} runs at its program default, not as set for the patient: "
                f"{exc}; set the threshold again",
            )
        )
    return problems


_ACTIVE = """
SELECT e.id AS enrollment_id, e.patient_id, p.pseudonym, e.program, e.stratum, e.start_date,
       e.stratum_outside_catalogue, c.organisation_id AS holder_id,
       coalesce((
           SELECT json_agg(json_build_object(
                      'rule_key', o.rule_key, 'field', o.field, 'value', o.value,
                      'set_by', o.set_by, 'set_at', o.set_at, 'reason', o.reason))
           FROM overrides_in_force(e.patient_id) o
       ), '[]')::text AS overrides
FROM enrollments e
JOIN patients p ON p.id = e.patient_id
LEFT JOIN current_responsibility c ON c.patient_id = e.patient_id
WHERE e.start_date <= %(today)s AND (e.end_date IS NULL OR e.end_date >= %(today)s)
ORDER BY e.patient_id, e.program
"""

_OPEN = """
SELECT id, patient_id, rule_key, program, severity, detail, created_at
FROM alerts
WHERE rule_key LIKE %(prefix)s AND state <> 'resolved'
"""

_READINGS_SINCE = """
SELECT count(*) AS n, min(measured_at) AS first, max(measured_at) AS last
FROM readings
WHERE patient_id = %(patient_id)s AND metric = ANY(%(metrics)s) AND received_at >= %(since)s
"""


class Unwatched(msgspec.Struct, frozen=True, kw_only=True):
    """A running enrolment whose rules cannot be built as configured (the admin's list)."""

    enrollment_id: uuid.UUID
    patient_id: uuid.UUID
    pseudonym: str
    program: str
    stratum: str
    start_date: date
    stratum_outside_catalogue: bool
    holder_id: uuid.UUID | None
    severity: Literal["yellow", "red"]
    no_rules: bool
    problems: list[str]


async def find_unwatched(
    conn: AsyncConnection, *, now: datetime
) -> tuple[set[tuple[uuid.UUID, str]], list[Unwatched]]:
    """The running enrolments, as (patient, program), and those whose rules cannot be built as
    configured."""
    today = now.astimezone(LOCAL_TZ).date()
    cur = await conn.execute(_ACTIVE, {"today": today})
    rows = await cur.fetchall()
    found = []
    for row in rows:
        problems = diagnose(row["program"], row["stratum"], row["overrides"])
        if problems:
            fields = {k: row[k] for k in Unwatched.__struct_fields__ if k in row}
            found.append(
                Unwatched(
                    **fields,
                    severity="red" if any(p.severity == "red" for p in problems) else "yellow",
                    no_rules=any(p.no_rules for p in problems),
                    problems=[p.text for p in problems],
                )
            )
    return {(row["patient_id"], row["program"]) for row in rows}, found


def _breach(item: Unwatched, now: datetime, at_least: str | None) -> Breach:
    name = "AK" if item.program == "ak" else "COPD"
    message = (
        f"Alert rules for the {name} enrolment ({item.stratum}) cannot be built as configured: "
        + "; ".join(item.problems)
    )
    # Without rules the enrolment was never watched; otherwise count from when this was found.
    since = datetime.combine(item.start_date, time(), tzinfo=LOCAL_TZ) if item.no_rules else now
    detail = {
        "problems": item.problems,
        "stratum": item.stratum,
        "enrollment_id": str(item.enrollment_id),
        "unwatched_since": since.isoformat(),
    }
    # An open alert never goes down (alerts.lifecycle), and a breach below its severity would
    # not replace its message: say the new state at the alert's severity.
    severity = max(Severity(item.severity), Severity(at_least or item.severity))
    return Breach(rule_key(item.program), PROGRAM_METRIC[item.program], severity, None,
                  message, detail, now)  # fmt: skip


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}"


async def _fixed(
    conn: AsyncConnection, alert: dict[str, Any], now: datetime, *, ended: bool
) -> str:
    """Resolve the alert of rules that build again (or of an enrolment that ended), or, when
    readings arrived meanwhile, say so on it and leave it open for a clinician to review them."""
    program = alert["program"]
    since = datetime.fromisoformat(alert["detail"].get("unwatched_since") or "")
    cur = await conn.execute(
        _READINGS_SINCE,
        {"patient_id": alert["patient_id"], "metrics": list(PROGRAM_METRICS[program]),
         "since": since},
    )  # fmt: skip
    seen = await cur.fetchone()
    what = "The enrolment ended" if ended else "The alert rules build again"
    if not seen["n"]:
        note = (
            f"{what} (checked {_local(now)}); no readings arrived while the rules could not be "
            "built as configured."
        )
        with contextlib.suppress(Conflict):  # a clinician resolved it meanwhile
            async with conn.transaction():
                await change_state(conn, alert["id"], "resolved", user_id=None, note=note)
        return "resolved"
    message = (
        f"{what} since {_local(now)}, but "
        f"{seen['n']} reading(s) measured {_local(seen['first'])} to {_local(seen['last'])} "
        "arrived while the rules could not be built as configured and were not judged by the "
        "rules as configured: review them, then resolve this alert"
    )
    detail = {**alert["detail"], "fixed_at": now.isoformat(), "unjudged_readings": seen["n"]}
    breach = Breach(alert["rule_key"], PROGRAM_METRIC[program], Severity(alert["severity"]),
                    None, message, detail, now)  # fmt: skip
    await upsert_breaches(conn, [(alert["patient_id"], program, breach)], now=now)
    return "noted"


async def check_rule_coverage(conn: AsyncConnection, *, now: datetime) -> dict[str, int]:
    """The scheduler's `rule_coverage` job; safe to run twice (an unchanged problem that has
    an open alert changes nothing)."""
    result = {"checked": 0, "unwatched": 0, "alerted": 0, "resolved": 0, "noted": 0}
    async with conn.transaction():
        running, found = await find_unwatched(conn, now=now)
        result["checked"] = len(running)
        cur = await conn.execute(_OPEN, {"prefix": f"{RULE_PREFIX}:%"})
        open_alerts = {(a["patient_id"], a["rule_key"]): a for a in await cur.fetchall()}
        result["unwatched"] = len(found)
        breaches = []
        for item in found:
            alert = open_alerts.get((item.patient_id, rule_key(item.program)))
            if (
                alert is not None
                and alert["detail"].get("problems") == item.problems
                and "fixed_at" not in alert["detail"]
            ):
                continue  # already said, and still so
            at_least = alert["severity"] if alert is not None else None
            breaches.append((item.patient_id, item.program, _breach(item, now, at_least)))
        result["alerted"] = len(await upsert_breaches(conn, breaches, now=now))
        broken = {(item.patient_id, rule_key(item.program)) for item in found}
        for key, alert in open_alerts.items():
            if key not in broken and "fixed_at" not in alert["detail"]:
                ended = (alert["patient_id"], alert["program"]) not in running
                result[await _fixed(conn, alert, now, ended=ended)] += 1
    return result
