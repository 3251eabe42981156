"""Enrolling many devices at once — a file on the command line (`telemed devices
provision-bulk`) or a list in the admin API (`provisionDevices`) — all or none.

Each row names the patient by id or pseudonym, the kind, and optionally the serial and the
device id. Every row is checked before anything is written; then all are inserted in one round
trip. A bad row makes the whole enrolment fail with an error that names the row (`row 3: …`
and, with a field prefix, the field as `devices[2].kind`); nothing is enrolled then.
The sync and async functions share everything but the awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import msgspec
from psycopg import errors

from devices.provisioning import (
    INSERT,
    KINDS,
    ProvisionedDevice,
    check_device_id,
    id_taken,
    is_id_clash,
    new_device,
    serial_taken,
)
from telemed.db import AsyncConn, SyncConn
from telemed.errors import Conflict, DomainError, FieldProblem, Invalid

# The most rows in one enrolment (the API's body limit is set to hold this many).
MAX_ROWS = 10_000

_FIND = "SELECT id, pseudonym FROM patients WHERE pseudonym = ANY(%s) OR id = ANY(%s)"
_TAKEN = """
SELECT id, serial FROM devices WHERE id = ANY(%(ids)s) OR serial = ANY(%(serials)s)
"""


class NewDevice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of a bulk enrolment: the patient by id or pseudonym."""

    patient: str
    kind: str
    serial: str | None = None
    device_id: str | None = None


def _named(exc: DomainError, index: int, prefix: str | None) -> DomainError:
    """The error of row `index` (0-based), named for a person (`row 3`) and, with `prefix`,
    each field as the request spelt it (`devices[2].kind`)."""
    exc.detail = f"row {index + 1}: {exc.detail}"
    if prefix is not None:
        exc.problems = [
            msgspec.structs.replace(p, field=f"{prefix}[{index}].{p.field}") for p in exc.problems
        ]
    return exc


def _check(rows: list[NewDevice], prefix: str | None) -> None:
    """Every row's own fields, and ids and serials given twice in the batch."""
    if not rows:
        raise Invalid("no devices to enrol", [FieldProblem(prefix or "file", "is empty",
                                                           "required")])  # fmt: skip
    if len(rows) > MAX_ROWS:
        raise Invalid(
            f"at most {MAX_ROWS} devices at once",
            [FieldProblem(prefix or "file", f"{len(rows)} rows; at most {MAX_ROWS}", "too_long")],
        )
    ids: dict[str, int] = {}
    serials: dict[str, int] = {}
    for i, row in enumerate(rows):
        try:
            for name in ("patient", "kind", "serial", "device_id"):
                value = getattr(row, name) or ""
                if "\x00" in value:
                    raise Invalid(f"bad {name}", [FieldProblem(name, "contains a NUL character",
                                                               "nul_character")])  # fmt: skip
                if len(value) > 200:
                    raise Invalid(f"bad {name}", [FieldProblem(name, "at most 200 characters",
                                                               "too_long")])  # fmt: skip
            if row.kind not in KINDS:
                raise Invalid("unknown device kind", [FieldProblem(
                    "kind", f"must be one of {', '.join(KINDS)}", "invalid_choice")])  # fmt: skip
            if row.serial is not None and not 1 <= len(row.serial) <= 100:
                raise Invalid("bad serial", [FieldProblem("serial", "must be 1–100 characters",
                                                          "too_long")])  # fmt: skip
            check_device_id(row.device_id)
            if row.device_id is not None and ids.setdefault(row.device_id, i) != i:
                raise Conflict(f"the device id of row {ids[row.device_id] + 1} again",
                               id_taken().problems)  # fmt: skip
            if row.serial is not None and serials.setdefault(row.serial, i) != i:
                raise Conflict(f"the serial of row {serials[row.serial] + 1} again",
                               serial_taken().problems)  # fmt: skip
        except DomainError as exc:
            raise _named(exc, i, prefix) from None


def _refs(rows: list[NewDevice]) -> tuple[list[str], list[uuid.UUID]]:
    refs = [r.patient.strip() for r in rows]
    ids = []
    for ref in refs:
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(ref))
    return refs, ids


def _plan(
    rows: list[NewDevice],
    found: list[dict],
    taken: list[dict],
    created_by: uuid.UUID | None,
    prefix: str | None,
) -> list[tuple[dict[str, Any], ProvisionedDevice]]:
    """Each row's INSERT parameters and device; an error naming the first row whose patient
    is unknown or whose id or serial is registered already."""
    by_ref = {r["pseudonym"]: r["id"] for r in found} | {str(r["id"]): r["id"] for r in found}
    taken_ids = {r["id"] for r in taken}
    taken_serials = {r["serial"] for r in taken}
    planned = []
    for i, row in enumerate(rows):
        ref = row.patient.strip()
        patient_id = by_ref.get(ref) or by_ref.get(ref.lower())
        if patient_id is None:
            raise _named(Invalid(f"no patient with id or pseudonym {ref!r}",
                                 [FieldProblem("patient", "no such patient", "unknown_patient")]),
                         i, prefix)  # fmt: skip
        if row.device_id in taken_ids:
            raise _named(id_taken(), i, prefix)
        if row.serial in taken_serials:
            raise _named(serial_taken(), i, prefix)
        planned.append(new_device(patient_id, row.kind, row.serial, created_by, row.device_id))
    return planned


def _clash(exc: errors.UniqueViolation) -> Conflict:
    """A clash with a device registered meanwhile (the check above saw none)."""
    if is_id_clash(exc):
        return Conflict("a device id is registered already; enrol again",
                        [FieldProblem("device_id", "already registered",
                                      "already_registered")])  # fmt: skip
    return serial_taken()


def provision_many(
    conn: SyncConn,
    rows: list[NewDevice],
    *,
    created_by: uuid.UUID | None = None,
    field_prefix: str | None = None,
) -> list[tuple[ProvisionedDevice, str]]:
    """Register every row, or none (see the module's text); each device with its password
    hash, for the broker."""
    _check(rows, field_prefix)
    with conn.transaction():
        refs, ids = _refs(rows)
        found = conn.execute(_FIND, (refs, ids)).fetchall()
        taken = conn.execute(_TAKEN, _given(rows)).fetchall()
        planned = _plan(rows, found, taken, created_by, field_prefix)
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT, [params for params, _ in planned])
        except errors.UniqueViolation as exc:
            raise _clash(exc) from None
    return [(device, params["password_hash"]) for params, device in planned]


async def provision_many_async(
    conn: AsyncConn,
    rows: list[NewDevice],
    *,
    created_by: uuid.UUID | None = None,
    field_prefix: str | None = None,
) -> list[tuple[ProvisionedDevice, str]]:
    _check(rows, field_prefix)
    async with conn.transaction():
        refs, ids = _refs(rows)
        cur = await conn.execute(_FIND, (refs, ids))
        found = await cur.fetchall()
        cur = await conn.execute(_TAKEN, _given(rows))
        taken = await cur.fetchall()
        # A password hash per row (PBKDF2): off the event loop, which serves other requests.
        planned = await asyncio.to_thread(_plan, rows, found, taken, created_by, field_prefix)
        try:
            async with conn.transaction(), conn.cursor() as acur:
                await acur.executemany(INSERT, [params for params, _ in planned])
        except errors.UniqueViolation as exc:
            raise _clash(exc) from None
    return [(device, params["password_hash"]) for params, device in planned]


def _given(rows: list[NewDevice]) -> dict[str, list[str]]:
    return {
        "ids": [r.device_id for r in rows if r.device_id is not None],
        "serials": [r.serial for r in rows if r.serial is not None],
    }
