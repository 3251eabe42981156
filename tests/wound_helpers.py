"""Fixtures and builders for the wound-case tests: an app with the wound controllers, a care
setting with a wound clinic that a routing rule of its own region sends wounds to, and the
multipart bodies a phone sends."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from PIL import Image

from tests.conftest import Factory, User


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wound-media")


@pytest.fixture(scope="session")
def wound_app(settings, media_dir):
    from app.asgi import create_app

    return create_app(msgspec.structs.replace(settings, media_dir=media_dir))


@pytest.fixture(scope="session")
def api(wound_app) -> Iterator:
    from litestar.testing import TestClient

    with TestClient(app=wound_app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class WoundCare:
    region: str
    hospital_name: str
    ward: uuid.UUID  # hospital department responsible for the patient
    nursing: uuid.UUID  # home nursing serving the patient
    clinic: uuid.UUID  # the wound clinic the routing rule sends cases to
    other_nursing: uuid.UUID
    other_hospital: uuid.UUID
    patient: uuid.UUID
    nurse: User
    specialist: User  # of the wound clinic
    ward_specialist: User  # of the responsible ward, not the routed team
    other_nurse: User
    other_specialist: User
    admin: User
    rule_id: int


@pytest.fixture
def wc(factory: Factory, db: psycopg.Connection) -> WoundCare:
    """A fresh region per test, so that routing rules of one test never route another's cases."""
    tag = uuid.uuid4().hex[:8]
    region, hospital = f"Region {tag}", f"Hospital {tag}"
    ward = factory.org("hospital_department", region=region, hospital=hospital)
    nursing = factory.org("home_nursing", region=region)
    clinic = factory.org("hospital_department", region=region, hospital=hospital, specialty="wound")
    other_nursing = factory.org("home_nursing", region=region)
    other_hospital = factory.org("hospital_department", region=region, hospital=hospital)
    admin_org = factory.org("hospital_department", region=region)
    patient = factory.patient(ward, serving=[nursing])
    rule_id = db.execute(
        "INSERT INTO wound_routing_rules (region, specialist_org_id) VALUES (%s, %s) RETURNING id",
        (region, clinic),
    ).fetchone()["id"]
    return WoundCare(
        region=region,
        hospital_name=hospital,
        ward=ward,
        nursing=nursing,
        clinic=clinic,
        other_nursing=other_nursing,
        other_hospital=other_hospital,
        patient=patient,
        nurse=factory.user("nurse", nursing),
        specialist=factory.user("specialist", clinic),
        ward_specialist=factory.user("specialist", ward),
        other_nurse=factory.user("nurse", other_nursing),
        other_specialist=factory.user("specialist", other_hospital),
        admin=factory.user("admin", admin_org),
        rule_id=rule_id,
    )


def observation(**changes: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "wound_type": "venous_leg_ulcer",
        "length_cm": 4.0,
        "width_cm": 2.5,
        "depth_cm": 0.3,
        "tissue": {"granulation": 70, "slough": 30},
        "exudate_amount": "moderate",
        "exudate_type": "serous",
        "periwound": ["macerated"],
        "pain": 3,
        "free_text": "Sår på venstre underben, let lugt.",
    }
    obs.update(changes)
    return obs


def new_wound(**changes: Any) -> dict[str, Any]:
    wound: dict[str, Any] = {
        "wound_type": "venous_leg_ulcer",
        "body_location": "lower_leg",
        "laterality": "left",
        "location_detail": "medial malleolus",
        "onset": "2024-03-01",
    }
    wound.update(changes)
    return wound


def case_body(patient: uuid.UUID, *, existing: uuid.UUID | None = None, **changes: Any) -> dict:
    """The `case` part for a new wound, or for the `existing` wound."""
    body: dict[str, Any] = {
        "patient_id": str(patient),
        "observation": observation(),
        "photo_consent": True,
    }
    if existing is None:
        body["wound"] = new_wound()
    else:
        body["wound_id"] = str(existing)
    body.update(changes)
    return body


Photo = tuple[str, bytes, str]  # filename, bytes, declared content type


def form(
    case: dict | bytes | None, photos: list[Photo], *, part: str = "case"
) -> list[tuple[str, tuple]]:
    """The parts of a multipart upload: the JSON part first, then the photos, as a phone sends."""
    files: list[tuple[str, tuple]] = []
    if case is not None:
        raw = case if isinstance(case, bytes) else json.dumps(case).encode()
        files.append((part, (None, raw, "application/json")))
    files += [("photos", photo) for photo in photos]
    return files


def upload(api, user: User, case: dict | bytes | None, photos: list[Photo]):
    return api.post("/api/v1/wound-cases", files=form(case, photos), headers=user.headers)


def jpeg(name: str = "IMG_0001.jpg", data: bytes | None = None) -> Photo:
    from tests import photos

    return name, data if data is not None else photos.jpeg_with_gps(), "image/jpeg"


def unique_jpeg(name: str = "IMG_0002.jpg") -> Photo:
    """A phone JPEG with GPS whose bytes no other test uploads (its original is new on disk)."""
    from tests import photos

    out = io.BytesIO()
    seed = uuid.uuid4().int % 1_000_000
    photos.picture(320, 240, seed=seed).save(out, "JPEG", exif=photos.phone_exif(), quality=85)
    return name, out.getvalue(), "image/jpeg"


def stored_files(root: Path) -> set[Path]:
    """The photo files (not the folder's installation mark, written by the first upload)."""
    return {p for p in root.rglob("*") if p.is_file() and p.parent != root}


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rows(db: psycopg.Connection, sql: str, *params: Any) -> list[dict]:
    return db.execute(sql, params).fetchall()
