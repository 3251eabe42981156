"""Every refusal carries a stable code (docs/errors.md) that a page says in its own language at
the field; no message shows a library's internals. The codes promised in docs/wounds.md are on
every refusal that fits them, the upload reader's size limits included."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
import pytest

from telemed.errors import validation_code
from telemed.settings import REPO_ROOT
from tests import photos

pytest.register_assert_rewrite("tests.wound_helpers")
from tests.wound_helpers import case_body, jpeg, observation, upload  # noqa: E402

pytest_plugins = ["tests.wound_helpers"]
# What a library's own words look like: an object's address, Pillow's bomb warning, a parser's
# exception name.
INTERNALS = re.compile(
    r"0x[0-9a-f]{6,}|object at|Image size \(|decompression bomb DOS|PIL\.|Traceback|"
    r"multipart\.|ParserError|Error\(",
    re.I,
)


def all_text(body: dict) -> str:
    return " ".join([body.get("detail", ""), *(p["message"] for p in body.get("problems", []))])


class Body(msgspec.Struct, forbid_unknown_fields=True):
    f: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    i: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    g: float = 1.0
    s: Annotated[str, msgspec.Meta(min_length=1, max_length=3)] = "x"
    e: Literal["x", "y"] = "x"
    o: dict | None = None


class Required(msgspec.Struct):
    r: int


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (b'{"f": "4 cm"}', "not_a_number"),
        (b'{"f": true}', "not_a_number"),
        (b'{"f": 101}', "out_of_range"),
        (b'{"i": 5.5}', "not_whole"),
        (b'{"i": "5/10"}', "not_a_number"),
        (b'{"g": null}', "null_not_allowed"),
        (b'{"s": "abcd"}', "too_long"),
        (b'{"s": ""}', "required"),
        (b'{"e": "z"}', "invalid_choice"),
        (b'{"zz": 1}', "unknown_field"),
        (b"{}", "required"),
        (b'{"i": 1e400}', "out_of_range"),
        (b'{"o": 1}', "wrong_type"),
    ],
)
def test_each_msgspec_refusal_maps_to_its_code(doc, code):
    """Pins the wording of the installed msgspec that the codes are read from."""
    target = Required if doc == b"{}" else Body
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(doc, type=target)
    message = str(caught.value).split(" - at `")[0]
    assert validation_code(message) == code, message


# --- wound uploads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (photos.decompression_bomb_png, 413, "too_many_pixels"),
        (lambda: photos.decompression_bomb_png(8000, 7000), 413, "too_many_pixels"),
        (photos.truncated_jpeg, 422, "corrupt"),
        (lambda: photos.truncated_jpeg()[:400], 422, "corrupt"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"not a png" * 20, 422, "corrupt"),
        (lambda: b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40, 422, "corrupt"),
        (photos.text_as_jpg, 415, "unsupported_format"),
        (lambda: b"", 400, "empty"),
    ],
)
def test_a_refused_photo_has_its_code_and_no_library_words(api, wc, make, status, code):
    r = upload(api, wc.nurse, case_body(wc.patient), [("wound.jpg", make(), "image/jpeg")])
    assert r.status_code == status, r.text
    (problem,) = r.json()["problems"]
    assert (problem["field"], problem["code"]) == ("photos[0]", code)
    assert problem["message"].startswith(code)
    assert not INTERNALS.search(all_text(r.json())), r.text


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"not a png" * 20,  # Pillow: "cannot identify <… at 0x…>"
        photos.decompression_bomb_png(),  # Pillow: "Image size (…) exceeds limit of …"
        photos.truncated_jpeg()[:400],
    ],
)
def test_a_photos_refusal_says_nothing_of_the_library(data):
    from wounds import images

    with pytest.raises(images.PhotoError) as refused:
        images.sanitize(data)
    assert not INTERNALS.search(str(refused.value)), str(refused.value)
    assert "cannot identify" not in str(refused.value)


@pytest.fixture
def limits(wound_app):
    from wounds.multipart import UploadLimits

    saved = wound_app.state.get("wound_upload_limits")

    def set_limits(**values):
        wound_app.state["wound_upload_limits"] = UploadLimits(**values)

    yield set_limits
    if saved is None:
        wound_app.state.pop("wound_upload_limits", None)
    else:
        wound_app.state["wound_upload_limits"] = saved


def test_every_size_limit_of_the_reader_says_too_large(api, wc, limits):
    big = photos.jpeg_with_gps(1200, 900, quality=95)
    limits(max_photo_bytes=20_000)
    r = upload(api, wc.nurse, case_body(wc.patient), [jpeg("big.jpg", big)])
    assert r.status_code == 413
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [("photos[0]", "too_large")]
    limits(max_request_bytes=50_000)
    r = upload(api, wc.nurse, case_body(wc.patient), [jpeg("big.jpg", big)])
    assert r.status_code == 413
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [("body", "too_large")]
    limits(max_photos=2)
    small = photos.jpeg_with_gps(64, 48)
    r = upload(api, wc.nurse, case_body(wc.patient), [jpeg(f"{i}.jpg", small) for i in range(3)])
    assert r.status_code == 413
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [("photos", "too_large")]
    limits()
    r = upload(api, wc.nurse, b"x" * (300 * 1024), [jpeg()])
    assert r.status_code == 413
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [("case", "too_large")]


def test_a_cut_off_upload_is_malformed_without_the_parsers_words(api, wc):
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="case"\r\n\r\n{}\r\n--b0\r\n'
        b'Content-Disposition: form-data; name="photos"; filename="a.jpg"\r\n\r\nxx'
    )
    r = api.post(
        "/api/v1/wound-cases",
        content=body,
        headers={**wc.nurse.headers, "content-type": "multipart/form-data; boundary=b0"},
    )
    assert r.status_code == 400, r.text
    assert [p["code"] for p in r.json()["problems"]] == ["malformed"]
    assert not INTERNALS.search(all_text(r.json())), r.text


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"pain": "5/10"}, "case.observation.pain", "not_a_number"),
        ({"length_cm": "4 cm"}, "case.observation.length_cm", "not_a_number"),
        ({"pain": 5.5}, "case.observation.pain", "not_whole"),
        ({"pain": 11}, "case.observation.pain", "out_of_range"),
    ],
)
def test_an_observation_number_refused_with_its_code_and_bounds(api, wc, changes, field, code):
    r = upload(api, wc.nurse, case_body(wc.patient, observation=observation(**changes)), [jpeg()])
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert (problem["field"], problem["code"]) == (field, code)
    assert set(problem["params"]) == {"min", "max", "unit"}


@pytest.mark.parametrize("name", ["pain", "length_cm", "width_cm", "depth_cm"])
def test_a_number_sent_as_null_is_refused_not_taken_as_not_measured(api, wc, db, name):
    """What the nurse's page sent when it could not read "4 cm" or "5/10" (finding 4)."""
    r = upload(api, wc.nurse, case_body(wc.patient, observation=observation(**{name: None})),
               [jpeg()])  # fmt: skip
    assert r.status_code == 422, r.text
    codes = {(p["field"], p["code"]) for p in r.json()["problems"]}
    assert (f"case.observation.{name}", "null_not_allowed") in codes
    count = db.execute("SELECT count(*) AS n FROM wound_cases WHERE patient_id = %s", (wc.patient,))
    assert count.fetchone()["n"] == 0


def test_cross_field_rules_carry_their_codes(api, wc):
    body = case_body(wc.patient, observation=observation(width_cm=None), photo_consent=False)
    del body["observation"]["width_cm"]
    r = upload(api, wc.nurse, body, [jpeg()])
    assert r.status_code == 422
    codes = {(p["field"], p["code"]) for p in r.json()["problems"]}
    assert codes == {
        ("case.observation.width_cm", "length_and_width_together"),
        ("case.photo_consent", "consent_required"),
    }


@pytest.mark.parametrize(
    ("reading", "status", "code"),
    [
        ({"type": "weight", "value": "72,5", "unit": "kg"}, 422, "not_a_number"),
        ({"type": "pulse", "value": 400, "unit": "/min"}, 422, "out_of_range"),
        ({"type": "cat", "value": 12.5, "unit": "{score}"}, 422, "not_whole"),
        ({"type": "weight", "value": 160, "unit": "stone"}, 422, "wrong_unit"),
        ({"type": "pulse", "value": None, "unit": "/min"}, 400, "null_not_allowed"),
    ],
)
def test_a_nurses_reading_is_refused_at_its_value_with_a_code(client, care, reading, status, code):
    from datetime import UTC, datetime

    body = {"measured_at": datetime.now(UTC).isoformat(), "readings": [reading]}
    r = client.post(
        f"/api/v1/patients/{care.patient}/readings", headers=care.nurse.headers, json=body
    )
    assert r.status_code == status, r.text
    problem = r.json()["problems"][0]
    assert problem["code"] == code
    assert problem["field"] in ("readings[0].value", "readings[0].unit", "readings.0.value")
    if code == "out_of_range":
        assert problem["params"] == {"min": 25, "max": 250, "unit": "/min"}


def test_every_code_is_documented_and_has_a_danish_text():
    """The codes the server gives (grepped from the sources) are in docs/errors.md and in the
    pages' texts."""
    from app.web.texts import TEXT

    sources = [
        path
        for package in ("telemed", "alerts", "events", "wounds")
        for path in REPO_ROOT.glob(f"{package}/**/*.py")
    ]
    found = set()
    for path in sources:
        text = path.read_text()
        found |= set(
            re.findall(
                r'FieldProblem\([^()]*?,\s*(?:f?"[^"]*"|[a-z_.]+),\s*"([a-z_]+)"', text, re.S
            )
        )
    for path in REPO_ROOT.glob("wounds/observations.py"):
        found |= set(
            re.findall(
                r'FieldProblem\(\s*(?:f?"[^"]*"|[a-z_.]+),\s*"([a-z_0-9]+)"', path.read_text()
            )
        )
    found |= {"not_a_number", "out_of_range", "not_whole", "null_not_allowed", "required",
              "too_long", "invalid_choice", "unknown_field", "wrong_type", "invalid",
              "bands_out_of_order", "no_limit_left", "in_future", "unknown_metric", "wrong_unit",
              "wrong_scale", "ambiguous_number", "empty", "unsupported_format",
              "too_many_pixels", "corrupt"}  # fmt: skip
    doc = (REPO_ROOT / "docs" / "errors.md").read_text()
    missing_doc = sorted(c for c in found if f"`{c}`" not in doc)
    missing_text = sorted(c for c in found if f"error.{c}" not in TEXT)
    assert not missing_doc and not missing_text, (missing_doc, missing_text)


# --- NUL characters, which PostgreSQL cannot store ------------------------------------------


def test_a_nul_in_a_text_is_refused_by_its_field_never_a_server_error(
    api, wc, client, care, factory
):
    from datetime import UTC, datetime

    from tests.wound_helpers import new_wound

    r = upload(api, wc.nurse, case_body(wc.patient, observation=observation(free_text="a\x00b")),
               [jpeg()])  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["problems"] == [
        {"field": "case.observation.free_text", "message": "contains a NUL character",
         "code": "nul_character"}
    ]  # fmt: skip
    r = upload(api, wc.nurse, case_body(wc.patient, wound=new_wound(location_detail="x\x00")),
               [jpeg()])  # fmt: skip
    assert (r.status_code, r.json()["problems"][0]["field"]) == (400, "case.wound.location_detail")

    change = {"rule_key": "absolute:spo2", "field": "yellow_low", "remove": True,
              "removal_reason": "x\x00"}  # fmt: skip
    r = client.put(f"/api/v1/patients/{care.patient}/thresholds", headers=care.specialist.headers,
                   json={"reason": "ok", "changes": [change]})  # fmt: skip
    assert r.status_code == 400
    assert r.json()["problems"][0]["field"] == "changes[0].removal_reason"

    patient = factory.patient(care.hospital, program="ak")
    r = client.put(f"/api/v1/admin/patients/{patient}/anticoagulant", headers=care.admin.headers,
                   json={"product": "waran", "reason": "x\x00"})  # fmt: skip
    assert (r.status_code, r.json()["problems"][0]["code"]) == (400, "nul_character")

    body = {"measured_at": datetime.now(UTC).isoformat(), "note": "x\x00",
            "readings": [{"type": "pulse", "value": 70, "unit": "/min"}]}  # fmt: skip
    r = client.post(f"/api/v1/patients/{care.patient}/readings", headers=care.nurse.headers,
                    json=body)  # fmt: skip
    assert (r.status_code, r.json()["problems"][0]["field"]) == (400, "note")


def test_a_nul_that_reaches_the_database_is_still_the_requests_fault(client, care, db_dsn, db):
    """Every JSON body is checked for NUL where it is read, so a field without a check of its
    own is refused by its name too: never a server error."""
    from tests.alert_helpers import ago, alert_by_rule, row, store

    store(db_dsn, [row(care.patient, "spo2", 85, ago(hours=1), care.nurse.id)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")["id"]
    r = client.post(f"/api/v1/alerts/{alert}/acknowledge", headers=care.specialist.headers,
                    json={"note": "x\x00"})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["problems"][0]["code"] == "nul_character"
    r = client.post(f"/api/v1/alerts/{alert}/instructions", headers=care.specialist.headers,
                    json={"text": "x\x00"})  # fmt: skip
    assert (r.status_code, r.json()["problems"][0]["field"]) == (400, "text")
