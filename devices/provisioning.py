"""The device registry: provisioning a device for a patient, revoking it, listing devices.

A device gets an id (also its MQTT username and client id) and a random password, returned
once; only the broker's own hash of it is stored, so the broker's accounts can be rebuilt from
the database at any time (devices.broker.sync_broker). Callers tell the broker of a change in
the same transaction (devices.broker.apply_changes), and provision_many enrols a file's worth of
devices in one.
The sync and async functions share everything but the awaits.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

import msgspec
from psycopg import AsyncConnection, Connection, errors

from devices.broker import hash_password
from telemed.errors import Conflict, FieldProblem, Invalid, NotFound

Kind = Literal[
    "pulse_oximeter",
    "spirometer",
    "scale",
    "thermometer",
    "tablet",
    "inr_meter",
    "copd_kit",  # a hub that sends for a whole COPD kit
]
KINDS: tuple[str, ...] = get_args(Kind)

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_ID_LENGTH = 12  # 60 random bits after the "dev-" prefix

_INSERT = """
INSERT INTO devices (id, serial, kind, patient_id, mqtt_username, password_hash, created_by)
VALUES (%(id)s, %(serial)s, %(kind)s, %(patient_id)s, %(id)s, %(password_hash)s, %(created_by)s)
"""
_PATIENT = "SELECT id FROM patients WHERE id = %(id)s"
_PATIENT_BY_ID = "SELECT id FROM patients WHERE id = %(ref)s"
_PATIENT_BY_PSEUDONYM = "SELECT id FROM patients WHERE pseudonym = %(ref)s"
_COLUMNS = "id, serial, kind, patient_id, active, created_at, created_by, revoked_at"
_REVOKE = f"""
UPDATE devices SET active = false, revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s RETURNING {_COLUMNS}
"""
_LIST = f"""
SELECT {_COLUMNS} FROM devices
WHERE (%(patient_id)s::uuid IS NULL OR patient_id = %(patient_id)s)
  AND (active OR NOT %(active_only)s)
ORDER BY created_at, id
"""


class ProvisionedDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A new device and its password: shown once, never stored."""

    device_id: str
    mqtt_username: str
    password: str
    patient_id: uuid.UUID
    kind: str
    serial: str


class NewDevice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of a bulk enrolment: the patient by id or pseudonym."""

    patient: str
    kind: str
    serial: str | None = None


class DeviceOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    serial: str
    kind: str
    patient_id: uuid.UUID
    active: bool
    created_at: datetime
    created_by: uuid.UUID | None
    revoked_at: datetime | None


def new_device_id() -> str:
    return "dev-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def new_password() -> str:
    return secrets.token_urlsafe(24)  # 192 bits; URL-safe text needs no quoting anywhere


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise Invalid(
            "unknown device kind", [FieldProblem("kind", f"must be one of {', '.join(KINDS)}")]
        )


def _check_serial(serial: str | None) -> None:
    if serial is not None and not 1 <= len(serial) <= 100:
        raise Invalid("bad serial", [FieldProblem("serial", "must be 1–100 characters")])


def _new_device(
    patient_id: uuid.UUID, kind: str, serial: str | None, created_by: uuid.UUID | None
) -> tuple[dict[str, Any], ProvisionedDevice]:
    device_id, password = new_device_id(), new_password()
    device = ProvisionedDevice(
        device_id=device_id,
        mqtt_username=device_id,
        password=password,
        patient_id=patient_id,
        kind=kind,
        serial=serial or device_id,
    )
    params = {
        "id": device_id,
        "serial": device.serial,
        "kind": kind,
        "patient_id": patient_id,
        "password_hash": hash_password(password),
        "created_by": created_by,
    }
    return params, device


def _is_id_clash(exc: errors.UniqueViolation) -> bool:
    return exc.diag.constraint_name in ("devices_pkey", "devices_mqtt_username_key")


def _serial_taken() -> Conflict:
    return Conflict(
        "a device with this serial exists", [FieldProblem("serial", "already registered")]
    )


def provision(
    conn: Connection,
    *,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None = None,
    created_by: uuid.UUID | None = None,
) -> ProvisionedDevice:
    """Register a device for a patient; the returned password is the only copy."""
    return _provision(conn, patient_id, kind, serial, created_by)[0]


def _provision(
    conn: Connection,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None,
    created_by: uuid.UUID | None,
) -> tuple[ProvisionedDevice, str]:
    """The device and its password hash (for the broker)."""
    _check_kind(kind)
    _check_serial(serial)
    with conn.transaction():
        if conn.execute(_PATIENT, {"id": patient_id}).fetchone() is None:
            raise NotFound("patient not found")
        while True:
            params, device = _new_device(patient_id, kind, serial, created_by)
            try:
                with conn.transaction():
                    conn.execute(_INSERT, params)
                return device, params["password_hash"]
            except errors.UniqueViolation as exc:
                if not _is_id_clash(exc):
                    raise _serial_taken() from None


async def provision_async(
    conn: AsyncConnection,
    *,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None = None,
    created_by: uuid.UUID | None = None,
) -> tuple[ProvisionedDevice, str]:
    """`provision` for the API; the device and its password hash (for the broker)."""
    _check_kind(kind)
    _check_serial(serial)
    async with conn.transaction():
        cur = await conn.execute(_PATIENT, {"id": patient_id})
        if await cur.fetchone() is None:
            raise NotFound("patient not found")
        while True:
            params, device = _new_device(patient_id, kind, serial, created_by)
            try:
                async with conn.transaction():
                    await conn.execute(_INSERT, params)
                return device, params["password_hash"]
            except errors.UniqueViolation as exc:
                if not _is_id_clash(exc):
                    raise _serial_taken() from None


def provision_many(
    conn: Connection, rows: list[NewDevice], *, created_by: uuid.UUID | None = None
) -> list[tuple[ProvisionedDevice, str]]:
    """Register every row, or none: a bad row raises Invalid/NotFound/Conflict naming its index.
    Each device with its password hash, for the broker."""
    for i, row in enumerate(rows):
        for name in ("patient", "kind", "serial"):
            value = getattr(row, name) or ""
            if "\x00" in value or len(value) > 200:
                raise Invalid(
                    f"row {i + 1}: bad {name}",
                    [FieldProblem(name, "no NUL characters, at most 200 characters")],
                )
    with conn.transaction():
        try:
            return _provision_batch(conn, rows, created_by)
        except (errors.UniqueViolation, _RowProblem):
            pass  # an id clash or a bad row: one at a time below, for the row's own error
    made = []
    with conn.transaction():
        for i, row in enumerate(rows):
            try:
                patient_id = find_patient(conn, row.patient)
                made.append(_provision(conn, patient_id, row.kind, row.serial, created_by))
            except (Invalid, NotFound, Conflict) as exc:
                exc.detail = f"row {i + 1}: {exc.detail}"
                raise
    return made


class _RowProblem(Exception):
    pass


def _provision_batch(
    conn: Connection, rows: list[NewDevice], created_by: uuid.UUID | None
) -> list[tuple[ProvisionedDevice, str]]:
    """Every row in one INSERT round trip; _RowProblem when any row is bad."""
    refs = [r.patient.strip() for r in rows]
    ids = []
    for ref in refs:
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(ref))
    found = conn.execute(
        "SELECT id, pseudonym FROM patients WHERE pseudonym = ANY(%s) OR id = ANY(%s)",
        (refs, ids),
    ).fetchall()
    by_ref = {r["pseudonym"]: r["id"] for r in found} | {str(r["id"]): r["id"] for r in found}
    made, params = [], []
    for row, ref in zip(rows, refs, strict=True):
        patient_id = by_ref.get(ref) or by_ref.get(ref.lower())
        if patient_id is None or row.kind not in KINDS:
            raise _RowProblem()
        if row.serial is not None and not 1 <= len(row.serial) <= 100:
            raise _RowProblem()
        p, device = _new_device(patient_id, row.kind, row.serial, created_by)
        made.append((device, p["password_hash"]))
        params.append(p)
    with conn.cursor() as cur:
        cur.executemany(_INSERT, params)
    return made


def revoke(conn: Connection, device_id: str) -> DeviceOut:
    """Deactivate a device (its readings stay); sync the broker afterwards to lock it out."""
    return _revoked(conn.execute(_REVOKE, {"id": device_id}).fetchone())


async def revoke_async(conn: AsyncConnection, device_id: str) -> DeviceOut:
    cur = await conn.execute(_REVOKE, {"id": device_id})
    return _revoked(await cur.fetchone())


def _revoked(row: dict | None) -> DeviceOut:
    if row is None:
        raise NotFound("device not found")
    return msgspec.convert(row, DeviceOut)


def list_devices(
    conn: Connection, *, patient_id: uuid.UUID | None = None, active_only: bool = False
) -> list[DeviceOut]:
    rows = conn.execute(_LIST, {"patient_id": patient_id, "active_only": active_only}).fetchall()
    return msgspec.convert(rows, list[DeviceOut])


async def list_devices_async(
    conn: AsyncConnection, *, patient_id: uuid.UUID | None = None, active_only: bool = False
) -> list[DeviceOut]:
    cur = await conn.execute(_LIST, {"patient_id": patient_id, "active_only": active_only})
    return msgspec.convert(await cur.fetchall(), list[DeviceOut])


async def require_patient_exists(conn: AsyncConnection, patient_id: uuid.UUID) -> None:
    cur = await conn.execute(_PATIENT, {"id": patient_id})
    if await cur.fetchone() is None:
        raise NotFound("patient not found")


def find_patient(conn: Connection, ref: str) -> uuid.UUID:
    """A patient by id or pseudonym (for the command line)."""
    ref = ref.strip()
    try:
        row = conn.execute(_PATIENT_BY_ID, {"ref": uuid.UUID(ref)}).fetchone()
    except ValueError:
        row = None
    if row is None:
        row = conn.execute(_PATIENT_BY_PSEUDONYM, {"ref": ref}).fetchone()
    if row is None:
        raise NotFound(f"no patient with id or pseudonym {ref!r}")
    return row["id"]
