-- CPR numbers are stored encrypted, with a keyed hash for uniqueness and look-up (telemed/cpr.py,
-- docs/deployment.md, "CPR numbers"). The keys are the application's, never the database's: a
-- dump, a backup, a replica or a log line holds no CPR number, and the unique index's error
-- quotes only the keyed hash. `telemed migrate` encrypts the numbers stored in plain text so
-- far right after this file, in the same transaction; the next migration drops that column.
ALTER TABLE patients
    ADD COLUMN cpr_hmac bytea UNIQUE CHECK (length(cpr_hmac) = 32),
    ADD COLUMN cpr_enc bytea CHECK (length(cpr_enc) BETWEEN 29 AND 100),
    ADD COLUMN cpr_key text CHECK (cpr_key ~ '^[A-Za-z0-9_.-]{1,40}$'),
    ADD CONSTRAINT patients_cpr_complete
        CHECK (num_nulls(cpr_hmac, cpr_enc, cpr_key) IN (0, 3));

-- Which look-up key this database's hashes were made with (a fingerprint, not the key): a
-- process started with another key would let a CPR number be registered twice, so it refuses.
CREATE TABLE cpr_lookup_key (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),
    set_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON cpr_lookup_key FROM telemed_app;
GRANT SELECT, INSERT ON cpr_lookup_key TO telemed_app;
