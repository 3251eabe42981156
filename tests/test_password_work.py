"""Argon2 off the event loop with bounded concurrency (telemed.security.PasswordWork)."""

from __future__ import annotations

import asyncio
import os
import threading

import argon2
import pytest

from telemed import security
from telemed.security import Busy, PasswordWork, hash_password


def test_checks_run_in_low_priority_threads_and_the_loop_keeps_turning(monkeypatch):
    stored = hash_password("correct horse battery")
    seen: list[tuple[str, int]] = []
    original = security.verify_password

    def watched(password_hash, password):
        tid = threading.get_native_id()
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)))
        return original(password_hash, password)

    async def run() -> tuple[list[bool], int]:
        work = PasswordWork(workers=1, queue=8)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick = asyncio.create_task(ticker())
        try:
            checks = [work.verify(stored, "wrong password!") for _ in range(3)]
            results = await asyncio.gather(*checks, work.verify(stored, "correct horse battery"))
        finally:
            tick.cancel()
            work.close()
        return results, ticks

    monkeypatch.setattr(security, "verify_password", watched)
    results, ticks = asyncio.run(run())
    assert results == [False, False, False, True]
    main = threading.main_thread().name
    assert all(name.startswith("telemed-argon2") and name != main for name, _ in seen)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert all(nice >= min(19, own + security.HASH_NICENESS) for _, nice in seen), seen
    # Four argon2 checks one after the other take a few hundred milliseconds; had they run on
    # the loop, the ticker would not have run once until they were done.
    assert ticks >= 4


def test_at_most_workers_at_once_and_a_bounded_queue(monkeypatch):
    stored = hash_password("correct horse battery")
    original = security.verify_password
    running = most = 0

    def counted(password_hash, password):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return original(password_hash, password)
        finally:
            running -= 1

    monkeypatch.setattr(security, "verify_password", counted)

    async def run() -> list:
        work = PasswordWork(workers=1, queue=2)

        async def one():
            async with work.admitted():
                return await work.verify(stored, "wrong password!")

        try:
            return await asyncio.gather(*(one() for _ in range(6)), return_exceptions=True)
        finally:
            work.close()

    results = asyncio.run(run())
    assert most == 1
    assert results[:3] == [False, False, False]
    assert all(isinstance(r, Busy) for r in results[3:]), results


def test_the_stand_in_hash_for_unknown_users_costs_what_a_real_one_does():
    real = argon2.extract_parameters(hash_password("correct horse battery"))
    dummy = argon2.extract_parameters(security._DUMMY_HASH)
    assert dummy == real


def test_no_worker_is_refused():
    with pytest.raises(ValueError):
        PasswordWork(workers=0)
