"""No CPR number, password, username as typed or clinical free text in any log: sentinels go
through every error path we can reach, and the application's log records (caplog) and the
PostgreSQL server's log file are searched for them afterwards. Each path is also shown to have
reached the log at all, so that an empty log proves nothing by accident."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devices.provisioning import provision
from ingest.batch import Incoming
from ingest.writer import Writer
from telemed.device_contract import readings_topic
from telemed.logs import CPR_MASK, describe_db_error, mask_cpr
from tests import services
from tests.mqtt_helpers import message, wait_for
from tests.test_cpr_storage import new_cpr, patient_body

pytest.register_assert_rewrite("tests.wound_helpers")
from tests.wound_helpers import case_body, jpeg, new_wound, observation, upload  # noqa: E402

pytest_plugins = ["tests.wound_helpers"]
PG_LOG = services.TEST_STATE / "pg.log"


class ServerLog:
    """What the PostgreSQL server writes to its log from now on."""

    def __init__(self) -> None:
        self.start = PG_LOG.stat().st_size

    def text(self) -> str:
        with PG_LOG.open("rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace")


@pytest.fixture
def server_log(service_env) -> ServerLog:
    return ServerLog()


@pytest.fixture
def app_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def cpr_forms(cpr: str) -> list[str]:
    return [cpr, f"{cpr[:6]}-{cpr[6:]}", f"{cpr[:6]} {cpr[6:]}"]


def assert_absent(sentinels: list[str], **logs: str) -> None:
    for where, text in logs.items():
        for sentinel in sentinels:
            assert sentinel not in text, f"{sentinel!r} is in the {where} log"


@pytest.fixture
def refusing(owner_db) -> Iterator:
    """Make the database refuse rows holding a text (a CHECK constraint added as the owner),
    so that an insert carrying it fails in PostgreSQL the way any refused row does."""
    added: list[tuple[str, str]] = []

    def refuse(table: str, condition: str) -> str:
        name = f"refuse_{uuid.uuid4().hex[:8]}"
        owner_db.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")
        added.append((table, name))
        return name

    yield refuse
    for table, name in added:
        owner_db.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def test_the_server_is_configured_to_log_no_details_statements_or_parameters(db):
    settings = {
        r["name"]: r["setting"]
        for r in db.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('log_error_verbosity', "
            "'log_min_error_statement', 'log_parameter_max_length_on_error', "
            "'log_parameter_max_length', 'log_statement', 'log_min_duration_statement')"
        )
    }
    assert settings == {
        "log_error_verbosity": "terse",
        "log_min_error_statement": "panic",
        "log_parameter_max_length_on_error": "0",
        "log_parameter_max_length": "0",
        "log_statement": "none",
        "log_min_duration_statement": "-1",
    }


def test_a_duplicate_cpr_number_leaves_no_trace_of_it(client, care, server_log, app_log):
    cpr, born = new_cpr()
    name = f"Sentinel Name {uuid.uuid4().hex[:8]}"
    h = care.admin.headers
    body = patient_body(cpr, born, care.hospital, name)
    assert client.post("/api/v1/admin/patients", headers=h, json=body).status_code == 201
    dup = client.post(
        "/api/v1/admin/patients", headers=h, json={**body, "cpr": f"{cpr[:6]}-{cpr[6:]}"}
    )
    assert dup.status_code == 409
    pg = server_log.text()
    assert 'duplicate key value violates unique constraint "patients_cpr_hmac_key"' in pg
    assert_absent([*cpr_forms(cpr), name], server=pg, application=app_log.text)
    assert cpr not in dup.text


def test_a_failed_sign_in_with_a_cpr_number_for_username_logs_neither(
    client, care, server_log, app_log
):
    cpr, _ = new_cpr()
    password = f"pw-{uuid.uuid4().hex}"
    for username in cpr_forms(cpr):
        r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
        assert r.status_code == 401
    r = client.post(
        "/api/v1/auth/token", json={"username": care.nurse.username, "password": password}
    )
    assert r.status_code == 401
    assert "sign-in" in app_log.text
    assert_absent([*cpr_forms(cpr), password], server=server_log.text(), application=app_log.text)


def test_a_bad_enrolment_of_a_named_patient_logs_neither_name_nor_cpr(
    client, care, server_log, app_log
):
    cpr, born = new_cpr()
    name = f"Sentinel Name {uuid.uuid4().hex[:8]}"
    body = {
        **patient_body(cpr, born, care.hospital, name),
        "enrollment": {
            "program": "copd",
            "stratum": "severe",
            "start_date": "2026-11-10",
            "end_date": "2026-11-01",
        },
    }
    r = client.post("/api/v1/admin/patients", headers=care.admin.headers, json=body)
    assert r.status_code == 422, r.text
    pg = server_log.text()
    assert 'violates check constraint "enrollments_check"' in pg
    assert_absent([*cpr_forms(cpr), name], server=pg, application=app_log.text)


def test_a_refused_wound_case_keeps_its_free_text_out_of_both_logs(
    api, wc, refusing, server_log, app_log
):
    cpr, _ = new_cpr()
    marker = f"SENTINEL-{uuid.uuid4().hex[:16]}"
    # Short, so that PostgreSQL would quote it whole in a DETAIL ("Failing row contains").
    detail = f"{marker} {cpr[:6]}-{cpr[6:]}"
    free_text = f"{marker} sår ved anklen, {cpr} har ondt"
    constraint = refusing("wounds", f"location_detail NOT LIKE '%{marker}%'")
    case = case_body(
        wc.patient,
        wound=new_wound(location_detail=detail),
        observation=observation(free_text=free_text),
    )
    r = upload(api, wc.nurse, case, [jpeg()])
    assert r.status_code == 500, r.text
    assert "unhandled error" in app_log.text and constraint in app_log.text
    pg = server_log.text()
    assert f'violates check constraint "{constraint}"' in pg
    assert_absent([marker, *cpr_forms(cpr), "ved anklen"], server=pg, application=app_log.text)


def test_a_reading_the_database_refuses_is_logged_by_ingest_without_its_content(
    db, db_dsn, care, refusing, server_log, app_log
):
    device = provision(db, patient_id=care.patient, kind="copd_kit")
    cpr, _ = new_cpr()
    message_id = f"SENTINEL-{uuid.uuid4().hex[:12]}-{cpr}"
    constraint = refusing("readings", f"message_id <> '{message_id}'")
    topic = readings_topic(device.device_id)
    batch = [
        Incoming(1, 1, topic, message("fine-1"), None, 1),
        Incoming(2, 1, topic, message(message_id), None, 1),
    ]

    async def write() -> None:
        writer = Writer(db_dsn, application_name="log-privacy")
        try:
            outcome = await writer.commit(batch, datetime.now(UTC))
        finally:
            await writer.close()
        assert (outcome.stored, outcome.rejected) == (1, 1)

    asyncio.run(write())
    assert "database refused a batch" in app_log.text and constraint in app_log.text
    pg = server_log.text()
    assert f'violates check constraint "{constraint}"' in pg
    assert_absent([message_id, *cpr_forms(cpr)], server=pg, application=app_log.text)


def test_an_ingest_worker_process_logs_a_refused_reading_without_its_content(
    rig, refusing, server_log
):
    """The same through a real worker process, whose whole output is its log."""
    device = rig.device()
    worker = rig.start(0, "--batch-ms", "300")
    link = rig.link(device)
    cpr, _ = new_cpr()
    message_id = f"SENTINEL-{uuid.uuid4().hex[:12]}-{cpr}"
    constraint = refusing("readings", f"message_id <> '{message_id}'")
    assert link.publish(message("good-1")).value == 0
    assert link.publish(message(message_id)).value == 0
    wait_for(lambda: rig.rejections(device.device_id), what="the rejection")
    worker.stop()
    output = "\n".join(worker.lines)
    assert "database refused" in output and constraint in output
    pg = server_log.text()
    assert f'violates check constraint "{constraint}"' in pg
    assert_absent([message_id, *cpr_forms(cpr)], server=pg, worker=output)


def test_database_errors_become_names_and_codes_only(db):
    import psycopg

    cpr, _ = new_cpr()
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as refused:
        db.execute("SELECT %s::uuid", (cpr,))
    assert cpr in str(refused.value)  # what the server says, quoting the value
    text = describe_db_error(refused.value)
    assert text == "InvalidTextRepresentation (22P02)"
    with pytest.raises(psycopg.errors.UniqueViolation) as refused:
        db.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "SELECT username, %s, role, organisation_id, password_hash FROM users LIMIT 1",
            (f"Name {cpr}",),
        )
    assert "DETAIL" in str(refused.value)
    assert describe_db_error(refused.value) == (
        "UniqueViolation (23505): constraint users_username_key, table users: duplicate key "
        'value violates unique constraint "users_username_key"'
    )


def test_cpr_shaped_numbers_are_masked_and_other_numbers_kept():
    assert mask_cpr("user 020548-1234 and 0205481234 or 020548 1234") == (
        f"user {CPR_MASK} and {CPR_MASK} or {CPR_MASK}"
    )
    kept = "epoch 1733574000, count 4000000000, id 12345678901, date 2024-05-02, 991399-1234"
    assert mask_cpr(kept) == kept
