"""One definition of each domain rule in SQL (migration 0090): who holds the baton at a time
(holder_at, held_by, the current_responsibility view) and the threshold overrides in force
(overrides_in_force). Each gives the same answers as the copies the queries used to carry, kept
here verbatim as the reference, on histories with hand-overs and overrides at awkward times;
each is inlined by the planner, so the indexes still serve the queries that use them; and no
copy is left in the code."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.hooks import Q as HOOKS
from alerts.lifecycle import Q as LIFECYCLE
from alerts.service import Q as SERVICE
from telemed.settings import REPO_ROOT

US = timedelta(microseconds=1)

# The copies as they were, each with its time as a parameter.
OLD_HOLDER = """
SELECT r.organisation_id FROM responsibility r
WHERE r.patient_id = %(patient)s AND r.since <= %(t)s
ORDER BY r.since DESC LIMIT 1
"""
OLD_ROUTED = """
SELECT r.organisation_id FROM responsibility r
WHERE r.patient_id = %(patient)s
ORDER BY r.since <= %(t)s DESC, CASE WHEN r.since <= %(t)s THEN r.since END DESC, r.since
LIMIT 1
"""
OLD_HELD = """
SELECT r.patient_id FROM responsibility r
WHERE r.organisation_id = %(org)s AND r.since <= %(t)s
  AND NOT EXISTS (
      SELECT 1 FROM responsibility later
      WHERE later.patient_id = r.patient_id AND later.since > r.since AND later.since <= %(t)s
  )
"""
OLD_CURRENT = """
SELECT DISTINCT ON (patient_id) patient_id, organisation_id, since
FROM responsibility WHERE since <= now() ORDER BY patient_id, since DESC
"""
OLD_OVERRIDES = """
SELECT o.* FROM (
    SELECT DISTINCT ON (rule_key, field) * FROM threshold_overrides
    WHERE patient_id = %(patient)s
    ORDER BY rule_key, field, set_at DESC, id DESC
) o WHERE NOT o.reset
"""

NEW_ROUTED = """
SELECT coalesce(
    (SELECT h.organisation_id FROM holder_at(%(patient)s, %(t)s) h),
    (SELECT r.organisation_id FROM responsibility r WHERE r.patient_id = %(patient)s
     ORDER BY r.since LIMIT 1)
) AS organisation_id
"""


def _one(db: psycopg.Connection, sql: str, **params) -> uuid.UUID | None:
    row = db.execute(sql, params).fetchone()
    return row["organisation_id"] if row else None


def test_the_holder_at_any_time_is_what_the_old_queries_said(db, factory) -> None:
    a, b, c = factory.org(), factory.org(), factory.org()
    t0 = datetime(2025, 3, 30, 0, 59, 59, 999999, tzinfo=UTC)  # a microsecond before DST
    t1 = t0 + timedelta(days=40)
    future = datetime.now(UTC) + timedelta(days=2)
    patient = factory.patient(a)  # held by a since yesterday (the factory's row), and:
    history = [(a, t0), (b, t1), (c, t1 + US), (a, t1 + 2 * US), (b, future)]
    for org, since in history:
        db.execute(
            "INSERT INTO responsibility (patient_id, organisation_id, since, reason) "
            "VALUES (%s, %s, %s, 'test')",
            (patient, org, since),
        )
    once = factory.patient(a)  # one hand-over, yesterday; and a patient with none:
    bare = db.execute(
        "INSERT INTO patients (pseudonym, name, date_of_birth) "
        "VALUES (%s, 'Ingen Stafet', '1950-01-01') RETURNING id",
        (f"P-{uuid.uuid4().hex[:8].upper()}",),
    ).fetchone()["id"]
    times = [datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC), datetime.now(UTC)]
    for _, since in history:
        times += [since - US, since, since + US]
    for who in (patient, once, bare):
        for t in times:
            old = _one(db, OLD_HOLDER, patient=who, t=t)
            new = _one(db, "SELECT organisation_id FROM holder_at(%(patient)s, %(t)s)",
                       patient=who, t=t)  # fmt: skip
            assert new == old, (who, t)
            assert _one(db, NEW_ROUTED, patient=who, t=t) == _one(db, OLD_ROUTED, patient=who, t=t)
    assert _one(db, NEW_ROUTED, patient=patient, t=t0 - US) == a  # before any: the first
    assert _one(db, "SELECT organisation_id FROM holder_at(%(p)s, %(t)s)", p=bare, t=t1) is None
    for org in (a, b, c):
        for t in times:
            old = {r["patient_id"] for r in db.execute(OLD_HELD, {"org": org, "t": t})}
            new = {r["patient_id"] for r in db.execute(
                "SELECT patient_id FROM held_by(%s, %s)", (org, t))}  # fmt: skip
            assert new == old, (org, t)
    ours = [patient, once, bare]
    old = db.execute(f"SELECT * FROM ({OLD_CURRENT}) x WHERE patient_id = ANY(%s)", (ours,))
    new = db.execute("SELECT * FROM current_responsibility WHERE patient_id = ANY(%s)", (ours,))
    assert sorted(map(str, old.fetchall())) == sorted(map(str, new.fetchall()))


def test_the_overrides_in_force_are_what_the_old_queries_said(db, factory) -> None:
    team = factory.org()
    who = factory.user("specialist", team).id
    patient, other = factory.patient(team), factory.patient(team)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        # rule, field, value (None: a reset), set_at
        ("absolute:spo2", "red_below", 88, at),
        ("absolute:spo2", "red_below", 86, at + US),
        ("absolute:spo2", "yellow_below", 92, at),
        ("absolute:spo2", "yellow_below", None, at + timedelta(days=1)),  # reset: none in force
        ("absolute:pulse", "red_above", 130, at),
        ("absolute:pulse", "red_above", 125, at),  # the same moment: the later row counts
        ("absolute:pulse", "yellow_above", None, at),
        ("absolute:pulse", "yellow_above", 110, at + timedelta(hours=1)),  # set after a reset
    ]
    for rule, field, value, set_at in rows:
        for p in (patient, other):
            db.execute(
                "INSERT INTO threshold_overrides (patient_id, rule_key, field, value, reset, "
                " set_by, set_at, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, 'test')",
                (p, rule, field, None if value is None else json.dumps(value), value is None,
                 who, set_at if p == patient else set_at + US),
            )  # fmt: skip
    for p in (patient, other, uuid.uuid4()):
        old = db.execute(OLD_OVERRIDES + " ORDER BY id", {"patient": p}).fetchall()
        new = db.execute("SELECT * FROM overrides_in_force(%s) ORDER BY id", (p,)).fetchall()
        assert new == old
    found = db.execute("SELECT rule_key, field, value FROM overrides_in_force(%s) "
                       "ORDER BY rule_key, field", (patient,)).fetchall()  # fmt: skip
    assert [(r["rule_key"], r["field"], r["value"]) for r in found] == [
        ("absolute:pulse", "red_above", 125),
        ("absolute:pulse", "yellow_above", 110),
        ("absolute:spo2", "red_below", 86),
    ]


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _plan(db: psycopg.Connection, sql: str, params: dict) -> list[dict]:
    """The plan's nodes, with sequential scans made as dear as can be: an index the query can
    use is then used, and a function that was not inlined shows as a Function Scan of it."""
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")
        db.execute("SET LOCAL jit = off")
        row = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
    return _nodes(row["QUERY PLAN"][0]["Plan"])


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT * FROM holder_at(%(patient)s, now())", "responsibility_patient_id_since_key"),
        ("SELECT * FROM held_by(%(org)s, now())", "responsibility_org"),
        ("SELECT * FROM current_responsibility WHERE patient_id = %(patient)s",
         "responsibility_patient_id_since_key"),
        ("SELECT * FROM overrides_in_force(%(patient)s)", "threshold_overrides_current"),
        (HOOKS.context, "threshold_overrides_current"),
        (LIFECYCLE.insert_new, "responsibility_patient_id_since_key"),
        (LIFECYCLE.update_alerts, "responsibility_patient_id_since_key"),
        (SERVICE.triage, "responsibility_org"),
    ],
    ids=["holder_at", "held_by", "current_responsibility", "overrides_in_force", "hooks.context",
         "lifecycle.insert_new", "lifecycle.update_alerts", "service.triage"],
)  # fmt: skip
def test_the_rules_are_inlined_and_use_their_indexes(db, care, sql: str, index: str) -> None:
    new = [{"patient_id": str(care.patient), "rule_key": "absolute:spo2", "metric": "spo2",
            "program": "copd", "severity": "red", "message": "m", "detail": {},
            "first_measured_at": "2026-01-01T00:00:00Z", "last_measured_at": "2026-01-01T00:00:00Z",
            "last_value": 80, "count": 1}]  # fmt: skip
    params = {"patient": care.patient, "org": care.hospital, "now": datetime.now(UTC),
              "patient_ids": "{" + str(care.patient) + "}", "new": json.dumps(new),
              "rows": "[]", "states": ["open"], "severity": None, "program": None,
              "limit": 10}  # fmt: skip
    nodes = _plan(db, sql, params)
    ours = {"holder_at", "held_by", "overrides_in_force"}
    assert [n for n in nodes if n.get("Function Name") in ours] == [], nodes
    assert index in {n.get("Index Name") for n in nodes}, nodes


SOURCES = ("app", "telemed", "alerts", "devices", "events", "ingest", "wounds")


def test_no_copy_of_either_rule_is_left_in_the_code() -> None:
    """The baton at a time is a hand-over with `since <=` a time, the override in force a
    DISTINCT ON over rule and field: outside migration 0090 neither is written again."""
    holder = re.compile(r"responsibility\b[^;]{0,400}?\bsince\s*<=", re.S | re.I)
    override = re.compile(r"DISTINCT\s+ON\s*\(\s*rule_key\s*,\s*field\s*\)", re.I)
    copies = []
    for package in SOURCES:
        for path in (REPO_ROOT / package).rglob("*"):
            if path.suffix in (".py", ".sql"):
                text = path.read_text()
                if holder.search(text) or override.search(text):
                    copies.append(str(path.relative_to(REPO_ROOT)))
    assert copies == []
    assert holder.search(OLD_HOLDER) and holder.search(OLD_HELD) and override.search(OLD_OVERRIDES)
