-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    measured_at timestamptz, patient_id uuid, metric text, value float8, unit text,
    comparator text, source text, origin text, device_id text, entered_by uuid,
    message_id text, detail jsonb
);

-- name: copy_staging
COPY readings_staging (measured_at, patient_id, metric, value, unit, comparator, source, origin,
                       device_id, entered_by, message_id, detail) FROM STDIN (FORMAT BINARY);

-- name: unknown_references
-- The batch's rows whose patient, device (of that patient) or entering user does not exist:
-- the check that stands for the foreign keys (migration 0008). One hash join per batch.
SELECT s.message_id, s.origin, s.metric, s.patient_id, s.device_id, s.entered_by,
       p.id IS NULL AS no_patient,
       s.device_id IS NOT NULL AND d.id IS NULL AS no_device,
       d.patient_id IS DISTINCT FROM s.patient_id AND d.id IS NOT NULL AS other_patient,
       s.entered_by IS NOT NULL AND u.id IS NULL AS no_user
FROM readings_staging s
LEFT JOIN patients p ON p.id = s.patient_id
LEFT JOIN devices d ON d.id = s.device_id
LEFT JOIN users u ON u.id = s.entered_by
WHERE p.id IS NULL
   OR (s.device_id IS NOT NULL AND (d.id IS NULL OR d.patient_id <> s.patient_id))
   OR (s.entered_by IS NOT NULL AND u.id IS NULL)
LIMIT 3;

-- name: insert_from_staging
-- DISTINCT ON: the same message twice in one batch would otherwise make ON CONFLICT fail
-- ("cannot affect row a second time").
INSERT INTO readings (measured_at, patient_id, metric, value, unit, comparator, source, origin,
                      device_id, entered_by, message_id, detail)
SELECT DISTINCT ON (origin, message_id, metric, measured_at)
       measured_at, patient_id, metric, value, unit, comparator, source, origin,
       device_id, entered_by, message_id, detail
FROM readings_staging
ORDER BY origin, message_id, metric, measured_at
ON CONFLICT (origin, message_id, metric, measured_at) DO NOTHING
RETURNING measured_at, received_at, patient_id, metric, value, unit, comparator, source, origin,
          message_id;

-- name: raw
SELECT r.measured_at, r.metric, r.value, r.unit, r.comparator, r.source, r.device_id,
       r.entered_by, u.full_name AS entered_by_name, r.received_at, r.detail
FROM readings r
LEFT JOIN users u ON u.id = r.entered_by
WHERE r.patient_id = %(patient_id)s
  AND (%(metric)s::text IS NULL OR r.metric = %(metric)s)
  AND r.measured_at >= %(start)s AND r.measured_at < %(end)s
ORDER BY r.measured_at DESC, r.metric
LIMIT %(limit)s;

-- name: buckets
SELECT time_bucket(make_interval(secs => %(bucket_s)s), measured_at) AS bucket, metric,
       min(value) AS min, avg(value) AS avg, max(value) AS max, count(*) AS count
FROM readings
WHERE patient_id = %(patient_id)s
  AND (%(metric)s::text IS NULL OR metric = %(metric)s)
  AND measured_at >= %(start)s AND measured_at < %(end)s
GROUP BY bucket, metric
ORDER BY bucket, metric;
