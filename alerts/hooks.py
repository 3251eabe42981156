"""Rule evaluation on the ingest path, inside the transaction that stores the readings.

`after_readings` is the reading hook (entry point `telemed.reading_hooks: alerts`). Per batch it
makes a fixed number of round trips, however many readings and patients: one for the planner
settings and the rule context version, one for the enrollments and overrides of patients whose
rule context is not already kept (ContextCache), one for the bounded history the rules need
(alerts.rules HistoryNeed, computed per reading in SQL, the baseline median included), and the
few of `alerts.lifecycle.upsert_breaches`. The decisions are the pure functions' of alerts.checks.

The readings of the batch are already in the table when the hook runs, so readings of one
patient and metric evaluated together see each other by measured time, and a late reading is
judged against what was measured before it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from alerts.checks import Baseline, evaluate
from alerts.defaults import (
    Override,
    UnknownProgram,
    UnknownStratum,
    active_rules,
    default_rules,
    effective_per_rule,
)
from alerts.lifecycle import BreachItem, upsert_breaches
from alerts.rules import (
    AbsoluteRule,
    BaselineRule,
    HistoryNeed,
    MissedRule,
    Obs,
    Rule,
    classify,
    history_need,
    history_needs,
)
from alerts.schedule import LOCAL_TZ
from telemed.db import Queries
from telemed.readings import StoredReading

log = logging.getLogger("alerts.hooks")
Q = Queries("hooks", folder=Path(__file__).parent / "sql")


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
    of that sustained absolute rule (outside them the rule decides without history)."""

    program: str
    by_metric: dict[str, tuple[Rule, ...]]
    needs: dict[str, HistoryNeed]
    banded: dict[str, tuple[tuple[AbsoluteRule, HistoryNeed], ...]] = {}

    def need(self, metric: str, value: float) -> HistoryNeed:
        need = self.needs.get(metric, _NO_NEED)
        for rule, extra in self.banded.get(metric, ()):
            if classify(rule.bands, value) is not None:
                need = need.merge(extra)
        return need


_ENROLLMENTS = msgspec.json.Decoder(list[Enrollment])
_NO_NEED = HistoryNeed()
_OVERRIDES = msgspec.json.Decoder(list[Override])


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
    for rule in per_reading:
        by_metric.setdefault(rule.metric, []).append(rule)
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


def rule_sets(
    patient_id: uuid.UUID, enrollments: Sequence[Enrollment], overrides: Sequence[Override]
) -> list[tuple[Enrollment, RuleSet]]:
    found: list[tuple[Enrollment, RuleSet]] = []
    for enrollment in enrollments:
        if not overrides:
            cached = _default_set(enrollment.program, enrollment.stratum)
            if cached is not None:
                found.append((enrollment, cached))
            continue
        defaults = program_defaults(enrollment.program, enrollment.stratum)
        if defaults is not None:
            rules = patient_rules(defaults, overrides, patient_id)
            found.append((enrollment, rule_set(enrollment.program, rules)))
    return found


Context = list[tuple[Enrollment, RuleSet]]


class ContextCache:
    """The rule contexts (enrollments with their rule sets) of the patients seen, kept while the
    database's rule context version (migration 0023) stays the same, per database.

    The version is read in the ingest transaction before any context is used, and a change to
    enrollments or overrides moves it in its own transaction: a context loaded under a version
    is at least as new as that version, and the batch after a change loads afresh."""

    def __init__(self, max_patients: int = 100_000) -> None:
        self.max_patients = max_patients
        self._key: tuple | None = None
        self._entries: dict[uuid.UUID, Context] = {}

    def _for(self, conn: AsyncConnection, version: int) -> dict[uuid.UUID, Context]:
        info = conn.info
        key = (info.host, info.port, info.dbname, version)
        if key != self._key or len(self._entries) > self.max_patients:
            self._key, self._entries = key, {}
        return self._entries

    async def get(
        self, conn: AsyncConnection, version: int, patient_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, Context]:
        entries = self._for(conn, version)
        missing = [p for p in patient_ids if p not in entries]
        if missing:
            loaded = await _load_contexts(conn, missing)
            for patient_id in missing:
                entries[patient_id] = loaded.get(patient_id, [])
        return entries


CONTEXTS = ContextCache()


async def _load_contexts(
    conn: AsyncConnection, patient_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Context]:
    literal = "{" + ",".join(map(str, patient_ids)) + "}"
    cur = await conn.execute(Q.context, {"patient_ids": literal})
    contexts = {}
    for row in await cur.fetchall():
        enrollments = _ENROLLMENTS.decode(row["enrollments"])
        overrides = _OVERRIDES.decode(row["overrides"])
        contexts[row["patient_id"]] = rule_sets(row["patient_id"], enrollments, overrides)
    return contexts


class _Job(msgspec.Struct):
    reading: StoredReading
    obs: Obs
    sets: list[RuleSet]
    need: HistoryNeed
    history: list[Obs] = []
    baseline: Baseline | None = None


def _jobs(stored: Sequence[StoredReading], contexts: dict[uuid.UUID, Context]) -> list[_Job]:
    jobs: list[_Job] = []
    for reading in stored:
        day = reading.measured_at.astimezone(LOCAL_TZ).date()
        sets = [
            rs
            for enrollment, rs in contexts.get(reading.patient_id, ())
            if reading.metric in rs.by_metric and enrollment.covers(day)
        ]
        if not sets:
            continue
        need = sets[0].need(reading.metric, reading.value)
        for rs in sets[1:]:
            need = need.merge(rs.need(reading.metric, reading.value))
        obs = Obs(reading.metric, reading.value, reading.measured_at, reading.comparator)  # type: ignore[arg-type]
        jobs.append(_Job(reading, obs, sets, need))
    return jobs


class _Lookup(msgspec.Struct, frozen=True, kw_only=True):
    """One reading's history lookup, as the history query reads it; `need` indexes the needs."""

    idx: int
    patient_id: uuid.UUID
    metric: str
    at: datetime
    origin: str
    message_id: str
    need: int


class _Need(msgspec.Struct, frozen=True, kw_only=True):
    """A HistoryNeed in the history query's units; a batch has a handful of distinct ones."""

    need: int
    latest: int
    latest_s: float
    span_s: float
    before_s: float
    extremes_s: float
    baseline_s: float
    baseline_max: int

    @classmethod
    def of(cls, number: int, need: HistoryNeed) -> _Need:
        return cls(
            need=number,
            latest=need.latest,
            latest_s=need.latest_hours * 3600,
            span_s=need.span_minutes * 60,
            before_s=need.span_hours * 3600,
            extremes_s=need.extremes_hours * 3600,
            baseline_s=need.baseline_days * 86400,
            baseline_max=need.baseline_max,
        )


async def _load_history(conn: AsyncConnection, jobs: Sequence[_Job]) -> None:
    wanted = [(i, job) for i, job in enumerate(jobs) if not job.need.empty]
    if not wanted:
        return
    numbers: dict[HistoryNeed, int] = {}
    lookups = [
        _Lookup(
            idx=i,
            patient_id=job.reading.patient_id,
            metric=job.reading.metric,
            at=job.reading.measured_at,
            origin=job.reading.origin,
            message_id=job.reading.message_id,
            need=numbers.setdefault(job.need, len(numbers)),
        )
        for i, job in wanted
    ]
    needs = [_Need.of(number, need) for need, number in numbers.items()]
    params = {
        "lookups": msgspec.json.encode(lookups).decode(),
        "needs": msgspec.json.encode(needs).decode(),
    }
    found: dict[int, dict[tuple, Obs]] = {}
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(Q.history, params)
        rows = await cur.fetchall()
    for idx, part, value, measured_at, comparator, n in rows:
        job = jobs[idx]
        if part == "baseline":
            if n:
                job.baseline = Baseline(value, n)
            continue
        key = (value, measured_at, comparator)
        found.setdefault(idx, {})[key] = Obs(job.reading.metric, value, measured_at, comparator)
    for idx, history in found.items():
        jobs[idx].history = list(history.values())


def _breaches(jobs: Sequence[_Job]) -> list[BreachItem]:
    items: list[BreachItem] = []
    for job in jobs:
        for rs in job.sets:
            rules = rs.by_metric[job.reading.metric]
            baselines = {r.key: job.baseline for r in rules if isinstance(r, BaselineRule)}
            for breach in evaluate(job.obs, job.history, rules, baselines):
                items.append((job.reading.patient_id, rs.program, breach))
    return items


async def after_readings(conn: AsyncConnection, stored: list[StoredReading]) -> None:
    """Evaluate every stored reading and add its breaches to the alerts, in `conn`'s
    transaction."""
    if not stored:
        return
    cur = await conn.execute(Q.planner_settings)
    version = (await cur.fetchone())["rule_context_version"]
    patient_ids = list(dict.fromkeys(r.patient_id for r in stored))
    jobs = _jobs(stored, await CONTEXTS.get(conn, version, patient_ids))
    if not jobs:
        return
    await _load_history(conn, jobs)
    items = _breaches(jobs)
    if items:
        await upsert_breaches(conn, items, now=datetime.now(UTC))
