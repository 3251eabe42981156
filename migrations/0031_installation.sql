-- This database's identity. The media folder records the installation it belongs to when the
-- first photo is written (telemed.wounds.media); the sweep of leftover files removes nothing
-- from a folder that belongs to another database, whose rows it cannot see.
CREATE TABLE installation (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;
