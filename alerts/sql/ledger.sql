-- name: old_decisions
-- The rows of the readings judged again, with the state of the alert each counts in.
SELECT ar.patient_id, ar.rule_key, ar.origin, ar.message_id, ar.measured_at, ar.alert_id,
       ar.severity, ar.message, a.state
FROM json_to_recordset(%(keys)s::json)
     AS k (patient_id uuid, rule_key text, origin text, message_id text, measured_at timestamptz)
JOIN alert_readings ar
  ON ar.patient_id = k.patient_id AND ar.rule_key = k.rule_key AND ar.origin = k.origin
 AND ar.message_id = k.message_id AND ar.measured_at = k.measured_at
JOIN alerts a ON a.id = ar.alert_id;

-- name: apply_revision
-- Rows withdrawn and rows changed; the alerts they belong to, with how many rows each lost.
WITH d AS (
    DELETE FROM alert_readings ar
    USING json_to_recordset(%(deletes)s::json)
          AS k (patient_id uuid, rule_key text, origin text, message_id text,
                measured_at timestamptz)
    WHERE ar.patient_id = k.patient_id AND ar.rule_key = k.rule_key AND ar.origin = k.origin
      AND ar.message_id = k.message_id AND ar.measured_at = k.measured_at
    RETURNING ar.alert_id
), u AS (
    UPDATE alert_readings ar
    SET severity = k.severity, value = k.value, message = k.message, detail = k.detail
    FROM json_to_recordset(%(updates)s::json)
         AS k (patient_id uuid, rule_key text, origin text, message_id text,
               measured_at timestamptz, severity text, value float8, message text, detail jsonb)
    WHERE ar.patient_id = k.patient_id AND ar.rule_key = k.rule_key AND ar.origin = k.origin
      AND ar.message_id = k.message_id AND ar.measured_at = k.measured_at
    RETURNING ar.alert_id
)
SELECT alert_id, 1 AS removed FROM d
UNION ALL
SELECT alert_id, 0 FROM u;

-- name: summary
-- The touched alerts that are not resolved, locked in id order, with what their rows add up
-- to: how many, first and last measured, the last value, the worst severity and the sentence
-- of the worst and latest breach (as upsert_breaches folds them).
WITH t AS (
    SELECT * FROM json_to_recordset(%(alerts)s::json) AS t (id bigint, removed int)
), locked AS (
    SELECT a.id, a.severity, a.count, a.message, a.detail, a.first_measured_at,
           a.last_measured_at, a.last_value
    FROM alerts a JOIN t USING (id)
    WHERE a.state <> 'resolved'
    ORDER BY a.id
    FOR UPDATE OF a
)
SELECT l.*, t.removed, s.n, s.first, s.last, s.led_last_value, s.rank, s.led_message,
       s.led_detail
FROM locked l
JOIN t USING (id)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(ar.measured_at) AS first, max(ar.measured_at) AS last,
           (array_agg(ar.value ORDER BY ar.measured_at DESC))[1] AS led_last_value,
           max(CASE ar.severity WHEN 'red' THEN 2 ELSE 1 END) AS rank,
           (array_agg(ar.message ORDER BY ar.severity = 'red' DESC, ar.measured_at DESC))[1]
               AS led_message,
           (array_agg(ar.detail ORDER BY ar.severity = 'red' DESC, ar.measured_at DESC))[1]
               AS led_detail
    FROM alert_readings ar
    WHERE ar.alert_id = l.id
) s;

-- name: revise_alerts
-- The recomputed alerts (alerts.ledger), with what every alert event needs. A withdrawn alert
-- keeps what it said, and is resolved by no user with the note saying why.
WITH u AS (
    SELECT *
    FROM json_to_recordset(%(rows)s::json)
         AS u (id bigint, severity text, message text, detail jsonb,
               first_measured_at timestamptz, last_measured_at timestamptz, last_value float8,
               count int, upgraded bool, resolve bool, note text)
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
        state = CASE WHEN u.resolve THEN 'resolved' WHEN u.upgraded THEN 'open' ELSE a.state END,
        resolved_at = CASE WHEN u.resolve THEN %(now)s ELSE a.resolved_at END,
        resolution_note = CASE WHEN u.resolve THEN u.note ELSE a.resolution_note END
    FROM u
    WHERE a.id = u.id
    RETURNING a.*
)
SELECT c.*, p.pseudonym, h.organisation_id AS holder_id
FROM changed c
JOIN patients p ON p.id = c.patient_id
LEFT JOIN LATERAL holder_at(c.patient_id, %(now)s) h ON true;
