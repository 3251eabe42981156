"""Who may see which patient: 401 unauthenticated, 404 out of scope, 403 wrong role."""

from __future__ import annotations

import uuid

import pytest


def get(client, user, path):
    return client.get(path, headers=user.headers)


@pytest.mark.parametrize("who", ["specialist", "nurse"])
def test_care_team_sees_the_patient(client, care, who):
    r = get(client, getattr(care, who), f"/api/v1/patients/{care.patient}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == str(care.patient)


@pytest.mark.parametrize("who", ["other_specialist", "other_nurse"])
def test_out_of_scope_gets_404_like_a_missing_patient(client, care, who):
    out_of_scope = get(client, getattr(care, who), f"/api/v1/patients/{care.patient}")
    missing = get(client, getattr(care, who), f"/api/v1/patients/{uuid.uuid4()}")
    assert out_of_scope.status_code == missing.status_code == 404
    assert out_of_scope.json()["detail"] == missing.json()["detail"]


def test_specialist_of_a_serving_org_does_not_see_the_patient(client, factory, care):
    """'serving' opens a patient to nurses; a specialist needs 'responsible' or 'consulted'."""
    gp_specialist = factory.user("specialist", care.gp)
    assert get(client, gp_specialist, f"/api/v1/patients/{care.patient}").status_code == 404


def test_consulted_specialist_team_sees_the_patient(client, factory, care):
    wound_clinic = factory.org("hospital_department", specialty="wound")
    specialist = factory.user("specialist", wound_clinic)
    assert get(client, specialist, f"/api/v1/patients/{care.patient}").status_code == 404
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/care-relations",
        headers=care.admin.headers,
        json={"organisation_id": str(wound_clinic), "relation": "consulted"},
    )
    assert r.status_code == 201, r.text
    assert get(client, specialist, f"/api/v1/patients/{care.patient}").status_code == 200
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/care-relations/{r.json()['id']}/end",
        headers=care.admin.headers,
    )
    assert r.status_code == 200
    assert get(client, specialist, f"/api/v1/patients/{care.patient}").status_code == 404


def test_nurse_of_the_responsible_org_sees_the_patient(client, factory, care):
    ward_nurse = factory.user("nurse", care.hospital)
    assert get(client, ward_nurse, f"/api/v1/patients/{care.patient}").status_code == 200


def test_patient_list_is_scoped(client, factory, care):
    other_patient = factory.patient(care.other_hospital)
    ids = {p["id"] for p in get(client, care.nurse, "/api/v1/patients/").json()}
    assert str(care.patient) in ids and str(other_patient) not in ids
    ids = {p["id"] for p in get(client, care.other_specialist, "/api/v1/patients/").json()}
    assert str(other_patient) in ids and str(care.patient) not in ids


@pytest.mark.parametrize("who", ["nurse", "specialist"])
@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", "/api/v1/admin/organisations", {"name": "x", "kind": "gp_practice"}),
        ("get", "/api/v1/admin/users", None),
        (
            "post",
            "/api/v1/admin/patients",
            {
                "name": "x",
                "date_of_birth": "1950-01-01",
                "responsible_organisation_id": str(uuid.uuid4()),
            },
        ),
    ],
)
def test_clinicians_cannot_use_the_admin_api(client, care, who, method, path, body):
    user = getattr(care, who)
    r = getattr(client, method)(
        path, headers=user.headers, **({"json": body} if body is not None else {})
    )
    assert r.status_code == 403, r.text


def test_admin_cannot_hand_over_to_a_missing_organisation(client, care):
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/handovers",
        headers=care.admin.headers,
        json={"organisation_id": str(uuid.uuid4()), "reason": "x"},
    )
    assert r.status_code == 404
