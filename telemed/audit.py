"""The audit log: one row for every read or change of a patient's data.

Callers write the row on the same connection and inside the same transaction as the change it
records, so a change is never stored without its audit row (and vice versa).

The database keeps it append-only (migrations/0061_audit_chain.sql): the application's role may
only add and read rows, and at commit every row gets the next position in one hash chain,
hash = sha256(previous hash || the row's canonical text). `verify_chain` recomputes the chain
and names the first row where it breaks. What it does not cover: the owner role (or a
superuser) can rewrite the whole chain from a row onwards; a head recorded outside the database
(`verify_chain(anchor=...)`, `telemed audit verify --anchor`) is what shows that.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from telemed.access import Actor
from telemed.db import AsyncConn, Queries, SyncConn

Q = Queries("access")


def _row(
    actor: Actor,
    action: str,
    patient_id: uuid.UUID | None,
    object_type: str | None,
    object_id: Any,
    detail: dict | None,
) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_id": str(actor.user_id) if actor.user_id else actor.username,
        "actor_name": actor.full_name,
        "actor_role": actor.role,
        "actor_org_id": actor.organisation_id,
        "action": action,
        "patient_id": patient_id,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "client_addr": actor.client_addr,
        "request_id": actor.request_id,
        "detail": Jsonb(detail) if detail else None,
    }


async def record(
    conn: AsyncConn,
    actor: Actor,
    action: str,
    *,
    patient_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    detail: dict | None = None,
) -> None:
    await conn.execute(
        Q.insert_audit, _row(actor, action, patient_id, object_type, object_id, detail)
    )


async def record_many(
    conn: AsyncConn,
    actor: Actor,
    action: str,
    patient_ids: list[uuid.UUID],
    *,
    object_type: str | None = None,
) -> None:
    if not patient_ids:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            Q.insert_audit,
            [_row(actor, action, pid, object_type, pid, None) for pid in patient_ids],
        )


async def record_objects(
    conn: AsyncConn,
    actor: Actor,
    action: str,
    objects: list[tuple[uuid.UUID | None, str | None, Any, dict | None]],
) -> None:
    """One row per (patient_id, object_type, object_id, detail), in one round trip."""
    if not objects:
        return
    async with conn.cursor() as cur:
        await cur.executemany(Q.insert_audit, [_row(actor, action, *o) for o in objects])


def record_sync(
    conn: SyncConn,
    actor: Actor,
    action: str,
    *,
    patient_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    detail: dict | None = None,
) -> None:
    conn.execute(Q.insert_audit, _row(actor, action, patient_id, object_type, object_id, detail))


# ---------------------------------------------------------------------------- the chain

GENESIS = bytes(32)


class ChainBreak(msgspec.Struct, frozen=True):
    audit_id: int | None  # the first row where the chain breaks (None: past the last row)
    chain_seq: int | None
    reason: str


class ChainReport(msgspec.Struct, frozen=True):
    rows: int  # rows checked before the break, or all of them
    head_seq: int
    head_hash: str  # hex; record it elsewhere to check against later (`anchor`)
    broken: ChainBreak | None = None


def parse_anchor(text: str) -> tuple[int, bytes]:
    """`SEQ:HEXHASH`, as `telemed audit verify` prints the head."""
    seq, _, digest = text.partition(":")
    try:
        anchor = int(seq), bytes.fromhex(digest)
    except ValueError:
        raise ValueError("an anchor is SEQ:HASH, the chain position and its hash in hex") from None
    if anchor[0] < 1 or len(anchor[1]) != 32:
        raise ValueError("an anchor is SEQ:HASH, a position from 1 and a 64-digit hash")
    return anchor


_ROWS = """
SELECT a.id, a.chain_seq, a.hash, audit_log_canonical(a) FROM audit_log a
ORDER BY a.chain_seq NULLS LAST, a.id
"""


_NO_HEAD = ChainBreak(
    None, None, "the chain's head (the one row of audit_chain) is missing: it was deleted"
)


def verify_chain(conn: SyncConn, *, anchor: tuple[int, bytes] | None = None) -> ChainReport:
    """Recompute the chain from the first row to the head, in one snapshot; the first row
    that does not fit is named. `anchor` (position, hash) is a head recorded earlier."""
    conn.autocommit = True
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute("SELECT seq, hash FROM audit_chain").fetchone()
        if row is None:
            return ChainReport(0, 0, "", _NO_HEAD)
        head_seq, head = row[0], bytes(row[1])
        with conn.cursor("audit_chain_rows", row_factory=tuple_row) as rows:
            rows.itersize = 2000
            rows.execute(_ROWS)
            prev, n = GENESIS, 0
            for audit_id, seq, stored, canonical in rows:
                broken = _check_row(audit_id, seq, stored, canonical, prev, n + 1)
                if broken is None and anchor and seq == anchor[0] and bytes(stored) != anchor[1]:
                    broken = ChainBreak(audit_id, seq, "its hash is not the anchor's")
                if broken:
                    return ChainReport(n, head_seq, head.hex(), broken)
                prev, n = bytes(stored), n + 1
    broken = None
    if (head_seq, head) != (n, prev):
        broken = ChainBreak(
            None,
            head_seq,
            f"the chain's head is at position {head_seq} but its last row at {n}: "
            "rows at the end were removed, or the head was moved",
        )
    elif anchor and anchor[0] > n:
        broken = ChainBreak(None, anchor[0], f"the anchor's position is past the last row ({n})")
    return ChainReport(n, head_seq, head.hex(), broken)


def _check_row(
    audit_id: int, seq: int | None, stored: bytes | None, canonical: str, prev: bytes, want: int
) -> ChainBreak | None:
    if seq is None or stored is None:
        return ChainBreak(audit_id, None, "it has no place in the chain (written around it)")
    if seq != want:
        return ChainBreak(audit_id, seq, f"the rows at positions {want} to {seq - 1} are missing")
    if bytes(stored) != hashlib.sha256(prev + canonical.encode()).digest():
        return ChainBreak(
            audit_id, seq, "its hash does not match its content and the row before it: changed"
        )
    return None
