-- name: programs
-- The program a failure alert is filed under when the failing rules could not say: the
-- patient's running enrollment, else the latest one.
SELECT DISTINCT ON (patient_id) patient_id, program
FROM enrollments
WHERE patient_id = ANY(%(patient_ids)s::uuid[])
ORDER BY patient_id, end_date IS NULL DESC, start_date DESC;

-- name: insert_failures
INSERT INTO rule_failures (failed_at, patient_id, rule_key, stage, outcome, error, metric, value,
                           measured_at, received_at, origin, message_id, readings, alert_id)
SELECT %(now)s, f.patient_id, f.rule_key, f.stage, f.outcome, f.error, f.metric, f.value,
       f.measured_at, f.received_at, f.origin, f.message_id, f.readings, f.alert_id
FROM json_to_recordset(%(rows)s::json)
     AS f (patient_id uuid, rule_key text, stage text, outcome text, error text, metric text,
           value float8, measured_at timestamptz, received_at timestamptz, origin text,
           message_id text, readings int, alert_id bigint);

-- name: recent
SELECT f.id, f.failed_at, f.patient_id, p.pseudonym, f.rule_key, f.stage, f.outcome, f.error,
       f.metric, f.value, f.measured_at, f.received_at, f.origin, f.message_id, f.readings,
       f.alert_id, a.state AS alert_state
FROM rule_failures f
JOIN patients p ON p.id = f.patient_id
LEFT JOIN alerts a ON a.id = f.alert_id
WHERE (%(patient_id)s::uuid IS NULL OR f.patient_id = %(patient_id)s)
ORDER BY f.failed_at DESC, f.id DESC
LIMIT %(limit)s;
