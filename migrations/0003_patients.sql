-- Patients are addressed everywhere by a pseudonymous id; the CPR number is optional, stored only
-- here, and never logged or put in a URL.
CREATE TABLE patients (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pseudonym       text NOT NULL UNIQUE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    date_of_birth   date NOT NULL,
    cpr             text UNIQUE CHECK (cpr ~ '^[0-9]{10}$'),
    region          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES users (id)
);

CREATE TABLE enrollments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    program         text NOT NULL CHECK (program IN ('copd', 'ak')),
    stratum         text NOT NULL,
    start_date      date NOT NULL,
    end_date        date CHECK (end_date IS NULL OR end_date >= start_date),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES users (id),
    CHECK (
        (program = 'copd' AND stratum IN ('mild', 'moderate', 'severe'))
        OR (program = 'ak' AND stratum ~ '^[0-9]\.[0-9]-[0-9]\.[0-9]$')
    )
);
CREATE INDEX enrollments_patient ON enrollments (patient_id);
-- One running enrollment per patient and program.
CREATE UNIQUE INDEX enrollments_one_open ON enrollments (patient_id, program) WHERE end_date IS NULL;

-- Who holds the baton ("stafetten"): every hand-over is a new row; the holder at time t is the row
-- with the latest `since` not after t. Rows are never updated.
CREATE TABLE responsibility (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    since           timestamptz NOT NULL DEFAULT now(),
    reason          text,
    handed_over_by  uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, since)
);
CREATE INDEX responsibility_org ON responsibility (organisation_id);

CREATE VIEW current_responsibility AS
SELECT DISTINCT ON (patient_id) patient_id, organisation_id, since
FROM responsibility
WHERE since <= now()
ORDER BY patient_id, since DESC;

-- Other organisations taking part in a patient's care: a home-nursing unit or GP that serves the
-- patient, a specialist team that is consulted (e.g. a wound clinic).
CREATE TABLE care_relations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    relation        text NOT NULL CHECK (relation IN ('serving', 'consulted')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    created_by      uuid REFERENCES users (id)
);
CREATE UNIQUE INDEX care_relations_open
    ON care_relations (patient_id, organisation_id, relation) WHERE ended_at IS NULL;
CREATE INDEX care_relations_org ON care_relations (organisation_id) WHERE ended_at IS NULL;
