-- name: history
-- For each reading that its rules need history for, the bounded history of alerts.rules
-- HistoryNeed, never the reading itself: one row per earlier reading (`part` says which need
-- found it; a reading can come twice) and one 'baseline' row with the median and count of the
-- baseline window. Each part runs only for the readings that need it. The readings come as one
-- JSON array: psycopg builds large array parameters in Python, msgspec encodes JSON in C.
-- Each reading names its need (a handful per batch, sent once each): parsing JSON is a
-- noticeable part of this query's time.
--
-- With them, one 'forward' row (idx = the group) per reading stored before this batch, of a
-- (patient, metric) group of the batch, measured at or after the group's earliest reading and
-- at most `reach_s` after its latest: the readings whose decision the batch may change. Only
-- readings received since alert_readings began are judged again (migration 0046).
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
), x AS MATERIALIZED (
    SELECT *
    FROM json_to_recordset(%(news)s::json)
         AS x (g int, origin text, message_id text, at timestamptz)
), g AS (
    SELECT g.g, g.patient_id, g.metric, s.since,
           s.last + make_interval(secs => g.reach_s) AS until
    FROM json_to_recordset(%(groups)s::json)
         AS g (g int, patient_id uuid, metric text, reach_s float8)
    JOIN (SELECT x.g, min(x.at) AS since, max(x.at) AS last FROM x GROUP BY x.g) s USING (g)
)
SELECT r.idx, 'latest' AS part, h.value, h.measured_at, h.comparator, NULL::bigint AS n,
       NULL::text AS origin, NULL::text AS message_id, NULL::timestamptz AS received_at
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
SELECT r.idx, 'span', h.value, h.measured_at, h.comparator, NULL, NULL, NULL, NULL
FROM r
CROSS JOIN LATERAL (
    SELECT value, measured_at, comparator FROM readings h
    WHERE h.patient_id = r.patient_id AND h.metric = r.metric
      AND h.measured_at <= r.at AND h.measured_at >= r.at - make_interval(secs => r.span_s)
      AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
) h
WHERE r.span_s > 0
UNION ALL
SELECT r.idx, 'before', h.value, h.measured_at, h.comparator, NULL, NULL, NULL, NULL
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
SELECT r.idx, 'extreme', e.value, e.measured_at, e.comparator, NULL, NULL, NULL, NULL
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
SELECT r.idx, 'baseline', b.median, NULL, NULL, b.n, NULL, NULL, NULL
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
WHERE r.baseline_max > 0
UNION ALL
SELECT g.g, 'forward', f.value, f.measured_at, f.comparator, NULL, f.origin, f.message_id,
       f.received_at
FROM g
CROSS JOIN LATERAL (
    SELECT h.value, h.measured_at, h.comparator, h.origin, h.message_id, h.received_at
    FROM readings h
    WHERE h.patient_id = g.patient_id AND h.metric = g.metric
      AND h.measured_at >= g.since
      AND h.measured_at <= g.until
      -- The batch's earliest, one value for the query: chunks before it are left out at the
      -- start (timescaledb's startup exclusion), not probed per group.
      AND h.measured_at >= %(since)s::timestamptz
      AND h.received_at >= (SELECT since FROM alert_readings_since)
      -- Not one of the batch's own: an uncorrelated NOT IN is hashed once per query.
      AND (g.g, h.origin, h.message_id, h.measured_at) NOT IN (
          SELECT x.g, x.origin, x.message_id, x.at FROM x
      )
) f;
