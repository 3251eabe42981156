"""The demo's organisations, users and patients, as data: `telemed seed-demo` (app.demo) creates
them and `telemed devices demo` gives each patient a device."""

from __future__ import annotations

from datetime import date

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

# Danish products (alerts/doses.py): warfarin as Marevan, phenprocoumon as Marcoumar.
DEMO_PRODUCTS = {"Inger Hansen": "marevan", "Erik Pedersen": "marcoumar"}
