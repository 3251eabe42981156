"""A patient's thresholds: the rules in force, where each value comes from, and changing them.

Program defaults are code (alerts/defaults.py, each value with its source); a specialist's change
for one patient is a row in `threshold_overrides` with who, when and why, never an update, so
the history stays. A change is validated against the whole merged rule (a yellow limit moved
past the red one is refused, naming the field) before anything is written.

Also what follows from the INR range in force: the patient's time in therapeutic range, and
the nomogram's weekly dose suggestion shown beside a specialist's instruction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
from psycopg.types.json import Jsonb

from alerts import doses
from alerts.defaults import (
    EffectiveRule,
    Override,
    OverrideValue,
    UnknownStratum,
    effective_per_rule,
    parse_inr_range,
)
from alerts.hooks import program_defaults
from alerts.nomogram import DEFAULT_STEP_MG, Suggestion, suggest_weekly_dose
from alerts.rules import InrRule, Rule, as_comparator
from alerts.schedule import LOCAL_TZ
from alerts.threshold_changes import (
    ThresholdChange,
    ThresholdsUpdate,
    plausible_bounds,
    removable,
    stored_value,
    validate_changes,
)
from alerts.ttr import InrResult, TtrResult, ttr
from telemed import audit
from telemed.access import Actor, require_patient
from telemed.db import AsyncConn, Queries
from telemed.errors import FieldProblem, Invalid, refuse_nul, required_reason

Q = Queries("thresholds", folder=Path(__file__).parent / "sql")
DEFAULTS_SOURCE = "program defaults (alerts/defaults.py; sources in docs/alert-rules.md)"


class FieldOut(msgspec.Struct, kw_only=True):
    field: str
    value: OverrideValue
    source: Literal["default", "override"]
    default: OverrideValue
    set_by: uuid.UUID | None = None
    set_by_name: str | None = None
    set_at: datetime | None = None
    reason: str | None = None
    # What the form may do with the field: remove it on purpose, and the number it accepts.
    removable: bool = False
    spec: dict[str, Any] | None = None
    # Removed by a null value before removals had to be explicit: perhaps a typo; confirm it.
    unconfirmed_removal: bool = False


class RuleOut(msgspec.Struct, kw_only=True):
    key: str
    kind: str
    metric: str
    enabled: bool
    fields: list[FieldOut]
    rule: dict[str, Any]


class ProgramRules(msgspec.Struct, kw_only=True):
    program: str
    stratum: str
    defaults_source: str = DEFAULTS_SOURCE
    rules: list[RuleOut]
    problems: list[str] = []


class ThresholdsOut(msgspec.Struct, kw_only=True):
    patient_id: uuid.UUID
    programs: list[ProgramRules]


class OverrideRecord(msgspec.Struct, kw_only=True):
    id: int
    rule_key: str
    field: str
    value: OverrideValue
    reset: bool
    set_by: uuid.UUID
    set_by_name: str
    set_at: datetime
    reason: str


class _Enrollment(msgspec.Struct, frozen=True):
    program: str
    stratum: str


class _Current(msgspec.Struct, frozen=True):
    overrides: list[Override]
    names: dict[str, str]
    # Limits in force that a null value removed before removals had to be explicit.
    unconfirmed: frozenset[tuple[str, str]] = frozenset()


async def _enrollments(conn: AsyncConn, patient_id: uuid.UUID) -> list[_Enrollment]:
    cur = await conn.execute(Q.running_enrollments, {"patient_id": patient_id})
    return msgspec.convert(await cur.fetchall(), list[_Enrollment])


async def _current(conn: AsyncConn, patient_id: uuid.UUID) -> _Current:
    cur = await conn.execute(Q.current_overrides, {"patient_id": patient_id})
    rows = await cur.fetchall()
    overrides = [
        Override(
            rule_key=r["rule_key"],
            field=r["field"],
            value=r["value"],
            set_by=str(r["set_by"]),
            set_at=r["set_at"],
            reason=r["reason"],
        )
        for r in rows
    ]
    unconfirmed = frozenset(
        (r["rule_key"], r["field"])
        for r in rows
        if r["value"] in (None, False) and not r["explicit_removal"]
    )
    return _Current(overrides, {str(r["set_by"]): r["set_by_name"] for r in rows}, unconfirmed)


def _spec(rule: Rule, field: str) -> dict[str, Any] | None:
    spec = plausible_bounds(rule, field)
    return msgspec.to_builtins(spec) if spec is not None else None


def _kind(rule: Rule) -> str:
    """The rule's kind as its JSON form tags it (`kind`); every rule kind is tagged by name."""
    tag = rule.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"rule {rule.key!r} has no kind tag, got {tag!r}")
    return tag


def _rule_out(item: EffectiveRule, current: _Current) -> RuleOut:
    names = current.names
    fields = [
        FieldOut(
            field=f.field,
            value=f.value,
            source=f.source,
            default=f.default,
            set_by=uuid.UUID(f.set_by) if f.set_by else None,
            set_by_name=names.get(f.set_by) if f.set_by else None,
            set_at=f.set_at,
            reason=f.reason,
            removable=f.field != "enabled" and removable(item.rule, f.field),
            spec=_spec(item.rule, f.field),
            unconfirmed_removal=f.source == "override"
            and (item.key, f.field) in current.unconfirmed,
        )
        for f in item.fields
    ]
    rule: Rule = item.rule
    return RuleOut(
        key=item.key,
        kind=_kind(rule),
        metric=rule.metric,
        enabled=item.enabled,
        fields=fields,
        rule=msgspec.to_builtins(rule),
    )


def _program_rules(enrollment: _Enrollment, current: _Current) -> ProgramRules:
    defaults = program_defaults(enrollment.program, enrollment.stratum)
    if defaults is None:
        return ProgramRules(
            program=enrollment.program,
            stratum=enrollment.stratum,
            rules=[],
            problems=[f"no default rules for stratum {enrollment.stratum!r}"],
        )
    effective, problems = effective_per_rule(defaults, current.overrides)
    return ProgramRules(
        program=enrollment.program,
        stratum=enrollment.stratum,
        rules=[_rule_out(item, current) for item in effective],
        problems=[f"{p} (the rule is evaluated at its default)" for p in problems],
    )


async def _thresholds(conn: AsyncConn, patient_id: uuid.UUID) -> ThresholdsOut:
    current = await _current(conn, patient_id)
    programs = [_program_rules(e, current) for e in await _enrollments(conn, patient_id)]
    return ThresholdsOut(patient_id=patient_id, programs=programs)


async def get_thresholds(conn: AsyncConn, actor: Actor, patient_id: uuid.UUID) -> ThresholdsOut:
    await require_patient(conn, actor, patient_id)
    async with conn.transaction():
        out = await _thresholds(conn, patient_id)
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type="thresholds")
    return out


async def threshold_history(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, *, limit: int = 500
) -> list[OverrideRecord]:
    await require_patient(conn, actor, patient_id)
    async with conn.transaction():
        cur = await conn.execute(Q.override_history, {"patient_id": patient_id, "limit": limit})
        rows = await cur.fetchall()
        await audit.record(
            conn, actor, "read", patient_id=patient_id, object_type="threshold_history"
        )
    return msgspec.convert(rows, list[OverrideRecord])


def _row_reason(change: ThresholdChange, reason: str) -> str:
    """A removal's row keeps its own reason, beside the request's when they differ."""
    why = (change.removal_reason or "").strip() if change.remove else ""
    return f"{reason} (removed: {why})" if why and why != reason else reason


async def set_thresholds(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: ThresholdsUpdate
) -> ThresholdsOut:
    """A specialist of the patient's care changes thresholds, all or nothing, with a reason."""
    await require_patient(conn, actor, patient_id, roles=("specialist",))
    refuse_nul(data)
    reason = required_reason(data.reason)
    async with conn.transaction():
        await conn.execute(Q.lock_patient, {"patient_id": patient_id})
        defaults_by_key: dict[str, Rule] = {}
        for enrollment in await _enrollments(conn, patient_id):
            for rule in program_defaults(enrollment.program, enrollment.stratum) or ():
                defaults_by_key[rule.key] = rule
        current = await _current(conn, patient_id)
        set_at = datetime.now(UTC)
        validate_changes(
            defaults_by_key,
            current.overrides,
            data.changes,
            set_by=str(actor.user_id),
            set_at=set_at,
            reason=reason,
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                Q.insert_override,
                [
                    {
                        "patient_id": patient_id,
                        "rule_key": c.rule_key,
                        "field": c.field,
                        "value": None if c.reset else Jsonb(stored_value(c)),
                        "reset": c.reset,
                        "set_by": actor.user_id,
                        "set_at": set_at,
                        "reason": _row_reason(c, reason),
                        "explicit_removal": c.remove,
                    }
                    for c in data.changes
                ],
            )
        await audit.record(
            conn,
            actor,
            "update",
            patient_id=patient_id,
            object_type="thresholds",
            detail={"reason": reason, "changes": msgspec.to_builtins(data.changes)},
        )
        return await _thresholds(conn, patient_id)


class TtrOut(msgspec.Struct, kw_only=True):
    patient_id: uuid.UUID
    start: date | None
    end: date | None
    low: float | None
    high: float | None
    range_source: Literal["stratum", "override"] | None
    results: int
    percent: float | None
    days_in_range: float
    days_total: float
    intervals: int
    excluded: int
    excluded_days: float
    censored_used: bool
    reason: str | None
    method: str


async def inr_range(
    conn: AsyncConn, patient_id: uuid.UUID
) -> tuple[float, float, Literal["stratum", "override"]] | str:
    """The patient's therapeutic INR range in force and where it comes from, or why none."""
    cur = await conn.execute(Q.latest_ak_enrollment, {"patient_id": patient_id})
    enrollment = await cur.fetchone()
    if enrollment is None:
        return "the patient is not enrolled in anticoagulation (AK)"
    defaults = program_defaults("ak", enrollment["stratum"])
    if defaults is None:
        try:
            low, high = parse_inr_range(enrollment["stratum"])
        except UnknownStratum as exc:
            return str(exc)
        return low, high, "stratum"
    current = await _current(conn, patient_id)
    effective, _ = effective_per_rule(defaults, current.overrides)
    for item in effective:
        if isinstance(item.rule, InrRule):
            overridden = any(
                f.source == "override" and f.field in ("low", "high") for f in item.fields
            )
            return item.rule.low, item.rule.high, "override" if overridden else "stratum"
    return "the patient's AK rules hold no INR range"


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LOCAL_TZ)


async def patient_ttr(
    conn: AsyncConn,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    start: date | None = None,
    end: date | None = None,
) -> TtrOut:
    """Rosendaal TTR of the patient's INR readings over the local days start..end."""
    await require_patient(conn, actor, patient_id)
    if start is not None and end is not None and end < start:
        raise Invalid(
            "empty period", [FieldProblem("to", "must not be before 'from'", "out_of_range")]
        )
    async with conn.transaction():
        found = await inr_range(conn, patient_id)
        # Results further than the longest interpolated gap outside the window cannot count.
        margin = timedelta(days=58)
        cur = await conn.execute(
            Q.inr_results,
            {
                "patient_id": patient_id,
                "start": _local_midnight(start) - margin if start else None,
                "end": _local_midnight(end + timedelta(days=1)) + margin if end else None,
            },
        )
        results = [
            InrResult(r["measured_at"], r["value"], r["comparator"]) for r in await cur.fetchall()
        ]
        await audit.record(
            conn,
            actor,
            "read",
            patient_id=patient_id,
            object_type="ttr",
            detail={"from": str(start) if start else None, "to": str(end) if end else None},
        )
    if isinstance(found, str):
        low = high = source = None
        result = TtrResult(None, 0.0, 0.0, 0, 0, False, found, method="")
    else:
        low, high, source = found
        result = ttr(results, low, high, start, end)
    return TtrOut(
        patient_id=patient_id,
        start=start,
        end=end,
        low=low,
        high=high,
        range_source=source,
        results=len(results),
        **msgspec.structs.asdict(result),
    )


async def dose_suggestion(
    conn: AsyncConn,
    patient_id: uuid.UUID,
    inr: float,
    comparator: str | None,
    current_weekly_mg: float | None,
) -> tuple[Suggestion | None, str | None]:
    """The nomogram's weekly dose for an INR in the patient's range, for display beside an
    instruction and never applied, or why there is none. The current weekly dose is given, or
    the one the patient's latest AK instruction set."""
    found = await inr_range(conn, patient_id)
    if isinstance(found, str):
        return None, found
    if current_weekly_mg is None:
        current_weekly_mg = await doses.current_weekly_dose(conn, patient_id)
        if current_weekly_mg is None:
            return None, "no current weekly dose on record: pass current_weekly_mg"
    low, high, _ = found
    product = await doses.product_of(conn, patient_id)
    # Rounded to what the patient's tablets give: half a scored tablet, else a whole one.
    step = DEFAULT_STEP_MG
    if product is not None:
        step = product.tablet_mg / 2 if product.scored else product.tablet_mg
    suggestion = suggest_weekly_dose(
        inr,
        low,
        high,
        current_weekly_mg,
        comparator=as_comparator(comparator),
        step_mg=step,
    )
    if suggestion is None:
        return None, "the nomogram does not apply here: no suggestion rather than a wrong one"
    return suggestion, None
