-- A specialist's written reply to an alert or a wound case: text plus structured fields (dressing,
-- change frequency, next review, weekly dose, next INR date, "see the patient today" …), and the
-- confirmations of the nurse or patient team that they read it and carried it out.
-- alert_id and wound_case_id get their foreign keys in the migrations that create those tables.
CREATE TABLE instructions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    alert_id        bigint,
    wound_case_id   uuid,
    author_id       uuid NOT NULL REFERENCES users (id),
    author_org_id   uuid NOT NULL REFERENCES organisations (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    text            text NOT NULL DEFAULT '' CHECK (length(text) <= 10000),
    fields          jsonb NOT NULL DEFAULT '{}',
    CHECK (num_nonnulls(alert_id, wound_case_id) = 1)
);
CREATE INDEX instructions_patient ON instructions (patient_id, created_at DESC);
CREATE INDEX instructions_alert ON instructions (alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX instructions_wound_case ON instructions (wound_case_id) WHERE wound_case_id IS NOT NULL;

CREATE TABLE instruction_confirmations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instruction_id  uuid NOT NULL REFERENCES instructions (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('read', 'carried_out')),
    at              timestamptz NOT NULL DEFAULT now(),
    note            text CHECK (length(note) <= 2000),
    UNIQUE (instruction_id, user_id, kind)
);
