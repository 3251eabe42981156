"""Demo data: a hospital department, a wound clinic, a municipal home-nursing unit and a GP
practice, users whose sign-in is printed, and patients enrolled in the COPD and AK programs.

Idempotent: running it again finds what exists and only prints the sign-ins.
"""

from __future__ import annotations

from psycopg import Connection

from telemed.demo_data import (
    DEMO_PASSWORD,
    DEMO_PRODUCTS,
    ORGANISATIONS,
    PATIENTS,
    USERS,
)
from telemed.patients import new_pseudonym
from telemed.security import hash_password


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
                "VALUES (%s, %s, %s, current_date)",
                (pid, program, stratum),
            )
        patients[name] = row["id"]
    # The AK patients' products, so that a dose is read back and shown in their tablets.
    for name, product in DEMO_PRODUCTS.items():
        conn.execute(
            "INSERT INTO anticoagulant_products (patient_id, product, set_by, reason) "
            "SELECT %s, %s, %s, 'demo enrolment' WHERE NOT EXISTS "
            "(SELECT 1 FROM anticoagulant_products WHERE patient_id = %s)",
            (patients[name], product, users["demo.admin"], patients[name]),
        )
    # Wound cases from the region go to the wound clinic.
    conn.execute(
        "INSERT INTO wound_routing_rules (region, specialist_org_id, priority) "
        "VALUES ('Region Nordjylland', %s, 100) ON CONFLICT DO NOTHING",
        (org_ids[1],),
    )
    conn.commit()
    return {"organisations": orgs, "users": users, "patients": patients}


def demo_wound_photo() -> bytes:
    """A synthetic photo of a leg ulcer (no real patient), as a phone would send it."""
    import io
    import random

    from PIL import Image, ImageDraw, ImageFilter

    rnd = random.Random(7)
    img = Image.new("RGB", (1600, 1200), (214, 170, 140))
    draw = ImageDraw.Draw(img)
    for _ in range(4000):
        x, y = rnd.randrange(1600), rnd.randrange(1200)
        shade = rnd.randrange(-18, 18)
        draw.point((x, y), fill=(214 + shade, 170 + shade, 140 + shade))
    draw.ellipse((560, 420, 1060, 760), fill=(196, 70, 62))
    draw.ellipse((650, 480, 960, 700), fill=(176, 48, 45))
    draw.ellipse((720, 540, 820, 610), fill=(226, 214, 150))
    img = img.filter(ImageFilter.GaussianBlur(3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()


def submit_demo_wound_case(base_url: str) -> str | None:
    """Send one wound case as the demo home nurse, through the HTTP API, unless one is already
    waiting; return its id."""
    import json

    import httpx

    with httpx.Client(base_url=base_url, timeout=30) as http:
        r = http.post(
            "/api/v1/auth/token", json={"username": "hjemme.spl", "password": DEMO_PASSWORD}
        )
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        cases = http.get("/api/v1/wound-cases", headers=headers).json()
        if any(c.get("state") in ("submitted", "awaiting_specialist") for c in cases):
            return None
        patients = http.get("/api/v1/patients/", headers=headers).json()
        patient = next(p for p in patients if p["name"] == "Birthe Larsen")
        case = {
            "patient_id": patient["id"],
            "wound": {
                "wound_type": "venous_leg_ulcer",
                "body_location": "lower_leg",
                "laterality": "left",
                "onset": "2026-10-02",
            },
            "observation": {
                "wound_type": "venous_leg_ulcer",
                "length_cm": 4.2,
                "width_cm": 2.8,
                "depth_cm": 0.3,
                "tissue": {"granulation": 60, "slough": 40},
                "exudate_amount": "moderate",
                "exudate_type": "serous",
                "pain": 4,
                "current_dressing": "Skumbandage",
                "free_text": "Mere væske end sidste uge.",
                "nurse_question": "Skal vi skifte til en mere absorberende bandage?",
                "urgent": False,
            },
            "photo_consent": True,
        }
        r = http.post(
            "/api/v1/wound-cases",
            headers=headers,
            files=[
                ("case", (None, json.dumps(case), "application/json")),
                ("photos", ("IMG_0001.jpg", demo_wound_photo(), "image/jpeg")),
            ],
        )
        if r.status_code != 201:
            raise RuntimeError(f"{r.status_code}: {r.text[:500]}")
        return r.json()["id"]


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
        f"  console:   {base_url}/console   (specialists: alerts live, the waiting wound case)",
        f"  nurse:     {base_url}/nurse     (phone-sized: wound cases, readings)",
        f"  API docs:  {base_url}/schema/swagger",
        f"  token:     curl -s -X POST {base_url}/api/v1/auth/token "
        f"-H 'content-type: application/json' "
        f'-d \'{{"username":"lunge.laege","password":"{DEMO_PASSWORD}"}}\'',
    ]
    return "\n".join(lines)
