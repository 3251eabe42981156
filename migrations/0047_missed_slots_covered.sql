-- A missed slot that a reading measured in time for it later covered (it arrived late: a kit
-- out of coverage sends its backlog). The sweep marks the slot, notes the reading, and closes
-- the slot's alert once all its slots are covered (alerts/jobs.py).
ALTER TABLE missed_slots
    ADD COLUMN covered_at timestamptz,
    ADD COLUMN covered_by jsonb;
CREATE INDEX missed_slots_uncovered ON missed_slots (alert_id) WHERE covered_at IS NULL;
