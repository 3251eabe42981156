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
