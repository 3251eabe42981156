-- name: lock_patient
-- Serialises dose instructions of one patient, so each is read back against the one before.
SELECT id FROM patients WHERE id = %(patient_id)s FOR NO KEY UPDATE;

-- name: latest_weekly_dose
-- The weekly dose of the patient's latest AK instruction that set one.
SELECT (fields ->> 'weekly_dose_mg')::float8 AS weekly_dose_mg, created_at
FROM instructions
WHERE patient_id = %(patient_id)s AND fields ->> 'program' = 'ak'
  AND fields ? 'weekly_dose_mg' AND fields ->> 'weekly_dose_mg' IS NOT NULL
ORDER BY created_at DESC
LIMIT 1;

-- name: current_product
SELECT p.product, p.set_by, u.full_name AS set_by_name, p.set_at, p.reason
FROM anticoagulant_products p
JOIN users u ON u.id = p.set_by
WHERE p.patient_id = %(patient_id)s
ORDER BY p.set_at DESC, p.id DESC
LIMIT 1;

-- name: product_history
SELECT p.product, p.set_by, u.full_name AS set_by_name, p.set_at, p.reason
FROM anticoagulant_products p
JOIN users u ON u.id = p.set_by
WHERE p.patient_id = %(patient_id)s
ORDER BY p.set_at DESC, p.id DESC;

-- name: insert_product
INSERT INTO anticoagulant_products (patient_id, product, set_by, reason)
VALUES (%(patient_id)s, %(product)s, %(set_by)s, %(reason)s)
RETURNING set_at;
