"""The hand-off from paho's network thread to the asyncio loop, and the bound on what waits in it.

Nothing is ever dropped here while the worker runs. The Receive Maximum the worker announces
does not bound what the broker sends: Mosquitto 2.0.11 exceeds it once the worker acknowledges
(tests/test_broker_flow.py), and may then send everything queued for the slot. What bounds the
inboxes is the `Gate`: while they hold more than `high` messages, paho's thread stops reading the
broker's socket, so what the broker sends waits in the socket's buffers and then in the broker
(TCP back-pressure); reading goes on once they hold `low` or fewer. Acknowledgements and
keep-alives are still written meanwhile (ingest.paho_fast.LeanClient).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Gate:
    """Whether paho's thread may read the broker's socket: held while the inboxes hold more than
    `high` messages, free again at `low` (half of `high` unless given) or fewer. `high` None:
    never held for the count (only by `hold_for_good`). Read by paho's thread before each read
    from the socket; the inboxes `nudge` it when they hand messages out."""

    def __init__(self, high: int | None, low: int | None = None) -> None:
        self.high = sys.maxsize if high is None else high
        self.low = self.high // 2 if low is None else low
        self.held = False
        self.peak = 0  # the most messages waiting at once, seen before each read
        self.holds = 0  # how often reading was held for the count
        self._inboxes: list[Inbox] = []
        self._for_good = False
        self._let_go = False
        self._room = threading.Event()

    def watch(self, inbox: Inbox) -> None:
        self._inboxes.append(inbox)

    def waiting(self) -> int:
        return sum(len(inbox) for inbox in self._inboxes)

    def full(self) -> bool:
        """paho's thread, before it reads from the socket: True to leave the socket alone."""
        if self.held:
            return True
        if self._let_go:
            return False
        count = self.waiting()
        if count > self.peak:
            self.peak = count
        if count > self.high:
            self.held = True
            self.holds += 1
        return self.held

    def wait(self, timeout: float) -> bool:
        """paho's thread, while held: wait up to `timeout` for room or a nudge; True once reading
        may go on."""
        self._room.clear()  # before looking, so that a nudge after the look is not missed
        if self._free():
            return True
        self._room.wait(timeout)
        return self._free()

    def _free(self) -> bool:
        if self.held and not self._for_good and self.waiting() <= self.low:
            self.held = False
        return not self.held

    def nudge(self) -> None:
        """Any thread: wake paho's thread if it waits (room was made, or there is a packet to
        write)."""
        if self.held:
            self._room.set()

    def hold_for_good(self) -> None:
        """Stop reading whatever the count (the worker stops: nothing more is taken)."""
        self._for_good = True
        self.held = True

    def let_go(self) -> None:
        """Read again and never hold (to reach the broker's answer behind what it sent; the
        inboxes are closed by then, so nothing read is kept)."""
        self._for_good = False
        self._let_go = True
        self.held = False
        self._room.set()


class Inbox(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, gate: Gate | None = None) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._interrupted = False
        self._closed = False
        self.refused = 0  # put after `close`: left unacknowledged, the broker delivers them again
        self._gate = gate
        if gate is not None:
            gate.watch(self)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """From any thread. Wakes the consumer only once it has what it waits for, so that a
        full batch costs one wake-up rather than one per message."""
        with self._lock:
            if self._closed:
                self.refused += 1
                return
            self._items.append(item)
            waiter = self._waiter
            if waiter is None or len(self._items) < self._want:
                return
            self._waiter = None
        self._loop.call_soon_threadsafe(_wake, waiter)

    def close(self) -> None:
        """Take nothing more: once this returns, no `put` adds an item (what is in is still
        handed out). For stopping: what arrives after is not acknowledged, and the broker
        delivers it again."""
        with self._lock:
            self._closed = True

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
        taken = [items.popleft() for _ in range(min(max_items, len(items)))]
        if self._gate is not None and taken:
            self._gate.nudge()
        return taken
