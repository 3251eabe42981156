"""The hand-off from paho's network thread to the asyncio loop.

Unbounded on purpose: nothing is ever dropped here. The bound is the MQTT v5 Receive Maximum
the worker announces, so the broker never has more unacknowledged messages out to us than
that; the rest waits in the broker's queue for our session.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._interrupted = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """From any thread. Wakes the consumer only once it has what it waits for, so that a
        full batch costs one wake-up rather than one per message."""
        self._items.append(item)
        with self._lock:
            waiter = self._waiter
            if waiter is None or len(self._items) < self._want:
                return
            self._waiter = None
        self._loop.call_soon_threadsafe(_wake, waiter)

    def interrupt(self) -> None:
        """From the loop's thread: end the wait in progress and every later one (to stop);
        `take_nowait` still hands out what is left."""
        with self._lock:
            self._interrupted = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _wake(waiter)

    async def _wait_for(self, want: int, timeout: float | None) -> None:
        with self._lock:
            if len(self._items) >= want or self._interrupted:
                return
            self._want = want
            self._waiter = waiter = self._loop.create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                if self._waiter is waiter:
                    self._waiter = None

    async def take(self, max_items: int, max_wait_s: float) -> list[T]:
        """Wait for a first item, then up to `max_wait_s` for `max_items`; return what is
        there (at most `max_items`; possibly empty once interrupted)."""
        await self._wait_for(1, None)
        if self._items and len(self._items) < max_items and max_wait_s > 0:
            await self._wait_for(max_items, max_wait_s)
        return self.take_nowait(max_items)

    def take_nowait(self, max_items: int) -> list[T]:
        items = self._items
        return [items.popleft() for _ in range(min(max_items, len(items)))]
