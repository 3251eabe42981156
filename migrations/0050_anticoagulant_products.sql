-- The anticoagulant product a patient takes, so that a weekly dose can be read back and shown to
-- the carers in tablets of that product (Danish practice: warfarin 2.5 mg tablets with a score
-- line as Marevan, Waran or Warfarin "Orion", not substitutable for one another since 2015;
-- phenprocoumon as Marcoumar 3 mg). The products are alerts/doses.py's PRODUCTS; a test holds
-- this list against it. Every change is a new row with who, when and why; the latest row per
-- patient is in force.
CREATE TABLE anticoagulant_products (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    product         text NOT NULL
                    CHECK (product IN ('marevan', 'waran', 'warfarin_orion', 'marcoumar')),
    set_by          uuid NOT NULL REFERENCES users (id),
    set_at          timestamptz NOT NULL DEFAULT now(),
    reason          text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 1000)
);
CREATE INDEX anticoagulant_products_current
    ON anticoagulant_products (patient_id, set_at DESC, id DESC);

CREATE FUNCTION anticoagulant_products_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'anticoagulant_products is append-only: add a row instead';
END $$;
CREATE TRIGGER anticoagulant_products_no_change BEFORE UPDATE OR DELETE ON anticoagulant_products
    FOR EACH STATEMENT EXECUTE FUNCTION anticoagulant_products_append_only();
