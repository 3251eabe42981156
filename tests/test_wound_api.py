"""Wound cases through the HTTP API: the multipart upload with real phone photos and hostile
files, all-or-nothing storage, who may see what, and the loop nurse → specialist → nurse."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from psycopg.rows import dict_row

from telemed import errors
from tests import photos
from wounds import cases, routing, steps
from wounds.multipart import UploadLimits, clean_filename, read_form

pytest.register_assert_rewrite("tests.wound_helpers")
from tests.wound_helpers import (  # noqa: E402
    case_body,
    form,
    jpeg,
    new_wound,
    observation,
    open_image,
    rows,
    stored_files,
    unique_jpeg,
    upload,
)

pytest_plugins = ["tests.wound_helpers"]
CASES = "/api/v1/wound-cases"


def submit(api, wc, photo_list=None, **changes) -> dict:
    r = upload(api, wc.nurse, case_body(wc.patient, **changes), photo_list or [jpeg()])
    assert r.status_code == 201, r.text
    return r.json()


def get(api, user, path, **params):
    return api.get(path, headers=user.headers, params=params or None)


def patient_counts(db, patient) -> dict[str, int]:
    """What is stored for a patient's wounds, counted table by table."""
    return {
        "wounds": rows(db, "SELECT count(*) AS n FROM wounds WHERE patient_id = %s", patient)[0][
            "n"
        ],
        "cases": rows(db, "SELECT count(*) AS n FROM wound_cases WHERE patient_id = %s", patient)[
            0
        ]["n"],
        "photos": rows(
            db,
            "SELECT count(*) AS n FROM wound_photos ph JOIN wound_cases c ON c.id = ph.case_id "
            "WHERE c.patient_id = %s",
            patient,
        )[0]["n"],
        "outbox": rows(db, "SELECT count(*) AS n FROM outbox WHERE patient_id = %s", patient)[0][
            "n"
        ],
        "care_relations": rows(
            db,
            "SELECT count(*) AS n FROM care_relations WHERE patient_id = %s AND relation = "
            "'consulted'",
            patient,
        )[0]["n"],
    }


def assert_no_metadata(data: bytes) -> Image.Image:
    image = open_image(data)
    assert image.format == "JPEG"
    exif = image.getexif()
    assert len(exif) == 0
    assert len(exif.get_ifd(ExifTags.IFD.GPSInfo)) == 0
    for key in ("exif", "xmp", "comment"):
        assert key not in image.info
    for needle in (b"Exif\x00\x00", photos.MAKE.encode(), photos.MODEL.encode(), b"<html"):
        assert needle not in data
    return image


@pytest.fixture
def limits(wound_app):
    """Set smaller upload limits for one test."""

    def apply(**values: int) -> None:
        wound_app.state["wound_upload_limits"] = UploadLimits(**values)

    yield apply
    wound_app.state["wound_upload_limits"] = None


# --- photos: what is stored and served ------------------------------------------------------


def test_gps_never_reaches_a_stored_or_served_derivative(api, wc, db, media_dir) -> None:
    original = photos.jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    photo = submit(api, wc, [jpeg("IMG_4711.JPG", original)])["photos"][0]
    assert photo["taken_at"] == "2024-05-17T10:42:13+02:00"  # copied before stripping
    served = [get(api, wc.specialist, photo["display_url"])]
    served += [get(api, wc.specialist, url) for url in photo["thumb_urls"].values()]
    for r in served:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/jpeg"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "private, no-store"
        assert_no_metadata(r.content)
    assert open_image(served[0].content).size == (640, 480)
    assert {open_image(r.content).size[0] for r in served[1:]} == {240, 100}
    derivatives = list((media_dir / "photos" / photo["id"][:2] / photo["id"]).iterdir())
    assert len(derivatives) == 3
    for path in derivatives:
        assert_no_metadata(path.read_bytes())


def test_original_is_a_download_of_the_exact_bytes(api, wc) -> None:
    name, data, _ = jpeg()
    photo = submit(api, wc, [(name, data, "text/html")])["photos"][0]
    r = get(api, wc.nurse, photo["original_url"])
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "image/jpeg"  # sniffed, not the declared text/html
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"


def test_original_is_content_addressed_and_written_once(api, wc, media_dir) -> None:
    name, data, ctype = unique_jpeg()
    digest = hashlib.sha256(data).hexdigest()
    path = media_dir / "originals" / digest[:2] / digest[2:4] / digest
    submit(api, wc, [(name, data, ctype)])
    first = path.stat()
    assert path.read_bytes() == data
    assert first.st_mode & 0o222 == 0  # read-only
    submit(api, wc, [(name, data, ctype)])  # the same bytes in another case
    assert path.stat().st_ino == first.st_ino
    assert not list((media_dir / "tmp").iterdir())


def test_rotated_phone_photo_is_shown_upright(api, wc) -> None:
    photo = submit(api, wc, [jpeg("rotated.jpg", photos.rotated_jpeg(6))])["photos"][0]
    assert (photo["width"], photo["height"]) == photos.UPRIGHT_SIZE
    image = open_image(get(api, wc.specialist, photo["display_url"]).content).convert("RGB")
    assert image.size == photos.UPRIGHT_SIZE
    width = image.width
    red, blue = image.getpixel((10, 10)), image.getpixel((width - 10, 10))
    assert all(abs(a - b) < 40 for a, b in zip(red, photos.RED, strict=True))
    assert all(abs(a - b) < 40 for a, b in zip(blue, photos.BLUE, strict=True))


def test_heic_from_an_iphone(api, wc) -> None:
    photo = submit(api, wc, [("IMG_0042.HEIC", photos.heic(), "image/heic")])["photos"][0]
    assert photo["format"] == "heic"
    assert_no_metadata(get(api, wc.specialist, photo["display_url"]).content)
    original = get(api, wc.specialist, photo["original_url"])
    assert original.headers["content-type"] == "image/heic"
    assert original.headers["content-disposition"].endswith('.heic"')


def test_html_jpeg_polyglot_is_stored_but_never_served_as_markup(api, wc) -> None:
    data = photos.html_jpeg_polyglot()
    photo = submit(api, wc, [("page.html", data, "text/html")])["photos"][0]
    assert_no_metadata(get(api, wc.specialist, photo["display_url"]).content)
    original = get(api, wc.specialist, photo["original_url"])
    assert original.content == data
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["content-disposition"].startswith("attachment;")
    assert original.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in original.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (photos.decompression_bomb_png, 413, "too_many_pixels"),
        (photos.truncated_jpeg, 422, "corrupt"),
        (photos.text_as_jpg, 415, "unsupported_format"),
        (photos.html_first_polyglot, 415, "unsupported_format"),
        (lambda: b"", 400, "empty"),
    ],
)
def test_a_bad_photo_is_refused_by_name_and_nothing_is_stored(
    api, wc, db, media_dir, make, status, code
) -> None:
    before = stored_files(media_dir)
    r = upload(api, wc.nurse, case_body(wc.patient), [("wound.jpg", make(), "image/jpeg")])
    assert r.status_code == status, r.text
    body = r.json()
    assert "photo 1 (wound.jpg)" in body["detail"]
    assert body["problems"][0]["field"] == "photos[0]"
    assert body["problems"][0]["message"].startswith(code)
    assert patient_counts(db, wc.patient) == dict.fromkeys(patient_counts(db, wc.patient), 0)
    assert stored_files(media_dir) == before


def test_all_or_nothing_a_good_photo_and_a_bad_one(api, wc, db, media_dir) -> None:
    before = stored_files(media_dir)
    audit_before = rows(db, "SELECT count(*) AS n FROM audit_log WHERE patient_id = %s", wc.patient)
    r = upload(
        api,
        wc.nurse,
        case_body(wc.patient),
        [unique_jpeg("good.jpg"), ("IMG_0002.jpg", photos.truncated_jpeg(), "image/jpeg")],
    )
    assert r.status_code == 422, r.text
    assert "photo 2 (IMG_0002.jpg)" in r.json()["detail"]
    assert [p["field"] for p in r.json()["problems"]] == ["photos[1]"]
    assert patient_counts(db, wc.patient) == dict.fromkeys(patient_counts(db, wc.patient), 0)
    assert stored_files(media_dir) == before
    assert rows(db, "SELECT count(*) AS n FROM audit_log WHERE patient_id = %s", wc.patient) == (
        audit_before
    )


def test_files_are_removed_when_the_transaction_fails(api, wc, db, media_dir, monkeypatch) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("the outbox is down")

    before = stored_files(media_dir)
    monkeypatch.setattr(cases.outbox, "enqueue", broken)
    r = upload(api, wc.nurse, case_body(wc.patient), [unique_jpeg(), unique_jpeg()])
    assert r.status_code == 500
    assert patient_counts(db, wc.patient) == dict.fromkeys(patient_counts(db, wc.patient), 0)
    assert stored_files(media_dir) == before


def test_too_many_photos(api, wc, db) -> None:
    small = photos.jpeg_with_gps(64, 48)
    r = upload(api, wc.nurse, case_body(wc.patient), [jpeg(f"{i}.jpg", small) for i in range(11)])
    assert r.status_code == 413, r.text
    assert "at most 10 photos" in r.json()["detail"]
    assert r.json()["problems"][0]["field"] == "photos"
    assert patient_counts(db, wc.patient)["cases"] == 0


def test_too_large_a_photo(api, wc, db, limits) -> None:
    limits(max_photo_bytes=20_000)
    big = photos.jpeg_with_gps(1200, 900, quality=95)
    assert len(big) > 20_000
    r = upload(api, wc.nurse, case_body(wc.patient), [jpeg(), jpeg("big.jpg", big)])
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("photo 2 (big.jpg) is larger than")
    assert r.json()["problems"][0]["field"] == "photos[1]"
    assert patient_counts(db, wc.patient)["cases"] == 0


def test_too_large_a_request(api, wc, db, limits) -> None:
    limits(max_request_bytes=100_000)
    three = [jpeg(f"{i}.jpg", photos.jpeg_with_gps(1200, 900, quality=95)) for i in range(3)]
    assert sum(len(p[1]) for p in three) > 100_000
    r = upload(api, wc.nurse, case_body(wc.patient), three)
    assert r.status_code == 413, r.text
    assert "the request is larger than" in r.json()["detail"]
    assert patient_counts(db, wc.patient)["cases"] == 0


# --- the case: validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"observation": observation(width_cm=None)}, "case.observation.width_cm"),
        ({"observation": observation(pain=11)}, "case.observation.pain"),
        ({"observation": observation(smell="bad")}, "case.observation.smell"),
        ({"observation": observation(wound_type="pressure_ulcer")}, "case.observation.wound_type"),
        ({"wound": new_wound(laterality="not_applicable")}, "case.wound.laterality"),
        ({"wound": new_wound(onset="2150-01-01")}, "case.wound.onset"),
        ({"wound_id": str(uuid.uuid4())}, "case.wound"),
        ({"photo_consent": False}, "case.photo_consent"),
    ],
)
def test_invalid_case_is_422_naming_the_field(api, wc, db, changes, field) -> None:
    r = upload(api, wc.nurse, case_body(wc.patient, **changes), [jpeg()])
    assert r.status_code == 422, r.text
    assert field in [p["field"] for p in r.json()["problems"]]
    assert patient_counts(db, wc.patient)["cases"] == 0


def test_missing_parts_and_bad_bodies(api, wc) -> None:
    r = upload(api, wc.nurse, None, [jpeg()])
    assert (r.status_code, r.json()["problems"][0]["field"]) == (422, "case")
    r = upload(api, wc.nurse, case_body(wc.patient), [])
    assert (r.status_code, r.json()["problems"][0]["field"]) == (422, "photos")
    r = upload(api, wc.nurse, b"{not json", [jpeg()])
    assert (r.status_code, r.json()["problems"][0]["field"]) == (400, "case")
    r = api.post(
        CASES,
        files=[*form(case_body(wc.patient), [jpeg()]), ("extra", (None, b"x", "text/plain"))],
        headers=wc.nurse.headers,
    )
    assert (r.status_code, r.json()["problems"][0]["field"]) == (422, "extra")
    r = api.post(CASES, json=case_body(wc.patient), headers=wc.nurse.headers)
    assert r.status_code == 415


def test_unknown_wound_of_another_patient_is_404(api, wc, factory) -> None:
    first = submit(api, wc)
    other = factory.patient(wc.ward, serving=[wc.nursing])
    r = upload(api, wc.nurse, case_body(other, existing=first["wound_id"]), [jpeg()])
    assert r.status_code == 404
    assert r.json()["problems"][0]["field"] == "case.wound_id"


def test_no_route_is_a_clear_conflict(api, factory) -> None:
    nursing = factory.org("home_nursing", region=f"Region {uuid.uuid4().hex[:6]}")
    patient = factory.patient(nursing)
    nurse = factory.user("nurse", nursing)
    r = upload(api, nurse, case_body(patient), [jpeg()])
    assert r.status_code == 409, r.text
    assert "routing rule" in r.json()["detail"]


# --- who may see and do what ----------------------------------------------------------------


def test_other_nurse_and_unrelated_specialist_get_404(api, wc) -> None:
    created = submit(api, wc)
    photo = created["photos"][0]
    for user in (wc.other_nurse, wc.other_specialist):
        assert get(api, user, f"{CASES}/{created['id']}").status_code == 404
        for url in (photo["display_url"], photo["thumb_urls"]["240"], photo["original_url"]):
            assert get(api, user, url).status_code == 404
        assert created["id"] not in [c["id"] for c in get(api, user, CASES).json()]
    r = upload(api, wc.other_nurse, case_body(wc.patient), [jpeg()])
    assert r.status_code == 404
    r = api.post(
        f"{CASES}/{created['id']}/instructions", json={"dressing": "x"},
        headers=wc.other_specialist.headers,
    )  # fmt: skip
    assert r.status_code == 404


def test_only_the_routed_team_answers(api, wc) -> None:
    created = submit(api, wc)
    assert get(api, wc.ward_specialist, f"{CASES}/{created['id']}").status_code == 200
    assert created["id"] not in [c["id"] for c in get(api, wc.ward_specialist, CASES).json()]
    r = api.post(
        f"{CASES}/{created['id']}/instructions", json={"dressing": "Aquacel"},
        headers=wc.ward_specialist.headers,
    )  # fmt: skip
    assert r.status_code == 403
    r = api.post(f"{CASES}/{created['id']}/read", headers=wc.specialist.headers)
    assert r.status_code == 403  # a nurse's step
    assert upload(api, wc.specialist, case_body(wc.patient), [jpeg()]).status_code == 403
    assert get(api, wc.admin, f"{CASES}/{created['id']}").status_code == 403


def test_routing_makes_the_team_consulted(api, wc, db) -> None:
    assert get(api, wc.specialist, f"/api/v1/patients/{wc.patient}").status_code == 404
    created = submit(api, wc)
    assert created["routed_org_id"] == str(wc.clinic)
    assert patient_counts(db, wc.patient)["care_relations"] == 1
    assert get(api, wc.specialist, f"/api/v1/patients/{wc.patient}").status_code == 200
    submit(api, wc)
    assert patient_counts(db, wc.patient)["care_relations"] == 1


def test_every_photo_access_is_audited(api, wc, db) -> None:
    photo = submit(api, wc)["photos"][0]
    get(api, wc.specialist, photo["display_url"])
    get(api, wc.specialist, photo["thumb_urls"]["100"])
    get(api, wc.nurse, photo["original_url"])
    assert (
        get(api, wc.nurse, photo["display_url"].replace("display", "thumb"), size=77).status_code
        == 422
    )
    audited = rows(
        db,
        "SELECT actor_id, detail FROM audit_log WHERE object_type = 'wound_photo' "
        "AND object_id = %s ORDER BY id",
        photo["id"],
    )
    assert [(a["actor_id"], a["detail"]) for a in audited] == [
        (str(wc.specialist.id), {"variant": "display"}),
        (str(wc.specialist.id), {"variant": "thumb", "size": 100}),
        (str(wc.nurse.id), {"variant": "original"}),
    ]


# --- the loop -------------------------------------------------------------------------------


def test_full_loop_nurse_specialist_nurse(api, wc, db) -> None:
    nurse, specialist = wc.nurse, wc.specialist
    created = submit(api, wc, [jpeg(), jpeg("close-up.png", photos.png())])
    case_id = created["id"]
    url = f"{CASES}/{case_id}"

    queue = get(api, specialist, CASES).json()
    assert [c["id"] for c in queue] == [case_id]
    assert queue[0]["photo_count"] == 2 and queue[0]["state"] == "submitted"

    view = get(api, specialist, url).json()
    assert view["actions"] == ["instructions", "questions"]
    assert len(view["photos"]) == 2 and view["observation"]["length_cm"] == 4.0
    assert view["area_cm2"] == pytest.approx(3.14159265 / 4 * 4.0 * 2.5)

    r = api.post(f"{url}/read", headers=nurse.headers)
    assert r.status_code == 409  # nothing to read yet
    question = {"question": "Er der puls på foden?"}
    r = api.post(f"{url}/questions", json=question, headers=specialist.headers)
    assert r.status_code == 201 and r.json()["state"] == "awaiting_nurse"
    assert get(api, specialist, CASES, state="awaiting_nurse").json()[0]["id"] == case_id
    assert get(api, nurse, url).json()["actions"] == ["replies"]

    reply = form({"text": "Ja, svag puls."}, [jpeg("foot.jpg")], part="reply")
    r = api.post(f"{url}/replies", files=reply, headers=nurse.headers)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "awaiting_specialist" and r.json()["photos"][0]["position"] == 2

    instructions = {
        "cleansing": "Skyl med saltvand",
        "dressing": "Aquacel Ag",
        "change_frequency": "every_other_day",
        "compression": "Kompression 40 mmHg",
        "new_photos_in_days": 14,
        "free_text": "Ring ved feber.",
    }
    r = api.post(f"{url}/instructions", json=instructions, headers=specialist.headers)
    assert r.status_code == 201 and r.json()["state"] == "answered"
    instruction_id = r.json()["instruction_id"]
    r = api.post(f"{url}/instructions", json=instructions, headers=specialist.headers)
    assert r.status_code == 409
    r = api.post(f"{url}/questions", json={"question": "?"}, headers=specialist.headers)
    assert r.status_code == 409

    view = get(api, nurse, url).json()
    assert view["state"] == "answered" and view["actions"] == ["replies", "read"]
    assert view["instructions"][0]["instructions"] == {
        **instructions, "offloading": None, "hospital_visit": "no",
    }  # fmt: skip
    assert len(view["photos"]) == 3
    r = api.post(f"{url}/read", headers=nurse.headers)
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert api.post(f"{url}/read", headers=nurse.headers).status_code == 409
    assert case_id not in [c["id"] for c in get(api, specialist, CASES).json()]
    assert case_id in [c["id"] for c in get(api, specialist, CASES, state="closed").json()]

    view = get(api, specialist, url).json()
    assert view["instructions"][0]["read_by"][0]["user_id"] == str(nurse.id)
    assert [(e["kind"], e["to_state"]) for e in view["history"]] == [
        ("submitted", "submitted"),
        ("question", "awaiting_nurse"),
        ("reply", "awaiting_specialist"),
        ("answered", "answered"),
        ("read", "closed"),
    ]
    confirmations = rows(
        db, "SELECT user_id, kind FROM instruction_confirmations WHERE instruction_id = %s",
        instruction_id,
    )  # fmt: skip
    assert confirmations == [{"user_id": nurse.id, "kind": "read"}]

    events = rows(
        db, "SELECT event, organisation_ids, payload FROM outbox WHERE payload->>'case_id' = %s "
        "ORDER BY id", case_id,
    )  # fmt: skip
    assert [(e["event"], e["organisation_ids"]) for e in events] == [
        ("wound_case.submitted", [wc.clinic]),
        ("wound_case.question", [wc.nursing]),
        ("wound_case.replied", [wc.clinic]),
        ("wound_case.answered", [wc.nursing]),
        ("wound_case.read", [wc.clinic]),
    ]
    text = json.dumps([e["payload"] for e in events])
    assert "Test Patient" not in text and "Nurse-" not in text and "Specialist-" not in text

    audited = rows(
        db, "SELECT actor_id, action, object_type FROM audit_log WHERE patient_id = %s "
        "AND object_type IN ('wound', 'wound_case', 'instruction', 'care_relation') ORDER BY id",
        wc.patient,
    )  # fmt: skip
    actions = [(a["action"], a["object_type"]) for a in audited]
    for expected in [
        ("create", "wound"),
        ("consult", "care_relation"),
        ("create", "wound_case"),
        ("list", "wound_case"),
        ("read", "wound_case"),
        ("update", "wound_case"),
        ("create", "instruction"),
        ("confirm", "instruction"),
    ]:
        assert expected in actions

    # Two weeks later: a new case on the same wound shows the first beside it.
    again = submit(
        api, wc, existing=created["wound_id"],
        observation=observation(length_cm=3.0, width_cm=2.0),
    )  # fmt: skip
    view = get(api, specialist, f"{CASES}/{again['id']}").json()
    assert [c["id"] for c in view["earlier_cases"]] == [case_id]
    earlier = view["earlier_cases"][0]
    assert len(earlier["photos"]) == 3
    assert earlier["instructions"][0]["instructions"]["dressing"] == "Aquacel Ag"
    assert [(p["length_cm"], p["width_cm"]) for p in view["size_over_time"]] == [
        (4.0, 2.5),
        (3.0, 2.0),
    ]


def test_a_patients_wounds_with_their_latest_case(api, wc) -> None:
    first = submit(api, wc)
    again = submit(api, wc, existing=first["wound_id"], observation=observation(length_cm=3.0))
    heel = {"wound": new_wound(wound_type="pressure_ulcer", body_location="heel"),
            "observation": observation(wound_type="pressure_ulcer", pressure_category="category_2",
                                       tissue={"granulation": 100})}  # fmt: skip
    other = submit(api, wc, **heel)
    path = f"/api/v1/patients/{wc.patient}/wounds"
    wounds = get(api, wc.nurse, path).json()
    assert [(w["id"], w["case_count"], w["last_case_id"]) for w in wounds] == [
        (first["wound_id"], 2, again["id"]),
        (other["wound_id"], 1, other["id"]),
    ]
    assert wounds[0]["last_area_cm2"] == pytest.approx(3.14159265 / 4 * 3.0 * 2.5)
    assert get(api, wc.specialist, path).status_code == 200
    assert get(api, wc.other_nurse, path).status_code == 404


def test_urgent_case_is_due_within_working_hours(api, wc, db) -> None:
    created = submit(api, wc, observation=observation(urgent=True))
    row = rows(db, "SELECT submitted_at, due_at FROM wound_cases WHERE id = %s", created["id"])[0]
    level = routing.ServiceLevel(urgency="urgent", working_hours=4)
    assert row["due_at"] == routing.due_at(row["submitted_at"], level)


async def _escalate(dsn: str, now: datetime) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        return await steps.escalate_overdue(conn, now=now)


def test_overdue_cases_escalate_once_per_wait(api, wc, db, db_dsn) -> None:
    created = submit(api, wc)
    case_id = created["id"]
    due = datetime.fromisoformat(created["due_at"])
    assert asyncio.run(_escalate(db_dsn, due - timedelta(seconds=1))) >= 0
    assert rows(db, "SELECT escalated_at FROM wound_cases WHERE id = %s", case_id)[0] == {
        "escalated_at": None
    }
    assert asyncio.run(_escalate(db_dsn, due + timedelta(minutes=1))) >= 1
    assert asyncio.run(_escalate(db_dsn, due + timedelta(minutes=2))) == 0
    escalations = rows(
        db, "SELECT organisation_ids FROM outbox WHERE event = 'wound_case.escalated' "
        "AND payload->>'case_id' = %s", case_id,
    )  # fmt: skip
    assert escalations == [{"organisation_ids": [wc.clinic, wc.nursing]}]
    view = get(api, wc.specialist, f"{CASES}/{case_id}").json()
    assert view["escalated_at"] is not None
    assert view["history"][-1]["kind"] == "escalated" and view["history"][-1]["actor_id"] is None
    assert get(api, wc.specialist, CASES).json()[0]["escalated_at"] is not None

    # A question stops the clock; the reply starts a new wait that can escalate again.
    api.post(f"{CASES}/{case_id}/questions", json={"question": "Foto i dagslys?"},
             headers=wc.specialist.headers)  # fmt: skip
    reply = form({"text": "Vedlagt."}, [jpeg()], part="reply")
    r = api.post(f"{CASES}/{case_id}/replies", files=reply, headers=wc.nurse.headers)
    assert r.status_code == 201
    after = rows(db, "SELECT due_at, escalated_at FROM wound_cases WHERE id = %s", case_id)[0]
    assert after["escalated_at"] is None and after["due_at"] >= due
    assert asyncio.run(_escalate(db_dsn, after["due_at"] + timedelta(seconds=1))) >= 1


def test_reply_only_when_the_nurse_is_asked_or_answered(api, wc) -> None:
    created = submit(api, wc)
    reply = form({"text": "Hej"}, [], part="reply")
    r = api.post(f"{CASES}/{created['id']}/replies", files=reply, headers=wc.nurse.headers)
    assert r.status_code == 409
    assert "awaiting_nurse or answered" in r.json()["detail"]


def test_a_reply_with_a_bad_photo_changes_nothing(api, wc, db) -> None:
    case_id = submit(api, wc)["id"]
    r = api.post(
        f"{CASES}/{case_id}/questions",
        json={"question": "Mere lys?"},
        headers=wc.specialist.headers,
    )
    assert r.status_code == 201
    reply = form(
        {"text": "Nyt foto."}, [jpeg(), jpeg("cut.jpg", photos.truncated_jpeg())], part="reply"
    )
    r = api.post(f"{CASES}/{case_id}/replies", files=reply, headers=wc.nurse.headers)
    assert r.status_code == 422 and "photo 2 (cut.jpg)" in r.json()["detail"]
    view = get(api, wc.nurse, f"{CASES}/{case_id}").json()
    assert view["state"] == "awaiting_nurse"
    assert [e["kind"] for e in view["history"]] == ["submitted", "question"]
    assert len(view["photos"]) == 1


# --- admin: routing rules and service levels ------------------------------------------------


def test_admin_routes_diabetic_feet_to_endocrinology(api, wc, factory) -> None:
    endo = factory.org("hospital_department", region=wc.region, specialty="endocrinology")
    rule = {"wound_type": "diabetic_foot_ulcer", "region": wc.region}
    rule["specialist_org_id"] = str(endo)
    path = "/api/v1/admin/wound-routing-rules"
    assert api.post(path, json=rule, headers=wc.nurse.headers).status_code == 403
    r = api.post(path, json=rule, headers=wc.admin.headers)
    assert r.status_code == 201, r.text
    assert api.post(path, json=rule, headers=wc.admin.headers).status_code == 409
    nursing_rule = {**rule, "specialist_org_id": str(wc.nursing)}
    assert api.post(path, json=nursing_rule, headers=wc.admin.headers).status_code == 422
    assert r.json()["id"] in [x["id"] for x in get(api, wc.admin, path).json()]

    foot = {"observation": observation(wound_type="diabetic_foot_ulcer"),
            "wound": new_wound(wound_type="diabetic_foot_ulcer", body_location="heel")}  # fmt: skip
    assert submit(api, wc, **foot)["routed_org_id"] == str(endo)
    assert submit(api, wc)["routed_org_id"] == str(wc.clinic)

    assert api.delete(f"{path}/{r.json()['id']}", headers=wc.admin.headers).status_code == 204
    assert submit(api, wc, **foot)["routed_org_id"] == str(wc.clinic)


def test_a_team_sets_its_own_service_level(api, wc, db) -> None:
    path = "/api/v1/admin/wound-service-levels"
    level = {"organisation_id": str(wc.clinic), "urgency": "normal", "working_days": 2}
    bad = {**level, "working_hours": 4}
    assert api.put(path, json=bad, headers=wc.admin.headers).status_code == 422
    assert api.put(path, json=level, headers=wc.specialist.headers).status_code == 403
    r = api.put(path, json=level, headers=wc.admin.headers)
    assert r.status_code == 200, r.text
    mine = [x for x in r.json() if x["organisation_id"] == str(wc.clinic)]
    assert mine == [{**level, "organisation": mine[0]["organisation"], "working_hours": None,
                     "day_start": "08:00:00", "day_end": "15:30:00",
                     "updated_at": mine[0]["updated_at"]}]  # fmt: skip
    created = submit(api, wc)
    row = rows(db, "SELECT submitted_at, due_at FROM wound_cases WHERE id = %s", created["id"])[0]
    expected = routing.due_at(
        row["submitted_at"], routing.ServiceLevel(urgency="normal", working_days=2)
    )
    assert row["due_at"] == expected


# --- the multipart reader on its own --------------------------------------------------------


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


async def _chunks(body: bytes, cuts: list[int]):
    start = 0
    for cut in sorted(set(cuts)):
        yield body[start:cut]
        start = cut
    yield body[start:]
    yield b""


def _read(body: bytes, cuts: list[int] = (), **limits: int):
    return asyncio.run(
        read_form(
            _chunks(body, list(cuts)),
            content_type='multipart/form-data; boundary="b0undary"',
            content_length=len(body),
            limits=UploadLimits(**limits),
            fields=("case",),
        )
    )


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_parts_survive_any_chunking(data) -> None:
    photo = photos.jpeg_with_gps(64, 48)
    body = _multipart([("case", None, b'{"a": 1}'), ("photos", "C:\\fakepath\\a.jpg", photo),
                       ("photos", "b.jpg", b"\r\n--b0undar")])  # fmt: skip
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    read = _read(body, cuts)
    assert read.fields == {"case": b'{"a": 1}'}
    assert [(p.index, p.filename, p.data) for p in read.photos] == [
        (0, "a.jpg", photo),
        (1, "b.jpg", b"\r\n--b0undar"),
    ]


def test_reader_limits() -> None:
    body = _multipart([("photos", "a.jpg", b"x" * 1000)])
    with pytest.raises(errors.TooLarge, match=r"photo 1 \(a.jpg\) is larger"):
        _read(body, [100, 200], max_photo_bytes=999)
    with pytest.raises(errors.TooLarge, match="the request is larger"):
        _read(body, [100], max_request_bytes=500)
    with pytest.raises(errors.TooLarge, match="at most 2 photos"):
        _read(_multipart([("photos", f"{i}.jpg", b"x") for i in range(3)]), max_photos=2)
    with pytest.raises(errors.Invalid, match="sent twice"):
        _read(_multipart([("case", None, b"{}"), ("case", None, b"{}")]))
    with pytest.raises(errors.BadRequest, match="malformed"):
        _read(_multipart([("case", None, b"{}")])[:-12])


def test_clean_filename() -> None:
    assert clean_filename("C:\\Users\\x\\IMG_1.JPG") == "IMG_1.JPG"
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("a\x00b\u202ec.jpg") == "abc.jpg"
    assert clean_filename(None) == ""
    assert len(clean_filename("x" * 1000)) == 255


def test_openapi_documents_every_wound_operation(api) -> None:
    paths = api.get("/schema/openapi.json").json()["paths"]
    operations = {
        op["operationId"] for p, ops in paths.items() if "wound" in p for op in ops.values()
    }
    assert operations >= {
        "submitWoundCase", "listWoundCases", "listPatientWounds", "getWoundCase", "answerWoundCase",
        "askAboutWoundCase", "replyToWoundCase", "confirmWoundInstructionsRead",
        "getWoundPhotoDisplay", "getWoundPhotoThumb", "getWoundPhotoOriginal",
        "listWoundRoutingRules", "createWoundRoutingRule", "deleteWoundRoutingRule",
        "listWoundServiceLevels", "setWoundServiceLevel",
    }  # fmt: skip
