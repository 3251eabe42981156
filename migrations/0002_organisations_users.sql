-- Organisations: a hospital department (region), a municipal home-nursing unit, a GP practice.
CREATE TABLE organisations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('hospital_department', 'home_nursing', 'gp_practice')),
    region          text,
    hospital        text,
    specialty       text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username        text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    full_name       text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    role            text NOT NULL CHECK (role IN ('nurse', 'specialist', 'admin')),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    password_hash   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_organisation ON users (organisation_id);

-- Bearer tokens and browser sessions: only a SHA-256 of the token is stored.
CREATE TABLE auth_tokens (
    token_hash      bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL DEFAULT 'bearer' CHECK (kind IN ('bearer', 'session')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    client_addr     inet
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);
