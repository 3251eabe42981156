"""Judging a batch's readings on the ingest path, and keeping a rule's failure to its patient.

One pass (`_pass`) reads the history the readings' rules need, judges each reading by each of
its rules, and writes the breaches to the alerts (alerts.lifecycle). With the history come the
readings already stored that a reading of the batch may change the decision on: measured after
it, within the reach of its metric's history rules (a late reading, or one that another worker
committed first). Those are judged again by their history rules and the alerts follow
(alerts.ledger), so that the alerts are those of the readings judged in measured order.

A rule that raises while judging one reading is a failure of that rule for that reading; the
rest go on. A pass that fails in the database runs under a savepoint: it is rolled back and the
batch is judged patient by patient, each under its own savepoint, and a patient whose pass
fails again rule by rule, so that the failure is narrowed to the rule that fails and every
other rule still judges. Failures are recorded by alerts.failures. A database that is away or
busy (connection lost, deadlock, lock or statement timeout) is not a rule failing: it is raised,
and the caller retries the whole transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg

from alerts import failures as failure_log
from alerts import ledger
from alerts.checks import check_absolute, check_change, check_inr, judge_baseline
from alerts.failures import Failure, Stage
from alerts.history import Group, Job, New, load_history
from alerts.lifecycle import BreachItem, upsert_breaches
from alerts.rules import (
    AbsoluteRule,
    BaselineRule,
    Breach,
    ChangeRule,
    InrRule,
    Obs,
    ReadingRef,
    Rule,
    as_comparator,
)
from telemed.db import AsyncConn
from telemed.readings import StoredReading

log = logging.getLogger("alerts.evaluation")

TRANSIENT = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.TransactionRollback,
    OSError,
)
record = failure_log.record


class RuleError(Exception):
    """A pass failed (not transiently) at `stage`."""

    def __init__(self, stage: Stage, cause: BaseException) -> None:
        super().__init__(f"{stage}: {describe(cause)}")
        self.stage = stage
        self.cause = cause


def describe(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None)
    name = type(exc).__name__ + (f" ({code})" if code else "")
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def job_for(reading: StoredReading, sets: Sequence[Any]) -> Job:
    need = sets[0].need(reading.metric, reading.value)
    for rs in sets[1:]:
        need = need.merge(rs.need(reading.metric, reading.value))
    comparator = as_comparator(reading.comparator)
    obs = Obs(reading.metric, reading.value, reading.measured_at, comparator)
    return Job(reading, obs, list(sets), need)


def stamped(breach: Breach, reading: StoredReading) -> Breach:
    """The breach with the reading it is about: its key, and when it was measured and received
    (an alert shows both, so that one raised by a late reading says so)."""
    detail = {
        **breach.detail,
        "measured_at": reading.measured_at.astimezone(UTC).isoformat(),
        "received_at": reading.received_at.astimezone(UTC).isoformat(),
    }
    ref = ReadingRef(reading.origin, reading.message_id, reading.received_at)
    return msgspec.structs.replace(breach, detail=detail, reading=ref)


async def judge(
    conn: AsyncConn,
    jobs: Sequence[Job],
    contexts: Mapping[uuid.UUID, Any],
    *,
    lock: Callable[[AsyncConn, Iterable[uuid.UUID]], Awaitable[None]],
) -> list[Failure]:
    """Judge the jobs and write their alerts in `conn`'s transaction; the failures to record.
    `lock` serialises the patients whose rules look back, before any history is read."""
    grouped = _groups(jobs)
    await lock(conn, {group.patient_id for group in grouped[0]})
    found: list[Failure] = []
    try:
        async with conn.transaction():
            await _pass(conn, jobs, contexts, None, found, grouped)
        return found
    except TRANSIENT:
        raise
    except RuleError as exc:
        log.warning("the rules failed for a batch (%s); judging it patient by patient", exc)
    by_patient: dict[uuid.UUID, list[Job]] = {}
    for job in jobs:
        by_patient.setdefault(job.reading.patient_id, []).append(job)
    found = []
    for group in by_patient.values():
        found += await _narrow(conn, group, contexts)
    return found


def _fresh(jobs: Sequence[Job]) -> list[Job]:
    return [Job(j.reading, j.obs, j.sets, j.need) for j in jobs]


async def _narrow(
    conn: AsyncConn, jobs: Sequence[Job], contexts: Mapping[uuid.UUID, Any]
) -> list[Failure]:
    found: list[Failure] = []
    try:
        async with conn.transaction():
            await _pass(conn, _fresh(jobs), contexts, None, found)
        return found
    except TRANSIENT:
        raise
    except RuleError as exc:
        whole = exc
    found = []
    keys = sorted({r.key for j in jobs for rs in j.sets for r in rs.by_metric[j.reading.metric]})
    failing = 0
    for key in keys:
        subset = [j for j in (_only(job, key) for job in jobs) if j is not None]
        part: list[Failure] = []
        try:
            async with conn.transaction():
                await _pass(conn, subset, contexts, {key}, part)
            found += part
        except TRANSIENT:
            raise
        except RuleError as exc:
            failing += 1
            log.warning("patient %s: rule %s failed: %s", subset[0].reading.patient_id, key, exc)
            program = subset[0].sets[0].program
            text = describe(exc.cause)
            concerned = [j.reading for j in subset]
            found.append(Failure.of(concerned, program, key, exc.stage, "not_evaluated", text))
    if not failing:
        # Every rule judged alone: nothing went unjudged, but say what failed together.
        log.error("patient %s: the rules failed together and passed one by one: %s",
                  jobs[0].reading.patient_id, whole)  # fmt: skip
    return found


def _only(job: Job, key: str) -> Job | None:
    sets = [rs.only({key}) for rs in job.sets]
    sets = [rs for rs in sets if job.reading.metric in rs.by_metric]
    return job_for(job.reading, sets) if sets else None


async def _pass(
    conn: AsyncConn,
    jobs: Sequence[Job],
    contexts: Mapping[uuid.UUID, Any],
    keys: set[str] | None,
    found: list[Failure],
    grouped: tuple[list[Group], list[New]] | None = None,
) -> None:
    stage: Stage = "history"
    try:
        groups, news = grouped or _groups(jobs)
        again = await load_history(conn, jobs, groups, news)
        forward = _forward(again, groups, contexts, keys)
        if forward:
            await load_history(conn, forward)
        stage = "evaluate"
        items = _decide(jobs, found)
        decisions = _decide_again(forward, found)
        stage = "alerts"
        additions, revision = await ledger.reconcile(conn, decisions)
        now = datetime.now(UTC)
        await upsert_breaches(conn, items + additions, now=now)
        await ledger.revise(conn, revision, now=now)
    except TRANSIENT:
        raise
    except Exception as exc:
        raise RuleError(stage, exc) from exc


def _groups(jobs: Sequence[Job]) -> tuple[list[Group], list[New]]:
    """Per (patient, metric) whose rules look back: the batch's readings of it (the history
    query takes their span) and how far after them another reading's decision can depend on
    them."""
    numbers: dict[tuple[uuid.UUID, str], int] = {}
    groups: list[Group] = []
    news: list[New] = []
    for job in jobs:
        r = job.reading
        sets = job.sets
        if len(sets) == 1:
            seconds = sets[0].reach.get(r.metric, 0.0)
        else:
            seconds = max(rs.reach.get(r.metric, 0.0) for rs in sets)
        if not seconds:
            continue
        key = (r.patient_id, r.metric)
        g = numbers.get(key)
        if g is None:
            g = numbers[key] = len(groups)
            groups.append(Group(g=g, patient_id=r.patient_id, metric=r.metric, reach_s=seconds))
        elif seconds > groups[g].reach_s:
            groups[g] = Group(g=g, patient_id=r.patient_id, metric=r.metric, reach_s=seconds)
        news.append(New(g, r.origin, r.message_id, r.measured_at))
    return groups, news


def _forward(
    again: Mapping[int, list[StoredReading]],
    groups: Sequence[Group],
    contexts: Mapping[uuid.UUID, Any],
    keys: set[str] | None,
) -> list[Job]:
    """Jobs for the readings to judge again, by the history rules of their metric only."""
    jobs: list[Job] = []
    narrowed: dict[tuple[int, str], Any] = {}
    for g, readings in again.items():
        group = groups[g]
        rules = contexts.get(group.patient_id)
        if rules is None:
            continue
        for reading in readings:
            sets = []
            for rs in rules.covering(reading):
                cached = narrowed.get((id(rs), reading.metric))
                if cached is None:
                    cached = rs.looking_back(reading.metric)
                    if keys is not None:
                        cached = cached.only(keys)
                    narrowed[(id(rs), reading.metric)] = cached
                if reading.metric in cached.by_metric:
                    sets.append(cached)
            if sets:
                jobs.append(job_for(reading, sets))
    return jobs


def _judge(rule: Rule, job: Job) -> Breach | None:
    """As alerts.checks.evaluate with one rule, the baseline as the history query computed
    it; without building a list and a mapping per reading and rule."""
    if isinstance(rule, BaselineRule):
        return judge_baseline(rule, job.obs, job.baseline)
    check = _CHECKS.get(type(rule))
    return None if check is None else check(rule, job.obs, job.history)


_CHECKS: dict[type, Callable[..., Breach | None]] = {
    AbsoluteRule: check_absolute,
    ChangeRule: check_change,
    InrRule: check_inr,
}


class _Broken(msgspec.Struct):
    program: str
    error: str
    readings: list[StoredReading]


def _broken(found: list[Failure], broken: dict[tuple[uuid.UUID, str], _Broken]) -> None:
    for (_, key), b in broken.items():
        found.append(Failure.of(b.readings, b.program, key, "evaluate", "not_evaluated", b.error))


def _note(broken: dict, job: Job, program: str, rule: Rule, exc: Exception) -> None:
    log.exception("patient %s: rule %s failed on a reading", job.reading.patient_id, rule.key)
    entry = broken.setdefault(
        (job.reading.patient_id, rule.key), _Broken(program, describe(exc), [])
    )
    entry.readings.append(job.reading)


def _decide(jobs: Sequence[Job], found: list[Failure]) -> list[BreachItem]:
    items: list[BreachItem] = []
    broken: dict[tuple[uuid.UUID, str], _Broken] = {}
    for job in jobs:
        for rs in job.sets:
            for rule in rs.by_metric[job.reading.metric]:
                try:
                    breach = _judge(rule, job)
                except Exception as exc:  # one rule's bug: that rule, that reading
                    _note(broken, job, rs.program, rule, exc)
                    continue
                if breach is not None:
                    items.append((job.reading.patient_id, rs.program, stamped(breach, job.reading)))
    _broken(found, broken)
    return items


def _decide_again(jobs: Sequence[Job], found: list[Failure]) -> list[ledger.Decision]:
    decisions: list[ledger.Decision] = []
    broken: dict[tuple[uuid.UUID, str], _Broken] = {}
    for job in jobs:
        r = job.reading
        for rs in job.sets:
            for rule in rs.by_metric[r.metric]:
                try:
                    breach = _judge(rule, job)
                except Exception as exc:
                    _note(broken, job, rs.program, rule, exc)
                    continue
                decisions.append(
                    ledger.Decision(
                        patient_id=r.patient_id,
                        program=rs.program,
                        rule_key=rule.key,
                        origin=r.origin,
                        message_id=r.message_id,
                        measured_at=r.measured_at,
                        breach=None if breach is None else stamped(breach, r),
                    )
                )
    _broken(found, broken)
    return decisions
