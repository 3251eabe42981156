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
WHERE p.id = ANY(%(patient_ids)s::uuid[]);

-- name: history
-- For each reading that its rules need history for, the bounded history of alerts.rules
-- HistoryNeed: the latest readings, every reading of a span and the one before it, the extreme
-- exact values, and the median of the baseline window; never the reading itself.
WITH r AS (
    SELECT *
    FROM unnest(%(idx)s::int[], %(patient_ids)s::uuid[], %(metrics)s::text[],
                %(ats)s::timestamptz[], %(origins)s::text[], %(message_ids)s::text[],
                %(latest)s::int[], %(latest_s)s::float8[], %(span_s)s::float8[],
                %(before_s)s::float8[], %(extremes_s)s::float8[], %(baseline_s)s::float8[],
                %(baseline_max)s::int[])
         AS r (idx, patient_id, metric, at, origin, message_id, latest, latest_s, span_s,
               before_s, extremes_s, baseline_s, baseline_max)
)
SELECT r.idx, h.vals, h.ats, h.comparators, b.median, b.n
FROM r
LEFT JOIN LATERAL (
    SELECT array_agg(x.value) AS vals, array_agg(x.measured_at) AS ats,
           array_agg(x.comparator) AS comparators
    FROM (
        (SELECT value, measured_at, comparator FROM readings h
         WHERE h.patient_id = r.patient_id AND h.metric = r.metric
           AND h.measured_at <= r.at AND h.measured_at >= r.at - make_interval(secs => r.latest_s)
           AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
         ORDER BY h.measured_at DESC LIMIT r.latest)
        UNION
        (SELECT value, measured_at, comparator FROM readings h
         WHERE r.span_s > 0 AND h.patient_id = r.patient_id AND h.metric = r.metric
           AND h.measured_at <= r.at AND h.measured_at >= r.at - make_interval(secs => r.span_s)
           AND NOT (h.origin = r.origin AND h.message_id = r.message_id))
        UNION
        (SELECT value, measured_at, comparator FROM readings h
         WHERE r.span_s > 0 AND h.patient_id = r.patient_id AND h.metric = r.metric
           AND h.measured_at < r.at - make_interval(secs => r.span_s)
           AND h.measured_at >= r.at - make_interval(secs => r.before_s)
         ORDER BY h.measured_at DESC LIMIT 1)
        UNION
        (SELECT value, measured_at, comparator FROM readings h
         WHERE r.extremes_s > 0 AND h.patient_id = r.patient_id AND h.metric = r.metric
           AND h.comparator IS NULL
           AND h.measured_at <= r.at
           AND h.measured_at >= r.at - make_interval(secs => r.extremes_s)
           AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
         ORDER BY h.value, h.measured_at LIMIT 1)
        UNION
        (SELECT value, measured_at, comparator FROM readings h
         WHERE r.extremes_s > 0 AND h.patient_id = r.patient_id AND h.metric = r.metric
           AND h.comparator IS NULL
           AND h.measured_at <= r.at
           AND h.measured_at >= r.at - make_interval(secs => r.extremes_s)
           AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
         ORDER BY h.value DESC, h.measured_at LIMIT 1)
    ) x
) h ON true
LEFT JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY w.value) AS median, count(*) AS n
    FROM (
        SELECT value FROM readings h
        WHERE h.patient_id = r.patient_id AND h.metric = r.metric AND h.comparator IS NULL
          AND h.measured_at <= r.at
          AND h.measured_at >= r.at - make_interval(secs => r.baseline_s)
          AND NOT (h.origin = r.origin AND h.message_id = r.message_id)
        ORDER BY h.measured_at DESC LIMIT r.baseline_max
    ) w
) b ON r.baseline_max > 0;
