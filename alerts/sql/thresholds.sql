-- name: lock_patient
-- Serialises threshold changes of one patient, so each is validated against the one before.
SELECT id FROM patients WHERE id = %(patient_id)s FOR NO KEY UPDATE;

-- name: running_enrollments
SELECT program, stratum, start_date, end_date
FROM enrollments
WHERE patient_id = %(patient_id)s AND end_date IS NULL
ORDER BY program;

-- name: latest_ak_enrollment
SELECT program, stratum, start_date, end_date
FROM enrollments
WHERE patient_id = %(patient_id)s AND program = 'ak'
ORDER BY end_date IS NULL DESC, start_date DESC
LIMIT 1;

-- name: current_overrides
-- The override in force per rule and field (migration 0090).
SELECT o.rule_key, o.field, o.value, o.set_by, u.full_name AS set_by_name, o.set_at, o.reason,
       o.explicit_removal
FROM overrides_in_force(%(patient_id)s) o
JOIN users u ON u.id = o.set_by
ORDER BY o.rule_key, o.field;

-- name: override_history
SELECT o.id, o.rule_key, o.field, o.value, o.reset, o.set_by, u.full_name AS set_by_name,
       o.set_at, o.reason
FROM threshold_overrides o
JOIN users u ON u.id = o.set_by
WHERE o.patient_id = %(patient_id)s
ORDER BY o.set_at DESC, o.id DESC
LIMIT %(limit)s;

-- name: insert_override
INSERT INTO threshold_overrides (patient_id, rule_key, field, value, reset, set_by, set_at, reason,
                                 explicit_removal)
VALUES (%(patient_id)s, %(rule_key)s, %(field)s, %(value)s, %(reset)s, %(set_by)s, %(set_at)s,
        %(reason)s, %(explicit_removal)s);

-- name: inr_results
SELECT measured_at, value, comparator
FROM readings
WHERE patient_id = %(patient_id)s AND metric = 'inr'
  AND (%(start)s::timestamptz IS NULL OR measured_at >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR measured_at < %(end)s)
ORDER BY measured_at;
