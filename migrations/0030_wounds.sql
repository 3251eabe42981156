-- Wounds of a patient, the cases a home nurse submits on them (observations and photos), their
-- routing to a specialist team with a due time, and every step of each case.
-- Vocabularies (wound types, body sites, states) are checked by the application's enums; the
-- database checks their shape, so that adding a wound type needs no migration.

CREATE TABLE wounds (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    wound_type      text NOT NULL CHECK (wound_type ~ '^[a-z_]{1,40}$'),
    body_location   text NOT NULL CHECK (body_location ~ '^[a-z_]{1,40}$'),
    laterality      text NOT NULL CHECK (laterality ~ '^[a-z_]{1,40}$'),
    location_detail text NOT NULL DEFAULT '' CHECK (length(location_detail) <= 200),
    onset           date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid NOT NULL REFERENCES users (id),
    created_by_org  uuid NOT NULL REFERENCES organisations (id)
);
CREATE INDEX wounds_patient ON wounds (patient_id, created_at);

-- Which specialist team receives a wound type from which region or hospital. NULL matches
-- anything; the lowest priority number wins, then the more specific rule (docs/wounds.md).
CREATE TABLE wound_routing_rules (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wound_type        text CHECK (wound_type ~ '^[a-z_]{1,40}$'),
    region            text CHECK (length(region) BETWEEN 1 AND 100),
    hospital          text CHECK (length(hospital) BETWEEN 1 AND 200),
    specialist_org_id uuid NOT NULL REFERENCES organisations (id),
    priority          integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 10000),
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        uuid REFERENCES users (id)
);
CREATE UNIQUE INDEX wound_routing_rules_once
    ON wound_routing_rules (wound_type, region, hospital, specialist_org_id) NULLS NOT DISTINCT;

-- How soon a team answers: a number of working hours (urgent) or the end of the n-th working day
-- after the day of submission (normal), within its opening hours (Europe/Copenhagen) on Danish
-- working days. organisation_id NULL is the default for every team. Seeded from the service levels
-- of Danish wound telemedicine (Pleje.net: the specialist replies the next working day).
CREATE TABLE wound_service_levels (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id uuid REFERENCES organisations (id),
    urgency         text NOT NULL CHECK (urgency IN ('urgent', 'normal')),
    working_hours   integer CHECK (working_hours BETWEEN 1 AND 80),
    working_days    integer CHECK (working_days BETWEEN 1 AND 10),
    day_start       time NOT NULL DEFAULT '08:00',
    day_end         time NOT NULL DEFAULT '15:30',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users (id),
    CHECK (num_nonnulls(working_hours, working_days) = 1),
    CHECK (day_end > day_start),
    UNIQUE NULLS NOT DISTINCT (organisation_id, urgency)
);
INSERT INTO wound_service_levels (organisation_id, urgency, working_hours, working_days)
VALUES (NULL, 'urgent', 4, NULL), (NULL, 'normal', NULL, 1);

-- One submission on one wound. patient_id repeats the wound's so that access checks and queues
-- need no join; the size columns repeat the observation's for the size-over-time series.
-- due_at is when the specialist's answer is due; NULL while the case waits for the nurse or is
-- answered.
CREATE TABLE wound_cases (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    wound_id         uuid NOT NULL REFERENCES wounds (id),
    patient_id       uuid NOT NULL REFERENCES patients (id),
    state            text NOT NULL CHECK (state IN ('submitted', 'awaiting_specialist',
                                                     'awaiting_nurse', 'answered', 'closed')),
    urgent           boolean NOT NULL,
    wound_type       text NOT NULL CHECK (wound_type ~ '^[a-z_]{1,40}$'),
    observation      jsonb NOT NULL,
    length_cm        double precision,
    width_cm         double precision,
    depth_cm         double precision,
    area_cm2         double precision,
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    submitted_by     uuid NOT NULL REFERENCES users (id),
    submitted_by_org uuid NOT NULL REFERENCES organisations (id),
    routed_org_id    uuid NOT NULL REFERENCES organisations (id),
    routing_rule_id  bigint REFERENCES wound_routing_rules (id) ON DELETE SET NULL,
    due_at           timestamptz,
    escalated_at     timestamptz,
    answered_at      timestamptz,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state IN ('submitted', 'awaiting_specialist')) = (due_at IS NOT NULL))
);
CREATE INDEX wound_cases_routed ON wound_cases (routed_org_id, state, due_at);
CREATE INDEX wound_cases_patient ON wound_cases (patient_id, submitted_at DESC);
CREATE INDEX wound_cases_wound ON wound_cases (wound_id, submitted_at);
CREATE INDEX wound_cases_overdue ON wound_cases (due_at)
    WHERE escalated_at IS NULL AND state IN ('submitted', 'awaiting_specialist');

ALTER TABLE instructions
    ADD CONSTRAINT instructions_wound_case_fk FOREIGN KEY (wound_case_id) REFERENCES wound_cases (id);

-- The history of a case: every step, who took it and the states it moved between.
CREATE TABLE wound_case_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id         uuid NOT NULL REFERENCES wound_cases (id),
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN ('submitted', 'question', 'reply', 'answered',
                                                    'read', 'escalated')),
    actor_id        uuid REFERENCES users (id),
    actor_org_id    uuid REFERENCES organisations (id),
    from_state      text,
    to_state        text NOT NULL,
    text            text CHECK (length(text) <= 4000),
    instruction_id  uuid REFERENCES instructions (id),
    detail          jsonb
);
CREATE INDEX wound_case_events_case ON wound_case_events (case_id, at, id);

-- The photos of a case. Files live under the media folder: the original bytes content-addressed
-- by original_sha256 (never served inline), the display copy and thumbnails re-encoded without
-- metadata under the photo's id. event_id is the nurse's reply that added the photo, if any.
CREATE TABLE wound_photos (
    id                    uuid PRIMARY KEY,
    case_id               uuid NOT NULL REFERENCES wound_cases (id),
    event_id              bigint REFERENCES wound_case_events (id),
    position              integer NOT NULL CHECK (position >= 0),
    filename              text NOT NULL CHECK (length(filename) <= 255),
    original_sha256       text NOT NULL CHECK (original_sha256 ~ '^[0-9a-f]{64}$'),
    original_bytes        integer NOT NULL CHECK (original_bytes > 0),
    format                text NOT NULL CHECK (format IN ('jpeg', 'png', 'webp', 'heic')),
    mime                  text NOT NULL,
    width                 integer NOT NULL,
    height                integer NOT NULL,
    display_width         integer NOT NULL,
    display_height        integer NOT NULL,
    thumb_sizes           integer[] NOT NULL,
    taken_at              timestamptz,
    taken_at_zone_assumed boolean NOT NULL DEFAULT false,
    uploaded_at           timestamptz NOT NULL DEFAULT now(),
    uploaded_by           uuid NOT NULL REFERENCES users (id),
    UNIQUE (case_id, position)
);
CREATE INDEX wound_photos_original ON wound_photos (original_sha256);
