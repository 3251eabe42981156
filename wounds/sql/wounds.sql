-- name: get_wound
SELECT id, patient_id, wound_type, body_location, laterality, location_detail, onset, created_at
FROM wounds WHERE id = %(id)s;

-- name: insert_wound
INSERT INTO wounds (patient_id, wound_type, body_location, laterality, location_detail, onset,
                    created_by, created_by_org)
VALUES (%(patient_id)s, %(wound_type)s, %(body_location)s, %(laterality)s, %(location_detail)s,
        %(onset)s, %(created_by)s, %(created_by_org)s)
RETURNING id;

-- name: patient_place
-- The patient's region (their own, else the responsible organisation's) and the hospitals of the
-- organisations taking part in their care now.
SELECT coalesce(p.region, ro.region) AS region,
       coalesce(array_remove(array_agg(DISTINCT o.hospital), NULL), '{}') AS hospitals,
       ro.id AS responsible_org_id, ro.kind AS responsible_kind
FROM patients p
LEFT JOIN current_responsibility r ON r.patient_id = p.id
LEFT JOIN organisations ro ON ro.id = r.organisation_id
LEFT JOIN (
    SELECT organisation_id FROM current_responsibility WHERE patient_id = %(patient_id)s
    UNION
    SELECT organisation_id FROM care_relations
    WHERE patient_id = %(patient_id)s AND ended_at IS NULL
) rel ON true
LEFT JOIN organisations o ON o.id = rel.organisation_id
WHERE p.id = %(patient_id)s
GROUP BY p.region, ro.region, ro.id, ro.kind;

-- name: routing_rules
SELECT id, wound_type, region, hospital, specialist_org_id, priority
FROM wound_routing_rules ORDER BY priority, id;

-- name: list_routing_rules
SELECT r.id, r.wound_type, r.region, r.hospital, r.specialist_org_id, o.name AS specialist_org,
       r.priority, r.created_at
FROM wound_routing_rules r JOIN organisations o ON o.id = r.specialist_org_id
ORDER BY r.priority, r.id;

-- name: insert_routing_rule
INSERT INTO wound_routing_rules (wound_type, region, hospital, specialist_org_id, priority,
                                 created_by)
VALUES (%(wound_type)s, %(region)s, %(hospital)s, %(specialist_org_id)s, %(priority)s, %(by)s)
RETURNING id;

-- name: delete_routing_rule
DELETE FROM wound_routing_rules WHERE id = %(id)s RETURNING id;

-- name: service_level
-- The team's own level for the urgency, else the default (organisation_id NULL).
SELECT urgency, working_hours, working_days, day_start, day_end
FROM wound_service_levels
WHERE urgency = %(urgency)s AND (organisation_id = %(org)s OR organisation_id IS NULL)
ORDER BY organisation_id NULLS LAST
LIMIT 1;

-- name: list_service_levels
SELECT s.organisation_id, o.name AS organisation, s.urgency, s.working_hours, s.working_days,
       s.day_start, s.day_end, s.updated_at
FROM wound_service_levels s LEFT JOIN organisations o ON o.id = s.organisation_id
ORDER BY s.organisation_id NULLS FIRST, s.urgency;

-- name: upsert_service_level
INSERT INTO wound_service_levels (organisation_id, urgency, working_hours, working_days,
                                  day_start, day_end, updated_by)
VALUES (%(organisation_id)s, %(urgency)s, %(working_hours)s, %(working_days)s, %(day_start)s,
        %(day_end)s, %(by)s)
ON CONFLICT (organisation_id, urgency) DO UPDATE
SET working_hours = EXCLUDED.working_hours, working_days = EXCLUDED.working_days,
    day_start = EXCLUDED.day_start, day_end = EXCLUDED.day_end,
    updated_at = now(), updated_by = EXCLUDED.updated_by;

-- name: insert_case
INSERT INTO wound_cases (id, wound_id, patient_id, state, urgent, wound_type, observation,
                         length_cm, width_cm, depth_cm, area_cm2, submitted_at, submitted_by,
                         submitted_by_org, routed_org_id, routing_rule_id, due_at, updated_at)
VALUES (%(id)s, %(wound_id)s, %(patient_id)s, 'submitted', %(urgent)s, %(wound_type)s,
        %(observation)s, %(length_cm)s, %(width_cm)s, %(depth_cm)s, %(area_cm2)s, %(now)s,
        %(by)s, %(by_org)s, %(routed_org_id)s, %(routing_rule_id)s, %(due_at)s, %(now)s);

-- name: consult
INSERT INTO care_relations (patient_id, organisation_id, relation, created_by)
VALUES (%(patient_id)s, %(organisation_id)s, 'consulted', %(by)s)
ON CONFLICT (patient_id, organisation_id, relation) WHERE ended_at IS NULL DO NOTHING
RETURNING id;

-- name: insert_event
INSERT INTO wound_case_events (case_id, at, kind, actor_id, actor_org_id, from_state, to_state,
                               text, instruction_id, detail)
VALUES (%(case_id)s, %(at)s, %(kind)s, %(actor_id)s, %(actor_org_id)s, %(from_state)s,
        %(to_state)s, %(text)s, %(instruction_id)s, %(detail)s)
RETURNING id;

-- name: insert_photo
INSERT INTO wound_photos (id, case_id, event_id, position, filename, original_sha256,
                          original_bytes, format, mime, width, height, display_width,
                          display_height, thumb_sizes, taken_at, taken_at_zone_assumed,
                          uploaded_at, uploaded_by)
VALUES (%(id)s, %(case_id)s, %(event_id)s, %(position)s, %(filename)s, %(original_sha256)s,
        %(original_bytes)s, %(format)s, %(mime)s, %(width)s, %(height)s, %(display_width)s,
        %(display_height)s, %(thumb_sizes)s, %(taken_at)s, %(taken_at_zone_assumed)s, %(at)s,
        %(by)s);

-- name: next_position
SELECT coalesce(max(position) + 1, 0) AS position FROM wound_photos WHERE case_id = %(case_id)s;

-- name: referenced_originals
SELECT DISTINCT original_sha256 FROM wound_photos WHERE original_sha256 = ANY(%(digests)s);

-- name: referenced_photos
SELECT id FROM wound_photos WHERE id = ANY(%(ids)s);

-- name: case_for_update
SELECT id, patient_id, wound_id, state, urgent, routed_org_id, submitted_by_org, due_at
FROM wound_cases WHERE id = %(id)s FOR UPDATE;

-- name: case_patient
SELECT patient_id FROM wound_cases WHERE id = %(id)s;

-- name: set_state
UPDATE wound_cases
SET state = %(state)s, due_at = %(due_at)s, updated_at = %(now)s,
    escalated_at = CASE WHEN %(reset_escalation)s THEN NULL ELSE escalated_at END,
    answered_at = CASE WHEN %(state)s = 'answered' THEN %(now)s ELSE answered_at END,
    closed_at = CASE WHEN %(state)s = 'closed' THEN %(now)s ELSE closed_at END
WHERE id = %(id)s;

-- name: insert_instruction
INSERT INTO instructions (patient_id, wound_case_id, author_id, author_org_id, created_at, text,
                          fields)
VALUES (%(patient_id)s, %(case_id)s, %(author_id)s, %(author_org_id)s, %(at)s, %(text)s,
        %(fields)s)
RETURNING id;

-- name: latest_instruction
SELECT id FROM instructions WHERE wound_case_id = %(case_id)s
ORDER BY created_at DESC, id DESC LIMIT 1;

-- name: confirm_read
INSERT INTO instruction_confirmations (instruction_id, user_id, kind, at)
VALUES (%(instruction_id)s, %(user_id)s, 'read', %(at)s)
ON CONFLICT (instruction_id, user_id, kind) DO NOTHING;

-- name: escalate_overdue
-- SKIP LOCKED: a case being answered right now is left to that transaction.
WITH due AS (
    SELECT id FROM wound_cases
    WHERE state IN ('submitted', 'awaiting_specialist') AND escalated_at IS NULL
      AND due_at <= %(now)s
    ORDER BY due_at
    FOR UPDATE SKIP LOCKED
)
UPDATE wound_cases c SET escalated_at = %(now)s, updated_at = %(now)s
FROM due WHERE c.id = due.id
RETURNING c.id, c.patient_id, c.wound_id, c.state, c.urgent, c.due_at, c.routed_org_id,
          c.submitted_by_org;

-- name: get_case
SELECT c.id, c.wound_id, c.patient_id, p.pseudonym AS patient_pseudonym, p.name AS patient_name,
       c.state, c.urgent, c.wound_type, c.observation, c.area_cm2, c.submitted_at,
       c.submitted_by, su.full_name AS submitted_by_name, c.submitted_by_org,
       so.name AS submitted_by_org_name, c.routed_org_id, ro.name AS routed_org_name, c.due_at,
       c.escalated_at, c.answered_at, c.closed_at
FROM wound_cases c
JOIN patients p ON p.id = c.patient_id
JOIN users su ON su.id = c.submitted_by
JOIN organisations so ON so.id = c.submitted_by_org
JOIN organisations ro ON ro.id = c.routed_org_id
WHERE c.id = %(id)s;

-- name: wound_cases
-- Every case of a wound, oldest first: earlier cases side by side and the size over time.
SELECT id, state, urgent, wound_type, observation, length_cm, width_cm, depth_cm, area_cm2,
       submitted_at
FROM wound_cases WHERE wound_id = %(wound_id)s
ORDER BY submitted_at, id;

-- name: photos_of_cases
SELECT id, case_id, event_id, position, filename, format, mime, width, height, display_width,
       display_height, thumb_sizes, taken_at, taken_at_zone_assumed, uploaded_at
FROM wound_photos WHERE case_id = ANY(%(case_ids)s)
ORDER BY case_id, position;

-- name: instructions_of_cases
SELECT i.id, i.wound_case_id AS case_id, i.author_id, u.full_name AS author_name,
       i.author_org_id, o.name AS author_org_name, i.created_at, i.text, i.fields,
       coalesce((SELECT jsonb_agg(jsonb_build_object('user_id', c.user_id,
                                                     'name', cu.full_name, 'at', c.at)
                                  ORDER BY c.at)
                 FROM instruction_confirmations c JOIN users cu ON cu.id = c.user_id
                 WHERE c.instruction_id = i.id AND c.kind = 'read'), '[]') AS read_by
FROM instructions i
JOIN users u ON u.id = i.author_id
JOIN organisations o ON o.id = i.author_org_id
WHERE i.wound_case_id = ANY(%(case_ids)s)
ORDER BY i.created_at, i.id;

-- name: events_of_case
SELECT e.id, e.at, e.kind, e.actor_id, u.full_name AS actor_name, e.actor_org_id,
       o.name AS actor_org_name, e.from_state, e.to_state, e.text, e.instruction_id
FROM wound_case_events e
LEFT JOIN users u ON u.id = e.actor_id
LEFT JOIN organisations o ON o.id = e.actor_org_id
WHERE e.case_id = %(case_id)s
ORDER BY e.at, e.id;

-- name: queue
-- Specialists: cases routed to their team. Nurses: cases of patients their organisation is
-- responsible for or serves. Either way only patients the organisation may see now.
SELECT c.id, c.patient_id, p.pseudonym AS patient_pseudonym, p.name AS patient_name, c.wound_id,
       w.body_location, w.laterality, c.wound_type, c.state, c.urgent, c.submitted_at, c.due_at,
       c.due_at IS NOT NULL AND c.due_at <= now() AS overdue, c.escalated_at, c.updated_at,
       c.routed_org_id, ro.name AS routed_org_name, c.submitted_by_org,
       so.name AS submitted_by_org_name,
       (SELECT count(*) FROM wound_photos ph WHERE ph.case_id = c.id) AS photo_count,
       (SELECT ph.id FROM wound_photos ph WHERE ph.case_id = c.id
        ORDER BY ph.position LIMIT 1) AS first_photo_id
FROM wound_cases c
JOIN patients p ON p.id = c.patient_id
JOIN wounds w ON w.id = c.wound_id
JOIN organisations ro ON ro.id = c.routed_org_id
JOIN organisations so ON so.id = c.submitted_by_org
WHERE c.state = ANY(%(states)s)
  AND (%(role)s <> 'specialist' OR c.routed_org_id = %(org)s)
  AND c.patient_id IN (
      SELECT patient_id FROM held_by(%(org)s, now())
      UNION
      SELECT patient_id FROM care_relations
      WHERE organisation_id = %(org)s AND ended_at IS NULL AND relation = ANY(%(relations)s)
  )
ORDER BY c.due_at ASC NULLS LAST, c.updated_at DESC, c.id
LIMIT %(limit)s;

-- name: photo
SELECT ph.id, ph.case_id, c.patient_id, ph.original_sha256, ph.format, ph.mime, ph.thumb_sizes
FROM wound_photos ph JOIN wound_cases c ON c.id = ph.case_id
WHERE ph.id = %(id)s;

-- name: wounds_of_patient
SELECT w.id, w.wound_type, w.body_location, w.laterality, w.location_detail, w.onset,
       w.created_at, count(c.id) AS case_count,
       (array_agg(c.id ORDER BY c.submitted_at DESC))[1] AS last_case_id,
       max(c.submitted_at) AS last_submitted_at,
       (array_agg(c.state ORDER BY c.submitted_at DESC))[1] AS last_state,
       (array_agg(c.area_cm2 ORDER BY c.submitted_at DESC))[1] AS last_area_cm2
FROM wounds w
LEFT JOIN wound_cases c ON c.wound_id = w.id
WHERE w.patient_id = %(patient_id)s
GROUP BY w.id
ORDER BY w.created_at, w.id;
