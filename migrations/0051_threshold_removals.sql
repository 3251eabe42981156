-- A limit removed on purpose (`remove` with a reason, alerts/threshold_changes.py) is marked so.
-- Rows written before removals had to be explicit keep false: a null value among them may be a
-- typo the console once turned into "no limit", and the thresholds API flags each such removal
-- still in force (`unconfirmed_removal`) for a specialist to confirm or set again.
ALTER TABLE threshold_overrides ADD COLUMN explicit_removal boolean NOT NULL DEFAULT false;
ALTER TABLE threshold_overrides ADD CONSTRAINT threshold_overrides_removal_has_no_value
    CHECK (NOT explicit_removal OR value IN ('null'::jsonb, 'false'::jsonb));
