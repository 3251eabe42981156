-- name: insert_patient
INSERT INTO patients (pseudonym, name, date_of_birth, cpr_hmac, cpr_enc, cpr_key, region,
                      created_by)
VALUES (%(pseudonym)s, %(name)s, %(date_of_birth)s, %(cpr_hmac)s, %(cpr_enc)s, %(cpr_key)s,
        %(region)s, %(created_by)s)
RETURNING id, pseudonym, name, date_of_birth, region, created_at;

-- name: get_patient
SELECT p.id, p.pseudonym, p.name, p.date_of_birth, p.region, p.created_at,
       r.organisation_id AS responsible_organisation_id, o.name AS responsible_organisation
FROM patients p
LEFT JOIN current_responsibility r ON r.patient_id = p.id
LEFT JOIN organisations o ON o.id = r.organisation_id
WHERE p.id = %(id)s;

-- name: list_patients
SELECT p.id, p.pseudonym, p.name, p.date_of_birth, p.region, p.created_at,
       r.organisation_id AS responsible_organisation_id, o.name AS responsible_organisation
FROM patients p
LEFT JOIN current_responsibility r ON r.patient_id = p.id
LEFT JOIN organisations o ON o.id = r.organisation_id
ORDER BY p.name, p.id;

-- name: insert_enrollment
INSERT INTO enrollments (patient_id, program, stratum, start_date, end_date, created_by)
VALUES (%(patient_id)s, %(program)s, %(stratum)s, %(start_date)s, %(end_date)s, %(created_by)s)
RETURNING id, patient_id, program, stratum, start_date, end_date, created_at;

-- name: list_enrollments
SELECT id, patient_id, program, stratum, start_date, end_date, created_at
FROM enrollments WHERE patient_id = %(patient_id)s ORDER BY start_date DESC, created_at DESC;

-- name: end_enrollment
UPDATE enrollments SET end_date = %(end_date)s
WHERE id = %(id)s AND patient_id = %(patient_id)s AND end_date IS NULL
RETURNING id, patient_id, program, stratum, start_date, end_date, created_at;

-- name: insert_responsibility
INSERT INTO responsibility (patient_id, organisation_id, since, reason, handed_over_by)
VALUES (%(patient_id)s, %(organisation_id)s, coalesce(%(since)s, now()), %(reason)s, %(by)s)
RETURNING id, patient_id, organisation_id, since, reason, handed_over_by, created_at;

-- name: responsibility_history
SELECT r.id, r.patient_id, r.organisation_id, o.name AS organisation, r.since, r.reason,
       r.handed_over_by, r.created_at,
       lead(r.since) OVER (ORDER BY r.since) AS until
FROM responsibility r JOIN organisations o ON o.id = r.organisation_id
WHERE r.patient_id = %(patient_id)s
ORDER BY r.since;

-- name: responsible_at
SELECT organisation_id FROM holder_at(%(patient_id)s, %(at)s);

-- name: insert_care_relation
INSERT INTO care_relations (patient_id, organisation_id, relation, created_by)
VALUES (%(patient_id)s, %(organisation_id)s, %(relation)s, %(by)s)
ON CONFLICT (patient_id, organisation_id, relation) WHERE ended_at IS NULL DO NOTHING
RETURNING id, patient_id, organisation_id, relation, started_at, ended_at;

-- name: end_care_relation
UPDATE care_relations SET ended_at = now()
WHERE id = %(id)s AND patient_id = %(patient_id)s AND ended_at IS NULL
RETURNING id, patient_id, organisation_id, relation, started_at, ended_at;

-- name: list_care_relations
SELECT c.id, c.patient_id, c.organisation_id, o.name AS organisation, c.relation,
       c.started_at, c.ended_at
FROM care_relations c JOIN organisations o ON o.id = c.organisation_id
WHERE c.patient_id = %(patient_id)s
ORDER BY c.started_at;
