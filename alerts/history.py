"""The history the rules need on the ingest path, read in one query per batch.

For each reading whose rules need history (alerts.rules HistoryNeed), the bounded part of the
patient's earlier readings of that metric, and the baseline median, computed in SQL. With it,
per (patient, metric) group of the batch, the readings already stored that were measured after
the batch's earliest one and within the reach of the metric's history rules: their decisions
may depend on the batch's readings (a late reading, or one another worker committed first),
so the caller judges them again (alerts.evaluation).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from psycopg.rows import tuple_row

from alerts.checks import Baseline
from alerts.rules import HistoryNeed, Obs, as_comparator
from telemed.db import AsyncConn, Queries
from telemed.readings import StoredReading

Q = Queries("history", folder=Path(__file__).parent / "sql")


class Job(msgspec.Struct):
    """One reading to judge: the rule sets (alerts.hooks.RuleSet) that apply to it, what
    history they need, and that history once loaded."""

    reading: StoredReading
    obs: Obs
    sets: list[Any]
    need: HistoryNeed
    history: list[Obs] = []
    baseline: Baseline | None = None


class Group(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A (patient, metric) of the batch whose rules look back: the readings stored measured
    from the earliest of the batch's readings of it (`news`) to `reach_s` after the latest, and
    not of the batch, are to be judged again."""

    g: int
    patient_id: uuid.UUID
    metric: str
    reach_s: float


class New(msgspec.Struct, frozen=True, gc=False):
    """One of the batch's readings of a group, so that it is not judged again as stored."""

    g: int
    origin: str
    message_id: str
    at: datetime


class _Lookup(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One reading's history lookup, as the history query reads it; `need` indexes the needs."""

    idx: int
    patient_id: uuid.UUID
    metric: str
    at: datetime
    origin: str
    message_id: str
    need: int


class _Need(msgspec.Struct, frozen=True, kw_only=True, gc=False):
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


def _json(items: Sequence[msgspec.Struct]) -> str:
    return msgspec.json.encode(items).decode()


async def load_history(
    conn: AsyncConn,
    jobs: Sequence[Job],
    groups: Sequence[Group] = (),
    news: Sequence[New] = (),
) -> dict[int, list[StoredReading]]:
    """Fill in each job's history and baseline; return the readings of each group to judge
    again (`news` lists each group's readings of this batch)."""
    wanted = [(i, job) for i, job in enumerate(jobs) if not job.need.empty]
    if not wanted and not groups:
        return {}
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
        "lookups": _json(lookups),
        "needs": _json(needs),
        "groups": _json(groups),
        "news": _json(news),
        "since": min((n.at for n in news), default=None),
    }
    found: dict[int, dict[tuple, Obs]] = {}
    again: dict[int, list[StoredReading]] = {}
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(Q.history, params)
        rows = await cur.fetchall()
    by_g = {g.g: g for g in groups}
    for idx, part, value, measured_at, comparator, n, origin, message_id, received_at in rows:
        if part == "forward":
            group = by_g[idx]
            stored = StoredReading(
                measured_at=measured_at,
                received_at=received_at,
                patient_id=group.patient_id,
                metric=group.metric,
                value=value,
                unit="",
                comparator=comparator,
                source="",
                origin=origin,
                message_id=message_id,
            )
            again.setdefault(idx, []).append(stored)
            continue
        job = jobs[idx]
        if part == "baseline":
            if n:
                job.baseline = Baseline(value, n)
            continue
        key = (value, measured_at, comparator)
        obs = Obs(job.reading.metric, value, measured_at, as_comparator(comparator))
        found.setdefault(idx, {})[key] = obs
    for idx, history in found.items():
        jobs[idx].history = list(history.values())
    return again
