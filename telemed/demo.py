"""Demo data: a hospital department, a wound clinic, a municipal home-nursing unit and a GP
practice, users whose sign-in is printed, and patients enrolled in the COPD and AK programs.

Idempotent: running it again finds what exists and only prints the sign-ins.
"""

from __future__ import annotations

from datetime import date

from psycopg import Connection

from telemed.patients import new_pseudonym
from telemed.security import hash_password

DEMO_PASSWORD = "telemed-demo-2026"

ORGANISATIONS = [
    # name, kind, region, hospital, specialty
    (
        "Lungemedicinsk Afdeling, Aalborg UH",
        "hospital_department",
        "Region Nordjylland",
        "Aalborg Universitetshospital",
        "pulmonology",
    ),
    (
        "Sårcenter, Aalborg UH",
        "hospital_department",
        "Region Nordjylland",
        "Aalborg Universitetshospital",
        "wound",
    ),
    ("Hjemmesygeplejen Aalborg Kommune", "home_nursing", "Region Nordjylland", None, None),
    ("Lægehuset Vestergade", "gp_practice", "Region Nordjylland", None, None),
]

USERS = [
    # username, full name, role, organisation index
    ("demo.admin", "Anne Admin", "admin", 0),
    ("lunge.laege", "Lars Lungelæge", "specialist", 0),
    ("saar.spec", "Sofie Sårspecialist", "specialist", 1),
    ("hjemme.spl", "Hanne Hjemmesygeplejerske", "nurse", 2),
    ("egen.laege", "Gert Praktiserende", "nurse", 3),
]

PATIENTS = [
    # name, date of birth, program, stratum
    ("Karen Jensen", date(1946, 2, 11), "copd", "severe"),
    ("Poul Nielsen", date(1951, 7, 30), "copd", "moderate"),
    ("Inger Hansen", date(1939, 11, 3), "ak", "2.0-3.0"),
    ("Erik Pedersen", date(1957, 4, 19), "ak", "2.5-3.5"),
    ("Birthe Larsen", date(1944, 9, 8), "copd", "severe"),
]


def seed(conn: Connection) -> dict:
    """Create the demo organisations, users and patients; return their ids by name."""
    orgs: dict[str, object] = {}
    for name, kind, region, hospital, specialty in ORGANISATIONS:
        row = conn.execute(
            "INSERT INTO organisations (name, kind, region, hospital, specialty) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING id",
            (name, kind, region, hospital, specialty),
        ).fetchone()
        orgs[name] = row["id"]
    org_ids = list(orgs.values())
    pw_hash = hash_password(DEMO_PASSWORD)
    users = {}
    for username, full_name, role, org in USERS:
        row = conn.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO UPDATE "
            "SET active = true RETURNING id",
            (username, full_name, role, org_ids[org], pw_hash),
        ).fetchone()
        users[username] = row["id"]
    patients = {}
    for name, dob, program, stratum in PATIENTS:
        row = conn.execute(
            "SELECT id FROM patients WHERE name = %s AND date_of_birth = %s", (name, dob)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO patients (pseudonym, name, date_of_birth, region) "
                "VALUES (%s, %s, %s, 'Region Nordjylland') RETURNING id",
                (new_pseudonym(), name, dob),
            ).fetchone()
            pid = row["id"]
            conn.execute(
                "INSERT INTO responsibility (patient_id, organisation_id, since, reason) "
                "VALUES (%s, %s, now() - interval '30 days', 'demo enrolment')",
                (pid, org_ids[0]),
            )
            for org in (org_ids[2], org_ids[3]):
                conn.execute(
                    "INSERT INTO care_relations (patient_id, organisation_id, relation) "
                    "VALUES (%s, %s, 'serving')",
                    (pid, org),
                )
            conn.execute(
                "INSERT INTO enrollments (patient_id, program, stratum, start_date) "
                "VALUES (%s, %s, %s, current_date - 30)",
                (pid, program, stratum),
            )
        patients[name] = row["id"]
    conn.commit()
    return {"organisations": orgs, "users": users, "patients": patients}


def sign_in_text(base_url: str) -> str:
    lines = [
        f"telemed demo is running at {base_url}",
        "",
        f"Sign in with (password for all: {DEMO_PASSWORD}):",
    ]
    for username, full_name, role, org in USERS:
        lines.append(f"  {username:<12} {role:<10} {full_name} — {ORGANISATIONS[org][0]}")
    lines += [
        "",
        f"  API docs:  {base_url}/schema/swagger",
        f"  token:     curl -s -X POST {base_url}/api/v1/auth/token "
        f"-H 'content-type: application/json' "
        f'-d \'{{"username":"lunge.laege","password":"{DEMO_PASSWORD}"}}\'',
    ]
    return "\n".join(lines)
