"""The device registry: provisioning a device for a patient, revoking it, giving it a new
password, listing devices.

A device gets an id (also its MQTT username and client id) and a random password, returned
once; only the broker's own hash of it is stored, so the broker's accounts can be rebuilt from
the database at any time (devices.broker.sync_broker). The id is made here unless the caller
gives one (a kit's id printed on it, say): 3–64 characters from a–z 0–9 -, never starting with
`telemed-`, which names the broker's service accounts and their client ids. Callers tell the
broker of a change in the same transaction (devices.broker_change.registry_change), and
devices.provisioning_bulk enrols a file's worth of devices in one.
The sync and async functions share everything but the awaits.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Any, Literal, NoReturn, get_args

import msgspec
from psycopg import errors

from devices.broker import hash_password
from telemed.db import AsyncConn, Row, SyncConn
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
# The registry's own rule (migrations/0004_devices_readings.sql), and the prefix of the broker's
# service accounts (telemed-ingest, telemed-admin) and their client ids.
DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
RESERVED_PREFIX = "telemed-"

INSERT = """
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
_ROTATE = """
UPDATE devices SET password_hash = %(password_hash)s
WHERE id = %(id)s AND active RETURNING id, serial, kind, patient_id
"""
_ACTIVE = "SELECT active FROM devices WHERE id = %(id)s"
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


def check_device_id(device_id: str | None) -> None:
    """A device id the caller gives: the registry's form, and not a service account's name."""
    if device_id is None:
        return
    if DEVICE_ID.fullmatch(device_id) is None:
        raise Invalid(
            "bad device id",
            [FieldProblem("device_id", "3–64 characters from a–z 0–9 -, starting with a "
                          "letter or digit")],
        )  # fmt: skip
    if device_id.startswith(RESERVED_PREFIX):
        raise Invalid(
            "a device may not have a service account's name",
            [FieldProblem("device_id", f"ids starting with {RESERVED_PREFIX} belong to the "
                          "broker's service accounts", "reserved_device_id")],
        )  # fmt: skip


def id_taken() -> Conflict:
    return Conflict(
        "a device with this id exists",
        [FieldProblem("device_id", "already registered", "already_registered")],
    )


def new_device(
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None,
    created_by: uuid.UUID | None,
    device_id: str | None = None,
) -> tuple[dict[str, Any], ProvisionedDevice]:
    """The INSERT's parameters and the device with its password."""
    device_id, password = device_id or new_device_id(), new_password()
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


def is_id_clash(exc: errors.UniqueViolation) -> bool:
    return exc.diag.constraint_name in ("devices_pkey", "devices_mqtt_username_key")


def serial_taken() -> Conflict:
    return Conflict(
        "a device with this serial exists",
        [FieldProblem("serial", "already registered", "already_registered")],
    )


def provision(
    conn: SyncConn,
    *,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None = None,
    created_by: uuid.UUID | None = None,
    device_id: str | None = None,
) -> ProvisionedDevice:
    """Register a device for a patient; the returned password is the only copy."""
    return provision_with_hash(conn, patient_id, kind, serial, created_by, device_id)[0]


def provision_with_hash(
    conn: SyncConn,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None,
    created_by: uuid.UUID | None,
    device_id: str | None = None,
) -> tuple[ProvisionedDevice, str]:
    """The device and its password hash (for the broker)."""
    _check_kind(kind)
    _check_serial(serial)
    check_device_id(device_id)
    with conn.transaction():
        if conn.execute(_PATIENT, {"id": patient_id}).fetchone() is None:
            raise NotFound("patient not found")
        while True:
            params, device = new_device(patient_id, kind, serial, created_by, device_id)
            try:
                with conn.transaction():
                    conn.execute(INSERT, params)
                return device, params["password_hash"]
            except errors.UniqueViolation as exc:
                if not is_id_clash(exc):
                    raise serial_taken() from None
                if device_id is not None:
                    raise id_taken() from None


async def provision_async(
    conn: AsyncConn,
    *,
    patient_id: uuid.UUID,
    kind: str,
    serial: str | None = None,
    created_by: uuid.UUID | None = None,
    device_id: str | None = None,
) -> tuple[ProvisionedDevice, str]:
    """`provision` for the API; the device and its password hash (for the broker)."""
    _check_kind(kind)
    _check_serial(serial)
    check_device_id(device_id)
    async with conn.transaction():
        cur = await conn.execute(_PATIENT, {"id": patient_id})
        if await cur.fetchone() is None:
            raise NotFound("patient not found")
        while True:
            params, device = new_device(patient_id, kind, serial, created_by, device_id)
            try:
                async with conn.transaction():
                    await conn.execute(INSERT, params)
                return device, params["password_hash"]
            except errors.UniqueViolation as exc:
                if not is_id_clash(exc):
                    raise serial_taken() from None
                if device_id is not None:
                    raise id_taken() from None


def revoke(conn: SyncConn, device_id: str) -> DeviceOut:
    """Deactivate a device (its readings stay); sync the broker afterwards to lock it out."""
    return _revoked(conn.execute(_REVOKE, {"id": device_id}).fetchone())


async def revoke_async(conn: AsyncConn, device_id: str) -> DeviceOut:
    cur = await conn.execute(_REVOKE, {"id": device_id})
    return _revoked(await cur.fetchone())


def _revoked(row: dict | None) -> DeviceOut:
    if row is None:
        raise NotFound("device not found")
    return msgspec.convert(row, DeviceOut)


def rotate(conn: SyncConn, device_id: str) -> tuple[ProvisionedDevice, str]:
    """A new password for an active device, returned once; the device and the new hash (for
    the broker, which then refuses the old password and disconnects the device)."""
    password = new_password()
    password_hash = hash_password(password)
    row = conn.execute(_ROTATE, {"id": device_id, "password_hash": password_hash}).fetchone()
    if row is None:
        _not_rotatable(conn.execute(_ACTIVE, {"id": device_id}).fetchone())
    return _rotated(row, password), password_hash


async def rotate_async(conn: AsyncConn, device_id: str) -> tuple[ProvisionedDevice, str]:
    password = new_password()
    password_hash = hash_password(password)
    cur = await conn.execute(_ROTATE, {"id": device_id, "password_hash": password_hash})
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(_ACTIVE, {"id": device_id})
        _not_rotatable(await cur.fetchone())
    return _rotated(row, password), password_hash


def _not_rotatable(row: Row | None) -> NoReturn:
    if row is None:
        raise NotFound("device not found")
    raise Conflict(
        "the device is revoked: provision a new one",
        [FieldProblem("device_id", "revoked", "device_revoked")],
    )


def _rotated(row: Row, password: str) -> ProvisionedDevice:
    return ProvisionedDevice(
        device_id=row["id"],
        mqtt_username=row["id"],
        password=password,
        patient_id=row["patient_id"],
        kind=row["kind"],
        serial=row["serial"],
    )


def list_devices(
    conn: SyncConn, *, patient_id: uuid.UUID | None = None, active_only: bool = False
) -> list[DeviceOut]:
    rows = conn.execute(_LIST, {"patient_id": patient_id, "active_only": active_only}).fetchall()
    return msgspec.convert(rows, list[DeviceOut])


async def list_devices_async(
    conn: AsyncConn, *, patient_id: uuid.UUID | None = None, active_only: bool = False
) -> list[DeviceOut]:
    cur = await conn.execute(_LIST, {"patient_id": patient_id, "active_only": active_only})
    return msgspec.convert(await cur.fetchall(), list[DeviceOut])


async def require_patient_exists(conn: AsyncConn, patient_id: uuid.UUID) -> None:
    cur = await conn.execute(_PATIENT, {"id": patient_id})
    if await cur.fetchone() is None:
        raise NotFound("patient not found")


def find_patient(conn: SyncConn, ref: str) -> uuid.UUID:
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
