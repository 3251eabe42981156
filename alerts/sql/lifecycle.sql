-- name: lock_open
-- The not-resolved alerts of these (patient, rule) pairs, locked in id order so that two writers
-- never wait on each other in a circle. Sets of rows come as JSON arrays (msgspec encodes them
-- fast; psycopg builds array parameters in Python).
SELECT a.id, a.patient_id, a.rule_key, a.severity, a.first_measured_at, a.last_measured_at,
       a.last_value, a.count, a.message, a.detail
FROM alerts a
JOIN json_to_recordset(%(keys)s::json) AS k (patient_id uuid, rule_key text)
  ON a.patient_id = k.patient_id AND a.rule_key = k.rule_key
WHERE a.state <> 'resolved'
ORDER BY a.id
FOR UPDATE OF a;

-- name: update_open
WITH u AS (
    SELECT *
    FROM json_to_recordset(%(merged)s::json)
         AS u (id bigint, severity text, message text, detail jsonb,
               first_measured_at timestamptz, last_measured_at timestamptz, last_value float8,
               count int, upgraded bool)
), changed AS (
    UPDATE alerts a
    SET severity = u.severity,
        message = u.message,
        detail = u.detail,
        first_measured_at = u.first_measured_at,
        last_measured_at = u.last_measured_at,
        last_value = u.last_value,
        count = u.count,
        updated_at = %(now)s,
        severity_changed_at = CASE WHEN u.upgraded THEN %(now)s ELSE a.severity_changed_at END,
        -- A red breach on an acknowledged yellow alert needs a clinician again: it re-opens, so
        -- the red acknowledgement deadline (and escalation) runs from the upgrade.
        state = CASE WHEN u.upgraded THEN 'open' ELSE a.state END
    FROM u
    WHERE a.id = u.id
    RETURNING a.*
)
SELECT c.*, p.pseudonym, h.organisation_id AS holder_id
FROM changed c
JOIN patients p ON p.id = c.patient_id
LEFT JOIN LATERAL holder_at(c.patient_id, %(now)s) h ON true;

-- name: insert_new
-- Routed to the holder at the measured time of the first reading; a reading measured before the
-- patient's first hand-over row goes to that first holder. A conflict means another writer
-- opened the alert meanwhile: the caller locks it and merges into it.
WITH n AS (
    SELECT *
    FROM json_to_recordset(%(new)s::json)
         AS n (patient_id uuid, rule_key text, metric text, program text, severity text,
               message text, detail jsonb, first_measured_at timestamptz,
               last_measured_at timestamptz, last_value float8, count int)
), ins AS (
    INSERT INTO alerts (patient_id, rule_key, metric, program, severity, message, detail,
                        first_measured_at, last_measured_at, last_value, count, organisation_id,
                        created_at, updated_at)
    SELECT n.patient_id, n.rule_key, n.metric, n.program, n.severity, n.message, n.detail,
           n.first_measured_at, n.last_measured_at, n.last_value, n.count, routed.organisation_id,
           %(now)s, %(now)s
    FROM n
    LEFT JOIN LATERAL (
        SELECT coalesce(
            (SELECT h.organisation_id FROM holder_at(n.patient_id, n.first_measured_at) h),
            (SELECT r.organisation_id FROM responsibility r WHERE r.patient_id = n.patient_id
             ORDER BY r.since LIMIT 1)
        ) AS organisation_id
    ) routed ON true
    ON CONFLICT (patient_id, rule_key) WHERE state <> 'resolved' DO NOTHING
    RETURNING *
)
SELECT i.*, p.pseudonym, h.organisation_id AS holder_id
FROM ins i
JOIN patients p ON p.id = i.patient_id
LEFT JOIN LATERAL holder_at(i.patient_id, %(now)s) h ON true;

-- name: transition
-- Guarded by the states it may leave, so two clinicians acting at once cannot both succeed.
WITH changed AS (
    UPDATE alerts SET
        state = %(to)s,
        updated_at = now(),
        acknowledged_at = CASE WHEN %(to)s = 'acknowledged' THEN now() ELSE acknowledged_at END,
        acknowledged_by = CASE WHEN %(to)s = 'acknowledged' THEN %(user_id)s::uuid
                               ELSE acknowledged_by END,
        acknowledgement_note = CASE WHEN %(to)s = 'acknowledged' THEN %(note)s
                                    ELSE acknowledgement_note END,
        resolved_at = CASE WHEN %(to)s = 'resolved' THEN now() ELSE resolved_at END,
        resolved_by = CASE WHEN %(to)s = 'resolved' THEN %(user_id)s::uuid ELSE resolved_by END,
        resolution_note = CASE WHEN %(to)s = 'resolved' THEN %(note)s ELSE resolution_note END
    WHERE id = %(id)s AND state = ANY(%(from)s)
    RETURNING *
)
SELECT c.*, p.pseudonym, h.organisation_id AS holder_id
FROM changed c
JOIN patients p ON p.id = c.patient_id
LEFT JOIN LATERAL holder_at(c.patient_id, now()) h ON true;

-- name: insert_readings
-- The breaching readings of each alert (alerts.ledger). A reading judged again whose breach
-- counted in a resolved alert moves to the alert that counts it now.
INSERT INTO alert_readings (patient_id, rule_key, origin, message_id, measured_at, alert_id,
                            received_at, severity, value, message, detail)
SELECT r.patient_id, r.rule_key, r.origin, r.message_id, r.measured_at, r.alert_id,
       r.received_at, r.severity, r.value, r.message, r.detail
FROM json_to_recordset(%(rows)s::json)
     AS r (patient_id uuid, rule_key text, origin text, message_id text,
           measured_at timestamptz, alert_id bigint, received_at timestamptz, severity text,
           value float8, message text, detail jsonb)
ON CONFLICT (patient_id, rule_key, origin, message_id, measured_at) DO UPDATE
SET alert_id = EXCLUDED.alert_id, received_at = EXCLUDED.received_at,
    severity = EXCLUDED.severity, value = EXCLUDED.value, message = EXCLUDED.message,
    detail = EXCLUDED.detail;
