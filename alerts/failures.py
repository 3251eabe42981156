"""A patient's rules failing on the ingest path, made loud where it happens.

The readings are stored whatever the rules do (the failure is isolated to the patient, and
narrowed to the rule where it can be: alerts.evaluation). What failed becomes a row in
`rule_failures` (patient, rule, stage, error, the reading concerned) and an open alert
`alerting:failed` to the organisation holding the patient, saying which rule could not judge
which reading and what was done instead: red when the rule did not judge it at all, yellow when
it judged it by the programme default because the patient's own override could not be applied.
Admins read the rows at `GET /api/v1/admin/rule-failures`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from alerts.checks import _local, _name, _show
from alerts.lifecycle import upsert_breaches
from alerts.rules import Breach, Severity
from telemed import audit
from telemed.access import Actor, require_role
from telemed.db import AsyncConn, Queries
from telemed.readings import StoredReading

Q = Queries("failures", folder=Path(__file__).parent / "sql")
FAILED_RULE = "alerting:failed"
Stage = Literal["rules", "history", "evaluate", "alerts"]
Outcome = Literal["not_evaluated", "default_used"]
_ERROR_CHARS = 500


class Failure(msgspec.Struct, kw_only=True):
    patient_id: uuid.UUID
    program: str | None
    rule_key: str
    stage: Stage
    outcome: Outcome
    error: str
    reading: StoredReading
    readings: int

    @classmethod
    def of(
        cls,
        concerned: Sequence[StoredReading],
        program: str | None,
        rule_key: str,
        stage: Stage,
        outcome: Outcome,
        error: str,
    ) -> Failure:
        """A failure concerning these readings (of one patient); the earliest measured is
        the one the alert names."""
        first = min(concerned, key=lambda r: r.measured_at)
        return cls(
            patient_id=first.patient_id,
            program=program,
            rule_key=rule_key,
            stage=stage,
            outcome=outcome,
            error=error[:_ERROR_CHARS],
            reading=first,
            readings=len(concerned),
        )

    def breach(self) -> Breach:
        r = self.reading
        shown = f"{_name(r.metric)} {r.comparator or ''}{_show(r.metric, r.value)}"
        rule = "its rules" if self.rule_key == "rules" else f"rule {self.rule_key}"
        if self.outcome == "default_used":
            what = (
                f"{rule} could not be applied as set for this patient and judged {shown} "
                "by the programme default"
            )
        else:
            what = f"{rule} could not judge {shown}"
        more = f" and {self.readings - 1} more reading(s)" if self.readings > 1 else ""
        message = (
            f"Alerting failed: {what}{more}, measured {_local(r.measured_at)} "
            f"(received {_local(r.received_at)}). Error: {self.error.splitlines()[0][:200]}"
        )
        detail = {
            "rule_key": self.rule_key,
            "stage": self.stage,
            "outcome": self.outcome,
            "error": self.error,
            "metric": r.metric,
            "value": r.value,
            "comparator": r.comparator,
            "measured_at": r.measured_at.astimezone(UTC).isoformat(),
            "received_at": r.received_at.astimezone(UTC).isoformat(),
            "origin": r.origin,
            "message_id": r.message_id,
            "readings": self.readings,
        }
        severity = Severity.YELLOW if self.outcome == "default_used" else Severity.RED
        return Breach(FAILED_RULE, r.metric, severity, r.value, message, detail, r.measured_at)


class _Row(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: uuid.UUID
    rule_key: str
    stage: str
    outcome: str
    error: str
    metric: str
    value: float
    measured_at: datetime
    received_at: datetime
    origin: str
    message_id: str
    readings: int
    alert_id: int | None


async def record(conn: AsyncConn, failures: Sequence[Failure], *, now: datetime) -> None:
    """Write the failures and raise (or add to) each patient's failure alert, in `conn`'s
    transaction. If this fails the transaction fails: nothing is then stored quietly."""
    if not failures:
        return
    unknown = sorted({f.patient_id for f in failures if f.program is None}, key=str)
    programs: dict[uuid.UUID, str] = {}
    if unknown:
        cur = await conn.execute(Q.programs, {"patient_ids": unknown})
        programs = {r["patient_id"]: r["program"] for r in await cur.fetchall()}
    items = [
        (f.patient_id, f.program or programs.get(f.patient_id, "copd"), f.breach())
        for f in failures
    ]
    changes = await upsert_breaches(conn, items, now=now)
    alert_of = {c.patient_id: c.alert_id for c in changes}
    rows = [
        _Row(
            patient_id=f.patient_id,
            rule_key=f.rule_key,
            stage=f.stage,
            outcome=f.outcome,
            error=f.error,
            metric=f.reading.metric,
            value=f.reading.value,
            measured_at=f.reading.measured_at,
            received_at=f.reading.received_at,
            origin=f.reading.origin,
            message_id=f.reading.message_id,
            readings=f.readings,
            alert_id=alert_of.get(f.patient_id),
        )
        for f in failures
    ]
    await conn.execute(Q.insert_failures, {"rows": msgspec.json.encode(rows).decode(), "now": now})


class RuleFailureOut(msgspec.Struct, kw_only=True):
    id: int
    failed_at: datetime
    patient_id: uuid.UUID
    pseudonym: str
    rule_key: str
    stage: str
    outcome: str
    error: str
    metric: str
    value: float
    measured_at: datetime
    received_at: datetime
    origin: str
    message_id: str
    readings: int
    alert_id: int | None
    alert_state: str | None


async def recent_failures(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID | None, limit: int
) -> list[RuleFailureOut]:
    """The latest rule failures, newest first; the rows quote measured values, so each
    patient's are an audited read."""
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(Q.recent, {"patient_id": patient_id, "limit": limit})
        rows = msgspec.convert(await cur.fetchall(), list[RuleFailureOut])
        patients = sorted({r.patient_id for r in rows}, key=str)
        await audit.record_many(conn, actor, "read", patients, object_type="rule_failure")
    return rows
