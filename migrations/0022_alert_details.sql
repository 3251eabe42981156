-- An alert with what every view of it shows: the patient's pseudonym and name, the routed
-- organisation's name, the current holder of responsibility, and who acknowledged and resolved it.
-- One definition for the triage queue, a patient's alerts and a single alert. (A view fixes its
-- column list when created: a migration that adds a column to `alerts` recreates this view.)
CREATE VIEW alert_details AS
SELECT a.*, p.pseudonym, p.name AS patient_name, o.name AS organisation,
       cur.organisation_id AS holder_id, ack.full_name AS acknowledged_by_name,
       res.full_name AS resolved_by_name
FROM alerts a
JOIN patients p ON p.id = a.patient_id
LEFT JOIN organisations o ON o.id = a.organisation_id
LEFT JOIN users ack ON ack.id = a.acknowledged_by
LEFT JOIN users res ON res.id = a.resolved_by
LEFT JOIN LATERAL (
    SELECT organisation_id FROM responsibility r
    WHERE r.patient_id = a.patient_id AND r.since <= now() ORDER BY r.since DESC LIMIT 1
) cur ON true;
