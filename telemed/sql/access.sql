-- name: token_principal
SELECT u.id AS user_id, u.username, u.full_name, u.role, u.organisation_id,
       t.expires_at, t.kind
FROM auth_tokens t
JOIN users u ON u.id = t.user_id
WHERE t.token_hash = %(digest)s
  AND t.revoked_at IS NULL
  AND t.expires_at > now()
  AND u.active;

-- name: user_for_login
SELECT id, username, full_name, role, organisation_id, password_hash, active
FROM users WHERE username = %(username)s;

-- name: insert_token
INSERT INTO auth_tokens (token_hash, user_id, kind, expires_at, client_addr)
VALUES (%(digest)s, %(user_id)s, %(kind)s, now() + make_interval(secs => %(ttl)s), %(client_addr)s)
RETURNING expires_at;

-- name: revoke_token
UPDATE auth_tokens SET revoked_at = now()
WHERE token_hash = %(digest)s AND revoked_at IS NULL;

-- name: revoke_user_tokens
UPDATE auth_tokens SET revoked_at = now()
WHERE user_id = %(user_id)s AND revoked_at IS NULL;

-- name: patient_relations
-- The relations an organisation has to a patient now: 'responsible', 'serving', 'consulted'.
SELECT 'responsible' AS relation
FROM holder_at(%(patient_id)s, now()) h
WHERE h.organisation_id = %(org)s
UNION ALL
SELECT c.relation
FROM care_relations c
WHERE c.patient_id = %(patient_id)s AND c.organisation_id = %(org)s AND c.ended_at IS NULL;

-- name: patients_in_scope
-- Patients an organisation may see, with the relations that give it access.
SELECT p.id, p.pseudonym, p.name, p.date_of_birth, array_agg(DISTINCT s.relation) AS relations
FROM patients p
JOIN (
    SELECT patient_id, 'responsible' AS relation FROM held_by(%(org)s, now())
    UNION ALL
    SELECT patient_id, relation FROM care_relations
    WHERE organisation_id = %(org)s AND ended_at IS NULL
) s ON s.patient_id = p.id
WHERE s.relation = ANY(%(relations)s)
GROUP BY p.id
ORDER BY p.name, p.id;

-- name: insert_audit
INSERT INTO audit_log (actor_kind, actor_id, actor_name, actor_role, actor_org_id, action,
                       patient_id, object_type, object_id, client_addr, request_id, detail)
VALUES (%(actor_kind)s, %(actor_id)s, %(actor_name)s, %(actor_role)s, %(actor_org_id)s, %(action)s,
        %(patient_id)s, %(object_type)s, %(object_id)s, %(client_addr)s, %(request_id)s, %(detail)s);

-- name: access_log
SELECT a.at, a.actor_kind, a.actor_id, a.actor_name, a.actor_role, o.name AS actor_organisation,
       a.action, a.object_type, a.object_id, a.client_addr::text AS client_addr
FROM audit_log a
LEFT JOIN organisations o ON o.id = a.actor_org_id
WHERE a.patient_id = %(patient_id)s
  AND (%(since)s::timestamptz IS NULL OR a.at >= %(since)s)
ORDER BY a.at DESC, a.id DESC
LIMIT %(limit)s;
