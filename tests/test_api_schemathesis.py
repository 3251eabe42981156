"""Schemathesis against the running API, as nurse, specialist and admin: every operation of the
served OpenAPI document, a fixed number of generated requests each (valid and invalid ones),
seeded and derandomized so that a run is repeatable. Each response must have a documented
status, content type and body schema, and none may be a 5xx.

Generated ids rarely exist, so in about half of the valid requests a path id is swapped for a
real one of the caller's world (its patient, alert, wound case, photo...), to reach past the
404s. The server is `telemed serve` in a process of its own, on a database of this module's
own, since the admin's generated requests change organisations, routing rules and deadlines.
Generated text holds no NUL (the API refuses it, see test_api_bad_input), and 413 counts as a
refusal of invalid data (too many photos in an upload).

TELEMED_SCHEMATHESIS_EXAMPLES sets the generated examples per operation and role (default 8);
before them, schemathesis' coverage phase sends its fixed set of boundary and invalid values
(TELEMED_SCHEMATHESIS_COVERAGE=0 leaves it out).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from psycopg.rows import dict_row
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from telemed.security import new_token
from tests import alert_helpers as ah
from tests import services
from tests import test_alerts_notify_support as support
from tests import wound_helpers as wh
from tests.conftest import Factory, User, free_port

own_dsn = support.own_dsn
EXAMPLES = int(os.environ.get("TELEMED_SCHEMATHESIS_EXAMPLES", "8"))
SEED = int(os.environ.get("TELEMED_SCHEMATHESIS_SEED", "20261207"))
SEEN: collections.Counter[tuple[str, str, int]] = collections.Counter()
COVERAGE = os.environ.get("TELEMED_SCHEMATHESIS_COVERAGE", "1") == "1"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,
            # Text never holds a NUL (telemed.inputs refuses it with a 400; the document says
            # so in its description): generated valid text has none, test_api_bad_input sends it.
            "allow-x00": False,
            "mode": "all",
        },
        "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"enabled": False}},
        "checks": {
            "enabled": False,
            **{name: {"enabled": True} for name in CHECKS},
            # Refusals this API answers invalid input with (413: over a limit, such as the
            # number of photos in an upload).
            "negative_data_rejection": {
                "enabled": True,
                "expected-statuses": [400, 401, 403, 404, 405, 409, 413, 415, 422, 429],
            },
        },
        "suppress-health-check": ["all"],
    }
)


@pytest.fixture(scope="module")
def world(own_dsn: str, server: str) -> dict[str, Any]:
    """Each role's credentials and the ids of its world: the nurse's and specialist's patients,
    an alert, a wound case with a photo; the admin's own patient, organisation and user."""
    region = f"Region {uuid.uuid4().hex[:8]}"
    with psycopg.connect(own_dsn, autocommit=True, row_factory=dict_row) as conn:
        make = Factory(conn)
        hospital = make.org(region=region, hospital=f"Hospital of {region}")
        nursing = make.org("home_nursing", region=region)
        admin_org = make.org(region="Region Admin")
        patient = make.patient(hospital, program="copd", serving=[nursing])
        ak_patient = make.patient(hospital, program="ak", serving=[nursing])
        playground = make.patient(admin_org, program="copd", serving=[nursing])
        users = {
            "nurse": make.user("nurse", nursing, ttl_s=7200),
            "specialist": make.user("specialist", hospital, ttl_s=7200),
            "admin": make.user("admin", admin_org, ttl_s=7200),
        }
        spare = make.user("nurse", admin_org)
        conn.execute(
            "INSERT INTO wound_routing_rules (region, specialist_org_id) VALUES (%s, %s)",
            (region, hospital),
        )
        spare_rule = conn.execute(
            "INSERT INTO wound_routing_rules (region, specialist_org_id) VALUES (%s, %s) "
            "RETURNING id",
            ("Region Admin", hospital),
        ).fetchone()["id"]
        ah.store(own_dsn, [ah.row(patient, "spo2", 80, ah.ago(minutes=30), users["nurse"].id)])
        alert = conn.execute("SELECT id FROM alerts WHERE patient_id = %s", (patient,)).fetchone()
        relation = conn.execute(
            "SELECT id FROM care_relations WHERE patient_id = %s", (playground,)
        ).fetchone()
    case = httpx.post(
        f"{server}/api/v1/wound-cases",
        files=wh.form(wh.case_body(patient), [wh.jpeg()]),
        headers=users["nurse"].headers,
        timeout=30,
    )
    assert case.status_code == 201, case.text
    case_ids = {"case_id": case.json()["id"], "photo_id": case.json()["photos"][0]["id"]}
    clinical = {"alert_id": alert["id"], "organisation_id": hospital, **case_ids}
    return {
        "users": users,
        "ids": {
            "nurse": {"patient_id": patient, **clinical},
            "specialist": {"patient_id": ak_patient, **clinical},
            "admin": {
                "patient_id": playground,
                "organisation_id": admin_org,
                "user_id": spare.id,
                "relation_id": relation["id"],
                "rule_id": spare_rule,
            },
        },
    }


@pytest.fixture(scope="module")
def server(service_env: dict[str, str], own_dsn: str, tmp_path_factory) -> Iterator[str]:
    """`telemed serve` in a process of its own, as deployed (and on the other core)."""
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "TELEMED_DSN": own_dsn,
        "TELEMED_MEDIA_DIR": str(tmp_path_factory.mktemp("schemathesis-media")),
        "TELEMED_SSE_MAX_S": "0.3",  # a generated stream request ends at once
    }
    log = tmp_path_factory.mktemp("schemathesis-log") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def _document() -> dict[str, Any]:
    """The document /schema/openapi.json serves (test_openapi checks they are the same)."""
    from app.api.openapi import finish
    from app.asgi import create_app
    from telemed.settings import load_settings

    app = create_app(load_settings({**os.environ, **services.TEST_ENV}))
    return msgspec.json.decode(msgspec.json.encode(finish(app.openapi_schema.to_schema())))


schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


def _known_ids(case: Any, ids: dict[str, Any]) -> None:
    """Swap generated path ids for real ones in about half of the valid requests."""
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode is not GenerationMode.POSITIVE:
        return
    for name, value in list((case.path_parameters or {}).items()):
        real = ids.get(name)
        if real is not None and zlib.crc32(str(value).encode()) % 2 == 0:
            case.path_parameters[name] = str(real)


def _throwaway_token(own_dsn: str, user: User) -> str:
    token, digest = new_token()
    with psycopg.connect(own_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at) "
            "VALUES (%s, %s, now() + interval '5 minutes')",
            (digest, user.id),
        )
    return token


SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _call(case: Any, role: str, world: dict[str, Any], server: str, own_dsn: str) -> None:
    user = world["users"][role]
    token = user.token
    if case.operation.definition.raw.get("operationId") == "signOut":
        token = _throwaway_token(own_dsn, user)  # signing out must not end the run's sign-in
    _known_ids(case, world["ids"][role])
    response = case.call_and_validate(base_url=server, headers={"Authorization": f"Bearer {token}"})
    SEEN[role, case.operation.definition.raw["operationId"], response.status_code] += 1


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_documented_to_a_nurse(case, world, server, own_dsn) -> None:
    _call(case, "nurse", world, server, own_dsn)


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_documented_to_a_specialist(
    case, world, server, own_dsn
) -> None:
    _call(case, "specialist", world, server, own_dsn)


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_documented_to_an_admin(case, world, server, own_dsn) -> None:
    _call(case, "admin", world, server, own_dsn)


def test_the_run_got_past_sign_in_and_into_the_handlers() -> None:
    """A guard on the run: the tokens held (no 401 but for signIn and the stream's end), and
    each role got answers from the handlers themselves, successes included."""
    if not SEEN:
        pytest.skip("the schemathesis tests did not run in this session")
    for role in ("nurse", "specialist", "admin"):
        mine = {(op, status): n for (who, op, status), n in SEEN.items() if who == role}
        unauthorised = {op for (op, status) in mine if status == 401 and op != "signIn"}
        assert not unauthorised, (role, unauthorised)
        succeeded = {op for (op, status) in mine if 200 <= status < 300}
        assert len(succeeded) >= 20, (role, sorted(succeeded))
        assert {status for (_, status) in mine} >= {200, 400, 403, 404}, role


def test_the_run_reaches_every_operation() -> None:
    """A guard on the run itself: the document lists every operation, none filtered away."""
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 60
    found = {op.definition.raw["operationId"] for op in ops}
    assert {"signIn", "submitWoundCase", "streamEvents", "setWoundServiceLevel"} <= found
