-- name: planner_settings
-- For the rest of the ingest transaction only. The per-reading lookups below are many small
-- index scans: compiling them (JIT) costs seconds where running them costs milliseconds, and
-- TimescaleDB's chunk exclusion at run time costs more per lookup than the scans it saves.
-- With the version of the rule contexts (migration 0023), in the same round trip.
SELECT set_config('jit', 'off', true),
       set_config('timescaledb.enable_runtime_exclusion', 'off', true),
       (SELECT version FROM rule_context_version) AS rule_context_version;

-- name: context
-- Per patient of a batch: enrollments and the overrides in force (latest row per rule and field,
-- left out when that row is a reset), as JSON text decoded straight into Structs.
SELECT p.id AS patient_id,
       coalesce((
           SELECT json_agg(json_build_object(
                      'program', e.program, 'stratum', e.stratum,
                      'start_date', e.start_date, 'end_date', e.end_date))
           FROM enrollments e WHERE e.patient_id = p.id
       ), '[]')::text AS enrollments,
       coalesce((
           SELECT json_agg(json_build_object(
                      'rule_key', o.rule_key, 'field', o.field, 'value', o.value,
                      'set_by', o.set_by, 'set_at', o.set_at, 'reason', o.reason))
           FROM (
               SELECT DISTINCT ON (rule_key, field) *
               FROM threshold_overrides
               WHERE patient_id = p.id
               ORDER BY rule_key, field, set_at DESC, id DESC
           ) o
           WHERE NOT o.reset
       ), '[]')::text AS overrides
FROM patients p
-- The ids come as one array literal: psycopg builds array parameters element by element.
WHERE p.id = ANY(%(patient_ids)s::text::uuid[]);

-- name: history
-- For each reading that its rules need history for, the bounded history of alerts.rules
-- HistoryNeed, never the reading itself: one row per earlier reading (`part` says which need
-- found it; a reading can come twice) and one 'baseline' row with the median and count of the
-- baseline window. Each part runs only for the readings that need it. The readings come as one
-- JSON array: psycopg builds large array parameters in Python, msgspec encodes JSON in C.
-- Each reading names its need (a handful per batch, sent once each): parsing JSON is a
-- noticeable part of this query's time.
WITH n AS (
    SELECT *
    FROM json_to_recordset(%(needs)s::json)
         AS n (need int, latest int, latest_s float8, span_s float8, before_s float8,
               extremes_s float8, baseline_s float8, baseline_max int)
), r AS (
    SELECT l.idx, l.patient_id, l.metric, l.at, l.origin, l.message_id, n.latest, n.latest_s,
           n.span_s, n.before_s, n.extremes_s, n.baseline_s, n.baseline_max
    FROM json_to_recordset(%(lookups)s::json)
         AS l (idx int, patient_id uuid, metric text, at timestamptz, origin text,
               message_id text, need int)
    JOIN n USING (need)
)
SELECT r.idx, 'latest' AS part, h.value, h.measured_at, h.comparator, NULL::bigint AS n
FROM r
CROSS JOIN LATERAL (
    SELECT value, measured_at, comparator FROM readings h
    WHERE h.patient_id = r.patient_id AND h.metric = r.metric
      AND h.measured_at <= r.at AND h.measured_at >= r.at - make_interval(secs => r.latest_s)
      AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
    ORDER BY h.measured_at DESC LIMIT r.latest
) h
WHERE r.latest > 0
UNION ALL
SELECT r.idx, 'span', h.value, h.measured_at, h.comparator, NULL
FROM r
CROSS JOIN LATERAL (
    SELECT value, measured_at, comparator FROM readings h
    WHERE h.patient_id = r.patient_id AND h.metric = r.metric
      AND h.measured_at <= r.at AND h.measured_at >= r.at - make_interval(secs => r.span_s)
      AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
) h
WHERE r.span_s > 0
UNION ALL
SELECT r.idx, 'before', h.value, h.measured_at, h.comparator, NULL
FROM r
CROSS JOIN LATERAL (
    SELECT value, measured_at, comparator FROM readings h
    WHERE h.patient_id = r.patient_id AND h.metric = r.metric
      AND h.measured_at < r.at - make_interval(secs => r.span_s)
      AND h.measured_at >= r.at - make_interval(secs => r.before_s)
    ORDER BY h.measured_at DESC LIMIT 1
) h
WHERE r.span_s > 0
UNION ALL
SELECT r.idx, 'extreme', e.value, e.measured_at, e.comparator, NULL
FROM r
CROSS JOIN LATERAL (
    SELECT x.value, x.measured_at, x.comparator
    FROM (
        SELECT value, measured_at, comparator,
               row_number() OVER (ORDER BY h.value, h.measured_at) AS lowest,
               row_number() OVER (ORDER BY h.value DESC, h.measured_at) AS highest
        FROM readings h
        WHERE h.patient_id = r.patient_id AND h.metric = r.metric AND h.comparator IS NULL
          AND h.measured_at <= r.at
          AND h.measured_at >= r.at - make_interval(secs => r.extremes_s)
          AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
    ) x
    WHERE x.lowest = 1 OR x.highest = 1
) e
WHERE r.extremes_s > 0
UNION ALL
SELECT r.idx, 'baseline', b.median, NULL, NULL, b.n
FROM r
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY w.value) AS median, count(*) AS n
    FROM (
        SELECT value FROM readings h
        WHERE h.patient_id = r.patient_id AND h.metric = r.metric AND h.comparator IS NULL
          AND h.measured_at <= r.at
          AND h.measured_at >= r.at - make_interval(secs => r.baseline_s)
          AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
        ORDER BY h.measured_at DESC LIMIT r.baseline_max
    ) w
) b
WHERE r.baseline_max > 0;
