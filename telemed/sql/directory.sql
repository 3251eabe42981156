-- name: insert_organisation
INSERT INTO organisations (name, kind, region, hospital, specialty)
VALUES (%(name)s, %(kind)s, %(region)s, %(hospital)s, %(specialty)s)
RETURNING id, name, kind, region, hospital, specialty, created_at;

-- name: list_organisations
SELECT id, name, kind, region, hospital, specialty, created_at
FROM organisations ORDER BY name;

-- name: get_organisation
SELECT id, name, kind, region, hospital, specialty, created_at
FROM organisations WHERE id = %(id)s;

-- name: insert_user
INSERT INTO users (username, full_name, role, organisation_id, password_hash)
VALUES (%(username)s, %(full_name)s, %(role)s, %(organisation_id)s, %(password_hash)s)
RETURNING id, username, full_name, role, organisation_id, active, created_at;

-- name: list_users
SELECT id, username, full_name, role, organisation_id, active, created_at
FROM users
WHERE (%(organisation_id)s::uuid IS NULL OR organisation_id = %(organisation_id)s)
ORDER BY username;

-- name: set_user_active
UPDATE users SET active = %(active)s WHERE id = %(id)s
RETURNING id, username, full_name, role, organisation_id, active, created_at;
