"""The admin API's and the command line's device operations beyond one device at a time, with
the real broker: bulk enrolment (all or none, errors named by row, 10,000 devices in one
request), a new password in place (the old one refused at once, the device disconnected), and
ids of the broker's service accounts refused before anything reaches the broker.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from devices.api import BULK_MAX_BODY
from devices.provisioning_bulk import MAX_ROWS
from tests.mqtt_helpers import DeviceLink, wait_for
from tests.test_provisioning import _broker_hash, _telemed

BULK = "/api/v1/admin/devices"


def _pseudonym(db, patient) -> str:
    return db.execute("SELECT pseudonym FROM patients WHERE id = %s", (patient,)).fetchone()[
        "pseudonym"
    ]


def _count(db) -> int:
    return db.execute("SELECT count(*) AS n FROM devices").fetchone()["n"]


def _journal(settings) -> str:
    return (settings.broker_dir / "accounts.journal").read_text()


def test_bulk_enrolment_through_the_api_returns_each_password_once(client, care, db, factory,
                                                                   settings):  # fmt: skip
    other = factory.patient(factory.org())
    tag = uuid.uuid4().hex[:8]
    rows = [
        {"patient": str(care.patient), "kind": "copd_kit"},
        {"patient": _pseudonym(db, other), "kind": "inr_meter", "serial": f"INR-{tag}"},
        {"patient": str(other).upper(), "kind": "scale", "device_id": f"kit-{tag}"},
    ]
    answer = client.post(BULK, headers=care.admin.headers, json={"devices": rows})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert [d["patient_id"] for d in made] == [str(care.patient), str(other), str(other)]
    assert made[1]["serial"] == f"INR-{tag}" and made[2]["device_id"] == f"kit-{tag}"
    for d in made:
        link = DeviceLink(settings, d["device_id"], d["password"])
        assert link.connect(retry_refused_s=0).value == 0, d
        link.close()
    listed = client.get(f"/api/v1/admin/patients/{other}/devices", headers=care.admin.headers)
    assert "password" not in listed.text
    audit = db.execute("SELECT object_id FROM audit_log WHERE action = 'create' AND "
                       "object_type = 'device' AND object_id = ANY(%s)",
                       ([d["device_id"] for d in made],)).fetchall()  # fmt: skip
    assert len(audit) == 3
    for user in (care.nurse, care.specialist):
        assert client.post(BULK, headers=user.headers, json={"devices": rows}).status_code == 403


@pytest.mark.parametrize(
    ("row", "status", "field", "code"),
    [
        ({"patient": "P-NOBODY", "kind": "scale"}, 422, "devices[1].patient", "unknown_patient"),
        ({"patient": "{p}", "kind": "toaster"}, 422, "devices[1].kind", "invalid_choice"),
        ({"patient": "{p}", "kind": "scale", "device_id": "telemed-ingest-0"}, 422,
         "devices[1].device_id", "reserved_device_id"),
        ({"patient": "{p}", "kind": "scale", "device_id": "telemed-admin-x"}, 422,
         "devices[1].device_id", "reserved_device_id"),
        ({"patient": "{p}", "kind": "scale", "device_id": "Kit 7"}, 422,
         "devices[1].device_id", "invalid"),
        ({"patient": "{p}", "kind": "scale", "device_id": "{dup}"}, 409,
         "devices[1].device_id", "already_registered"),
        ({"patient": "{p}", "kind": "scale", "serial": "{taken}"}, 409, "devices[1].serial",
         "already_registered"),
        ({"patient": "{p}", "kind": "scale", "serial": "x" * 101}, 422, "devices[1].serial",
         "too_long"),
        ({"patient": "{p}\u0000", "kind": "scale"}, 400, "devices[1].patient", "nul_character"),
        ({"patient": "{p}", "kind": "scale", "colour": "red"}, 400, None, "unknown_field"),
        ({"patient": 17.5, "kind": "scale"}, 400, None, "wrong_type"),
    ],
)  # fmt: skip
def test_a_bad_row_enrols_nothing_and_is_named(client, care, db, settings, row, status, field,
                                               code):  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    p = _pseudonym(db, care.patient)
    taken = client.post(
        BULK,
        headers=care.admin.headers,
        json={"devices": [{"patient": p, "kind": "scale", "serial": f"T-{tag}"}]},
    )
    assert taken.status_code == 201  # fmt: skip
    good = {"patient": p, "kind": "scale", "device_id": f"dup-{tag}"}
    bad = {k: (v.format(p=p, dup=f"dup-{tag}", taken=f"T-{tag}") if isinstance(v, str) else v)
           for k, v in row.items()}  # fmt: skip
    before, journal = _count(db), _journal(settings)
    answer = client.post(BULK, headers=care.admin.headers, json={"devices": [good, bad]})
    assert answer.status_code == status, answer.text
    problems = answer.json().get("problems", [])
    assert problems and problems[0].get("code", "invalid") == code, problems
    if field is not None:
        assert problems[0]["field"] == field
        assert answer.json()["detail"].startswith("row 2: ") or status == 400
    assert _count(db) == before and _journal(settings) == journal


def test_bulk_limits_empty_too_many_and_too_large(client, care, db):
    h = care.admin.headers
    assert client.post(BULK, headers=h, json={"devices": []}).status_code == 400
    p = _pseudonym(db, care.patient)
    many = [{"patient": p, "kind": "scale"}] * (MAX_ROWS + 1)
    assert client.post(BULK, headers=h, json={"devices": many}).status_code == 400
    # MAX_ROWS rows at their longest fit the body limit with room to spare.
    longest = {"patient": str(uuid.uuid4()), "kind": "pulse_oximeter", "serial": "s" * 100,
               "device_id": "d" * 64}  # fmt: skip
    size = len(json.dumps({"devices": [longest] * MAX_ROWS}).encode())
    assert size < BULK_MAX_BODY * 0.8, size
    huge = client.post(BULK, headers=h, content=b'{"devices": [' + b" " * BULK_MAX_BODY + b"]}",
                       )  # fmt: skip
    assert huge.status_code == 413


def test_ten_thousand_devices_in_one_request(client, care, db, settings):
    p = _pseudonym(db, care.patient)
    tag = uuid.uuid4().hex[:6]
    rows = [{"patient": p, "kind": "scale", "serial": f"B{tag}-{i:05d}"} for i in range(MAX_ROWS)]
    started = time.monotonic()
    answer = client.post(BULK, headers=care.admin.headers, json={"devices": rows})
    took = time.monotonic() - started
    assert answer.status_code == 201, answer.text[:500]
    made = answer.json()
    assert len(made) == MAX_ROWS and len({d["password"] for d in made}) == MAX_ROWS
    for d in (made[0], made[-1]):
        link = DeviceLink(settings, d["device_id"], d["password"])
        assert link.connect(retry_refused_s=0).value == 0
        link.close()
    print(f"10,000 devices enrolled through the API in {took:.1f} s")


# --- a new password in place ---------------------------------------------------------------


def test_rotating_a_password_refuses_the_old_one_at_once_and_disconnects_the_device(
    client, care, settings
):
    h = care.admin.headers
    made = client.post(f"/api/v1/admin/patients/{care.patient}/devices", headers=h,
                       json={"kind": "copd_kit"}).json()  # fmt: skip
    device_id, old = made["device_id"], made["password"]
    link = DeviceLink(settings, device_id, old)
    assert link.connect().value == 0
    rotated = client.post(f"/api/v1/admin/devices/{device_id}/rotate", headers=h)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["password"]
    assert new != old and rotated.json()["device_id"] == device_id
    # The connection on the old password is cut, and it cannot come back with it.
    wait_for(lambda: link.disconnects, timeout=5, what="the device disconnected")
    link.close()
    assert DeviceLink(settings, device_id, old).connect(retry_refused_s=0).value == 0x87
    fresh = DeviceLink(settings, device_id, new)
    assert fresh.connect(retry_refused_s=0).value == 0
    assert fresh.publish(b'{"message_id": "r-1", "measured_at": "2026-01-01T00:00:00Z", '
                         b'"readings": [{"type": "spo2", "value": 95, "unit": "%"}]}').value in (
        0, 0x10)  # fmt: skip
    fresh.close()
    assert "password" not in client.get(f"/api/v1/admin/patients/{care.patient}/devices",
                                        headers=h).text  # fmt: skip
    # A revoked device gets no new password; an unknown one is not found; only admins rotate.
    assert client.post(f"/api/v1/admin/devices/{device_id}/revoke", headers=h).status_code == 200
    gone = client.post(f"/api/v1/admin/devices/{device_id}/rotate", headers=h)
    assert gone.status_code == 409 and gone.json()["problems"][0]["code"] == "device_revoked"
    assert client.post("/api/v1/admin/devices/dev-nope/rotate", headers=h).status_code == 404
    assert client.post(f"/api/v1/admin/devices/{device_id}/rotate",
                       headers=care.nurse.headers).status_code == 403  # fmt: skip


def test_the_command_line_rotates_a_password(db, settings, factory):
    patient = factory.patient(factory.org())
    out = _telemed(settings, "devices", "provision", "--patient", str(patient), "--kind", "scale")
    assert out.returncode == 0, out.stderr
    fields = dict(re.findall(r"^(\w+):\s+(\S+)$", out.stdout, re.M))
    device_id, old = fields["device_id"], fields["password"]
    link = DeviceLink(settings, device_id, old)
    assert link.connect().value == 0
    rotated = _telemed(settings, "devices", "rotate", device_id)
    assert rotated.returncode == 0, rotated.stderr
    new = dict(re.findall(r"^(\w+):\s+(\S+)$", rotated.stdout, re.M))["password"]
    wait_for(lambda: link.disconnects, timeout=5, what="the device disconnected")
    link.close()
    assert DeviceLink(settings, device_id, old).connect(retry_refused_s=0).value == 0x87
    assert DeviceLink(settings, device_id, new).connect(retry_refused_s=0).value == 0
    from devices.broker import verify_password

    assert verify_password(new, _broker_hash(settings, device_id) or "")
    missing = _telemed(settings, "devices", "rotate", "dev-nope")
    assert missing.returncode == 1 and "device not found" in missing.stderr


# --- the broker's service accounts' names --------------------------------------------------


@pytest.mark.parametrize("device_id", ["telemed-ingest-0", "telemed-admin-1", "telemed-ingest"])
def test_a_device_may_not_take_a_service_accounts_name(client, care, db, settings, device_id):
    before, journal = _count(db), _journal(settings)
    answer = client.post(f"/api/v1/admin/patients/{care.patient}/devices",
                         headers=care.admin.headers,
                         json={"kind": "scale", "device_id": device_id})  # fmt: skip
    assert answer.status_code == 422, answer.text
    problem = answer.json()["problems"][0]
    assert (problem["field"], problem["code"]) == ("device_id", "reserved_device_id")
    cli = _telemed(settings, "devices", "provision", "--patient", str(care.patient), "--kind",
                   "scale", "--device-id", device_id)  # fmt: skip
    assert cli.returncode == 1
    assert "service account" in cli.stderr and "device_id" in cli.stderr, cli.stderr
    assert _count(db) == before and _journal(settings) == journal


def test_a_chosen_device_id_is_the_login_and_a_second_one_is_refused(client, care, settings):
    h = care.admin.headers
    device_id = f"kit-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/admin/patients/{care.patient}/devices"
    made = client.post(url, headers=h, json={"kind": "scale", "device_id": device_id})
    assert made.status_code == 201, made.text
    assert made.json()["device_id"] == made.json()["mqtt_username"] == device_id
    assert DeviceLink(settings, device_id, made.json()["password"]).connect().value == 0
    again = client.post(url, headers=h, json={"kind": "thermometer", "device_id": device_id})
    assert again.status_code == 409
    assert again.json()["problems"][0]["code"] == "already_registered"
