
-- name: triage
-- The alerts an organisation sees: those routed to it, and those of the patients it is
-- responsible for now (open ones stay with the old holder after a hand-over, and the new holder
-- sees them too). Red first, then the most recently measured.
WITH held AS (
    SELECT patient_id FROM held_by(%(org)s, now())
), visible AS (
    SELECT id FROM alerts WHERE organisation_id = %(org)s
    UNION
    SELECT a.id FROM alerts a JOIN held h ON h.patient_id = a.patient_id
)
SELECT a.*
FROM alert_details a
JOIN visible v ON v.id = a.id
WHERE a.state = ANY(%(states)s)
  AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
  AND (%(program)s::text IS NULL OR a.program = %(program)s)
ORDER BY (a.severity = 'red') DESC, a.last_measured_at DESC, a.id DESC
LIMIT %(limit)s;

-- name: patient_alerts
SELECT a.*
FROM alert_details a
WHERE a.patient_id = %(patient_id)s AND a.state = ANY(%(states)s)
ORDER BY a.last_measured_at DESC, a.id DESC
LIMIT %(limit)s;

-- name: get_alert
SELECT a.*
FROM alert_details a
WHERE a.id = %(id)s;

-- name: readings_around
SELECT measured_at, value, unit, comparator, source
FROM readings
WHERE patient_id = %(patient_id)s AND metric = %(metric)s
  AND measured_at >= %(start)s AND measured_at <= %(end)s
ORDER BY measured_at
LIMIT %(limit)s;

-- name: serving_orgs
SELECT organisation_id FROM care_relations
WHERE patient_id = %(patient_id)s AND relation = 'serving' AND ended_at IS NULL;

-- name: insert_instruction
INSERT INTO instructions (patient_id, alert_id, author_id, author_org_id, text, fields)
VALUES (%(patient_id)s, %(alert_id)s, %(author_id)s, %(author_org_id)s, %(text)s, %(fields)s)
RETURNING id;

-- name: instructions
-- Instructions with their confirmations, of one alert or of one patient.
SELECT i.id, i.patient_id, i.alert_id, i.wound_case_id, i.author_id, u.full_name AS author_name,
       i.author_org_id, o.name AS author_organisation, i.created_at, i.text, i.fields,
       coalesce((
           SELECT json_agg(json_build_object(
                      'id', c.id, 'user_id', c.user_id, 'user_name', cu.full_name,
                      'kind', c.kind, 'at', c.at, 'note', c.note) ORDER BY c.at, c.id)
           FROM instruction_confirmations c JOIN users cu ON cu.id = c.user_id
           WHERE c.instruction_id = i.id
       ), '[]')::text AS confirmations
FROM instructions i
JOIN users u ON u.id = i.author_id
JOIN organisations o ON o.id = i.author_org_id
WHERE (%(alert_id)s::bigint IS NULL OR i.alert_id = %(alert_id)s)
  AND (%(patient_id)s::uuid IS NULL OR i.patient_id = %(patient_id)s)
  AND (%(id)s::uuid IS NULL OR i.id = %(id)s)
ORDER BY i.created_at DESC, i.id
LIMIT %(limit)s;

-- name: insert_confirmation
INSERT INTO instruction_confirmations (instruction_id, user_id, kind, note)
VALUES (%(instruction_id)s, %(user_id)s, %(kind)s, %(note)s)
ON CONFLICT (instruction_id, user_id, kind) DO NOTHING
RETURNING id, at;
