"""Passwords (argon2id) and opaque bearer tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# A hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
# How much lower the password threads run than the event loop (Linux `nice`, per thread).
HASH_NICENESS = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Busy(Exception):
    """More password checks are waiting than this process takes on."""


class PasswordWork:
    """Argon2 off the event loop with bounded concurrency: at most `workers` hashes at once, in
    threads of lower CPU priority (argon2 releases the GIL and runs its lanes in threads of its
    own, which inherit that priority), so the event loop serving everyone else keeps its core.
    At most `queue` more wait their turn; beyond that `admitted()` raises Busy at once instead of
    growing a queue. A request cancelled while it waits costs no hash.

    Made in the app's lifespan: the semaphore belongs to the loop that serves."""

    def __init__(self, workers: int = 1, queue: int = 32) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("password work needs at least one worker and a queue of 0 or more")
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="telemed-argon2", initializer=_lower_priority
        )
        self._slots = asyncio.Semaphore(workers)
        self._limit = workers + queue
        self._admitted = 0
        self.checked = 0  # verifications done, for tests and metrics

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[PasswordWork]:
        if self._admitted >= self._limit:
            raise Busy()
        self._admitted += 1
        try:
            yield self
        finally:
            self._admitted -= 1

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; an unknown user (None) costs one verification like a known one."""
        ok = await self._run(verify_password, password_hash, password)
        self.checked += 1
        return ok

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def _run(self, fn, *args):
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    try:
        tid = threading.get_native_id()
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, tid) + HASH_NICENESS)
        os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except (AttributeError, OSError):  # not Linux: the threads keep the process's priority
        pass


def new_token() -> tuple[str, bytes]:
    """A new token and the digest to store."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_password_strength(password: str) -> str | None:
    if len(password) < 10:
        return "must be at least 10 characters"
    if len(password) > 256:
        return "must be at most 256 characters"
    return None
