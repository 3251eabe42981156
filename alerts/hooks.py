"""Rule evaluation on the ingest path, inside the transaction that stores the readings.

`after_readings` is the reading hook (entry point `telemed.reading_hooks: alerts`). Per batch it
makes a fixed number of round trips, however many readings and patients: one for the planner
settings and the rule context version, one for the enrollments and overrides of patients whose
rule context is not already kept (ContextCache), one that serialises the batch's patients whose
rules look back (lock_patients), one for the bounded history the rules need (alerts.history),
and the few of `alerts.lifecycle.upsert_breaches`; alerts.evaluation says what else runs when a
reading arrives before readings measured after it, and when a rule fails.

The readings of the batch are already in the table when the hook runs, so readings of one
patient and metric evaluated together see each other by measured time, and a late reading is
judged against what was measured before it.

Serialising: a patient's history rules must see every reading committed before, whichever
worker wrote it. The hook takes a transaction-level advisory lock per patient (`patient_lock`)
in ascending order before it reads any history, and holds it until commit. Under READ
COMMITTED each statement sees what committed before it started, so the history read after the
lock sees every reading of the patient whose transaction held the lock before; readings of a
transaction still waiting for the lock are judged by that transaction, which will see these,
and judges again what these made different (alerts.evaluation). docs/ingest.md ("History rules
and concurrent workers") has the whole argument.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Literal

import msgspec

from alerts import evaluation
from alerts.defaults import (
    Override,
    UnknownProgram,
    UnknownStratum,
    active_rules,
    default_rules,
    effective_per_rule,
)
from alerts.failures import Failure
from alerts.history import Job, load_history
from alerts.rules import (
    AbsoluteRule,
    HistoryNeed,
    MissedRule,
    Rule,
    classify,
    history_need,
    history_needs,
    reach_seconds,
)
from alerts.schedule import LOCAL_TZ
from telemed.db import AsyncConn, Queries, one_row
from telemed.readings import StoredReading

log = logging.getLogger("alerts.hooks")
Q = Queries("hooks", folder=Path(__file__).parent / "sql")

# Advisory locks of the ingest transactions: (LOCK_SPACE, 32 bits of the patient's id), so that
# only transactions that really share a patient wait for each other (two patients share a key
# once in about four billion pairs, and then only wait). A transaction holds one lock per
# patient of its batch whose rules look back; the ingest writer keeps that under
# ingest.batch.MAX_DEVICES (PostgreSQL's lock table is max_locks_per_transaction ×
# max_connections entries for all sessions). Not the space of the 1,024 stripes used before
# (0x7E1EA1E7): workers of both versions must not run at once.
LOCK_SPACE = 0x7E1E_A1E8

# Kept for callers that load history themselves (tests compare it with the full history).
_load_history = load_history


class Enrollment(msgspec.Struct, frozen=True):
    program: str
    stratum: str
    start_date: date
    end_date: date | None = None

    def covers(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)


class RuleSet(msgspec.Struct, frozen=True):
    """One program's active per-reading rules for a patient, by metric, and what history they
    need: `needs` for every reading of the metric, `banded` only for a reading inside the bands
    of that sustained absolute rule (outside them the rule decides without history). `reach`:
    per metric whose rules look back, how long after a reading it can change another's
    decision (alerts.rules.reach_seconds)."""

    program: str
    by_metric: dict[str, tuple[Rule, ...]]
    needs: dict[str, HistoryNeed]
    banded: dict[str, tuple[tuple[AbsoluteRule, HistoryNeed], ...]] = {}
    reach: dict[str, float] = {}

    def need(self, metric: str, value: float) -> HistoryNeed:
        need = self.needs.get(metric, _NO_NEED)
        for rule, extra in self.banded.get(metric, ()):
            if classify(rule.bands, value) is not None:
                need = need.merge(extra)
        return need

    def only(self, keys: set[str]) -> RuleSet:
        """The same set with only the rules of these keys."""
        kept = [r for rules in self.by_metric.values() for r in rules if r.key in keys]
        return rule_set(self.program, kept)

    def looking_back(self, metric: str) -> RuleSet:
        """The rules of `metric` whose decisions depend on earlier readings."""
        return self.only({r.key for r in self.by_metric.get(metric, ()) if reach_seconds(r)})


class Problem(msgspec.Struct, frozen=True):
    """A rule of the patient that cannot run as set: one of its overrides cannot be read or
    no longer fits, so it runs at the programme default (`metric` None: it is not known which
    rule, so every reading of the patient is concerned)."""

    rule_key: str
    metric: str | None
    error: str
    outcome: Literal["not_evaluated", "default_used"] = "default_used"


class PatientRules(msgspec.Struct):
    sets: list[tuple[Enrollment, RuleSet]]
    problems: list[Problem] = []

    def covering(self, reading: StoredReading) -> list[RuleSet]:
        day = reading.measured_at.astimezone(LOCAL_TZ).date()
        return [
            rs
            for enrollment, rs in self.sets
            if reading.metric in rs.by_metric and enrollment.covers(day)
        ]


_ENROLLMENTS = msgspec.json.Decoder(list[Enrollment])
_NO_NEED = HistoryNeed()
_NO_RULES = PatientRules([])


@cache
def program_defaults(program: str, stratum: str) -> tuple[Rule, ...] | None:
    """The default rules of a program and stratum, or None (logged once) when there are none."""
    try:
        return tuple(default_rules(program, stratum))
    except (UnknownProgram, UnknownStratum) as exc:
        log.warning("no alert rules for %s stratum %r: %s", program, stratum, exc)
        return None


def rule_set(program: str, rules: Sequence[Rule]) -> RuleSet:
    per_reading = [rule for rule in rules if not isinstance(rule, MissedRule)]
    by_metric: dict[str, list[Rule]] = {}
    reach: dict[str, float] = {}
    for rule in per_reading:
        by_metric.setdefault(rule.metric, []).append(rule)
        if seconds := reach_seconds(rule):
            reach[rule.metric] = max(reach.get(rule.metric, 0.0), seconds)
    # check_absolute returns before it looks at history when the value is in no band.
    banded: dict[str, list[tuple[AbsoluteRule, HistoryNeed]]] = {}
    always: list[Rule] = []
    for rule in per_reading:
        if isinstance(rule, AbsoluteRule) and rule.sustain is not None:
            banded.setdefault(rule.metric, []).append((rule, history_need(rule)))
        else:
            always.append(rule)
    return RuleSet(
        program,
        {m: tuple(r) for m, r in by_metric.items()},
        history_needs(always),
        {m: tuple(pairs) for m, pairs in banded.items()},
        reach,
    )


@cache
def _default_set(program: str, stratum: str) -> RuleSet | None:
    defaults = program_defaults(program, stratum)
    return None if defaults is None else rule_set(program, defaults)


def patient_rules(
    defaults: Sequence[Rule], overrides: Sequence[Override], patient_id: uuid.UUID
) -> list[Rule]:
    """The defaults with the patient's overrides; an override that no longer fits leaves its
    rule at the default, logged."""
    effective, problems = effective_per_rule(defaults, overrides)
    for problem in problems:
        log.warning("patient %s: override ignored, rule at default: %s", patient_id, problem)
    return active_rules(effective)


def _metric_of(rule_key: str) -> str | None:
    kind, _, rest = rule_key.partition(":")
    return "inr" if kind == "inr" else (rest or None)


def _overrides(raw: str) -> tuple[list[Override], list[Problem]]:
    """The stored overrides that can be read; one that cannot (a row written past the API)
    drops every override of its rule, which then runs at the default, and is a problem."""
    items = msgspec.json.decode(raw)
    read: list[Override] = []
    problems: dict[str, Problem] = {}
    for item in items:
        try:
            read.append(msgspec.convert(item, Override))
        except (msgspec.ValidationError, TypeError) as exc:
            fields = item if isinstance(item, dict) else {}
            key = fields.get("rule_key")
            key = key if isinstance(key, str) and key else "rules"
            text = f"override {key}.{fields.get('field')} cannot be read: {exc}"
            problems.setdefault(key, Problem(key, _metric_of(key), text))
    return [o for o in read if o.rule_key not in problems], list(problems.values())


def rule_sets(
    patient_id: uuid.UUID, enrollments: Sequence[Enrollment], overrides: Sequence[Override]
) -> list[tuple[Enrollment, RuleSet]]:
    return _rule_sets(enrollments, overrides)[0]


def _rule_sets(
    enrollments: Sequence[Enrollment], overrides: Sequence[Override]
) -> tuple[list[tuple[Enrollment, RuleSet]], list[Problem]]:
    found: list[tuple[Enrollment, RuleSet]] = []
    problems: list[Problem] = []
    for enrollment in enrollments:
        if not overrides:
            cached = _default_set(enrollment.program, enrollment.stratum)
            if cached is not None:
                found.append((enrollment, cached))
            continue
        defaults = program_defaults(enrollment.program, enrollment.stratum)
        if defaults is None:
            continue
        effective, invalid = effective_per_rule(defaults, overrides)
        for exc in invalid:
            key = exc.rule_key or "rules"
            problems.append(Problem(key, _metric_of(key), f"override not applied: {exc}"))
        found.append((enrollment, rule_set(enrollment.program, active_rules(effective))))
    return found, problems


def _patient_rules(row: dict) -> PatientRules:
    enrollments = _ENROLLMENTS.decode(row["enrollments"])
    overrides, problems = _overrides(row["overrides"])
    sets, invalid = _rule_sets(enrollments, overrides)
    return PatientRules(sets, problems + invalid)


class ContextCache:
    """The rule contexts (enrollments with their rule sets) of the patients seen, kept while the
    database's rule context version (migration 0023) stays the same, per database.

    The version is read in the ingest transaction before any context is used, and a change to
    enrollments or overrides moves it in its own transaction: a context loaded under a version
    is at least as new as that version, and the batch after a change loads afresh."""

    def __init__(self, max_patients: int = 100_000) -> None:
        self.max_patients = max_patients
        self._key: tuple | None = None
        self._entries: dict[uuid.UUID, PatientRules] = {}

    def _for(self, conn: AsyncConn, version: int) -> dict[uuid.UUID, PatientRules]:
        info = conn.info
        key = (info.host, info.port, info.dbname, version)
        if key != self._key or len(self._entries) > self.max_patients:
            self._key, self._entries = key, {}
        return self._entries

    async def get(
        self, conn: AsyncConn, version: int, patient_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, PatientRules]:
        entries = self._for(conn, version)
        missing = [p for p in patient_ids if p not in entries]
        if missing:
            loaded = await _load_contexts(conn, missing)
            for patient_id in missing:
                entries[patient_id] = loaded.get(patient_id, _NO_RULES)
        return entries


CONTEXTS = ContextCache()


async def _load_contexts(
    conn: AsyncConn, patient_ids: list[uuid.UUID]
) -> dict[uuid.UUID, PatientRules]:
    literal = "{" + ",".join(map(str, patient_ids)) + "}"
    cur = await conn.execute(Q.context, {"patient_ids": literal})
    contexts = {}
    for row in await cur.fetchall():
        try:
            contexts[row["patient_id"]] = _patient_rules(row)
        except Exception as exc:  # one patient's context must not stop the others'
            log.exception("patient %s: rules cannot be built", row["patient_id"])
            text = f"rules cannot be built: {type(exc).__name__}: {exc}"
            contexts[row["patient_id"]] = PatientRules(
                [], [Problem("rules", None, text, "not_evaluated")]
            )
    return contexts


def _jobs(stored: Sequence[StoredReading], contexts: dict[uuid.UUID, PatientRules]) -> list[Job]:
    jobs: list[Job] = []
    for reading in stored:
        sets = contexts.get(reading.patient_id, _NO_RULES).covering(reading)
        if sets:
            jobs.append(evaluation.job_for(reading, sets))
    return jobs


def _problems(
    stored: Sequence[StoredReading], contexts: dict[uuid.UUID, PatientRules]
) -> list[Failure]:
    """Each problem of a patient's rules, once per batch, with the first reading it concerns."""
    failures: list[Failure] = []
    for patient_id, rules in contexts.items():
        for problem in rules.problems:
            concerned = [
                r
                for r in stored
                if r.patient_id == patient_id and problem.metric in (None, r.metric)
            ]
            if concerned:
                programs = [rs.program for rs in rules.covering(concerned[0])]
                failures.append(
                    Failure.of(
                        concerned,
                        programs[0] if programs else None,
                        problem.rule_key,
                        "rules",
                        problem.outcome,
                        problem.error,
                    )
                )
    return failures


def patient_key(patient_id: uuid.UUID) -> int:
    """The low 32 bits of the patient's id, as the signed int4 an advisory lock key takes."""
    low = patient_id.int & 0xFFFF_FFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def patient_lock(patient_id: uuid.UUID) -> tuple[int, int]:
    """The advisory lock key (two int4s) serialising a patient's ingest transactions."""
    return LOCK_SPACE, patient_key(patient_id)


async def lock_patients(conn: AsyncConn, patient_ids: Iterable[uuid.UUID]) -> None:
    """Serialise these patients' transactions until commit (see the module docstring), the
    keys taken in ascending order so that two transactions never wait for each other in a
    circle."""
    keys = sorted({patient_key(p) for p in patient_ids})
    if keys:
        literal = "{" + ",".join(map(str, keys)) + "}"
        await conn.execute(Q.lock_patients, {"space": LOCK_SPACE, "keys": literal})


async def after_readings(conn: AsyncConn, stored: list[StoredReading]) -> None:
    """Evaluate every stored reading and add its breaches to the alerts, in `conn`'s
    transaction. A patient's rule that fails is recorded and alerted on (alerts.failures);
    a database that is away or busy raises, and the caller retries the transaction."""
    if not stored:
        return
    cur = await conn.execute(Q.planner_settings)
    settings = one_row(await cur.fetchone(), "the alert rules' planner settings")
    if settings["isolation"] != "read committed":
        raise RuntimeError(
            f"the alert rules need READ COMMITTED transactions, not {settings['isolation']}"
        )
    patient_ids = list(dict.fromkeys(r.patient_id for r in stored))
    all_contexts = await CONTEXTS.get(conn, settings["rule_context_version"], patient_ids)
    contexts = {p: all_contexts[p] for p in patient_ids}
    jobs = _jobs(stored, contexts)
    failures = _problems(stored, contexts)
    if jobs:
        failures += await evaluation.judge(conn, jobs, contexts, lock=lock_patients)
    if failures:
        await evaluation.record(conn, failures, now=datetime.now(UTC))
