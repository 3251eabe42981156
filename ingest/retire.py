"""`telemed ingest retire-slot N`: store what waits in a slot's persistent session through the
normal write path, then end the session, so that the group can shrink without losing readings.

Measured on Mosquitto 2.0.11 (tests/test_fleet.py, docs/ingest.md "Shrinking the fleet"): a
member of a shared subscription that is down keeps its session and keeps being assigned its
share, queued in the session; a member that reconnects with clean start off gets what is queued
and in flight, and once the broker has answered its UNSUBSCRIBE nothing new is assigned to it,
while what is already queued stays and is delivered. So, holding the slot's lock (no worker can
run the slot meanwhile):

1. connect with the slot's client id, clean start off, the slot's Session Expiry Interval;
2. UNSUBSCRIBE the shares: from the UNSUBACK on, the other members get every new message;
3. commit what arrives with the ingest writer (the readings' unique key stores a redelivered
   message once), acknowledge it, then UNSUBSCRIBE again as a barrier. The broker handles a
   client's packets in order and answers in order: the acknowledgements come before the
   barrier, each releases queued messages into flight at once, and those are sent before the
   barrier's UNSUBACK. A round in which nothing arrived before the UNSUBACK, with everything
   acknowledged, leaves the session empty;
4. disconnect keeping the session, connect again and repeat 2–3 (a reconnect delivers whatever
   the session still holds): an independent check of the barrier. Only a connection on which
   nothing arrived ends the session (DISCONNECT with Session Expiry Interval 0); a last connect
   confirms that the broker holds no session under the id any more.

Any fault in between (broker connection lost, database away beyond the grace, a stop) leaves the
session as it is, unsubscribed and holding what it holds: nothing is lost, and running the
command again resumes. Retiring needs another member of the group running and subscribed, or
readings published after the UNSUBSCRIBE would have no subscriber at all.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime

import msgspec

from ingest.batch import Incoming
from ingest.inbox import Inbox
from ingest.mqtt import Subscriber
from ingest.slots import DATABASE_AWAY, EXIT_SLOT_TAKEN, SlotLock, SlotTaken, live_members
from ingest.worker import Options
from ingest.writer import DeviceCache, GiveUp, Writer
from telemed.settings import Settings

log = logging.getLogger("ingest.retire")

CONNECT_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 5
_NO_SUBSCRIPTION = 0x11


class RetireSummary(msgspec.Struct, kw_only=True):
    client_id: str
    session_found: bool = False
    messages: int = 0
    stored: int = 0
    rejected: int = 0
    connections: int = 0
    error: str | None = None
    exit_code: int = 0

    def line(self) -> str:
        counts = (
            f"{self.messages} messages handed over ({self.stored} readings stored, "
            f"{self.rejected} rejected)"
        )
        if self.error:
            return f"{self.client_id} not retired: {self.error}; {counts} before that"
        found = "" if self.session_found else " (the broker held no session for it)"
        return f"retired {self.client_id}: {counts}, session ended{found}"


class Aborted(Exception):
    """The hand-over stopped; the session is kept as it is."""


class _Link:
    """One connection under the slot's client id, without subscriptions, deliveries counted."""

    def __init__(self, settings: Settings, options: Options, loop: asyncio.AbstractEventLoop):
        self.inbox: Inbox[Incoming] = Inbox(loop)
        self.delivered = 0
        self.sub = Subscriber(
            settings,
            client_id=options.client_id,
            subscriptions=(),
            receive_maximum=options.receive_maximum,
            session_expiry_s=options.session_expiry_s,
            deliver=self._deliver,
            on_fatal=lambda text: None,  # read from sub.fatal
        )

    def _deliver(self, item: Incoming) -> None:
        self.delivered += 1  # paho's thread; read on the loop's after a barrier
        self.inbox.put(item)

    async def open(self) -> None:
        self.sub.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while self.sub.generation == 0:
            if self.sub.fatal:
                raise Aborted(self.sub.fatal)
            if time.monotonic() > deadline:
                raise Aborted(f"no connection to the broker within {CONNECT_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.01)

    async def barrier(self, topics: tuple[str, ...], generation: int) -> None:
        """UNSUBSCRIBE and wait for its UNSUBACK on this connection."""
        mid = self.sub.unsubscribe(topics)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while (reasons := self.sub.unsubacked(mid)) is None:
            if self.sub.generation != generation or self.sub.fatal:
                raise Aborted("the connection to the broker was lost")
            if time.monotonic() > deadline:
                raise Aborted(f"no UNSUBACK within {ANSWER_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.005)
        refused = [r for r in reasons if r.is_failure and r.value != _NO_SUBSCRIPTION]
        if refused:
            raise Aborted(f"the broker refused the UNSUBSCRIBE: {refused}")

    async def leave(self, *, end_session: bool) -> None:
        """Every acknowledgement applied by the broker, then DISCONNECT (ingest.mqtt, "Leaving");
        what arrives meanwhile is not taken, and stays in the session."""
        self.sub.hold()
        self.inbox.close()
        await asyncio.to_thread(self.sub.disconnect, end_session=end_session)
        await asyncio.to_thread(self.sub.close)


async def retire(settings: Settings, options: Options, *, wait_s: float = 0.0) -> RetireSummary:
    summary = RetireSummary(client_id=options.client_id)
    lock = SlotLock(settings.dsn, options.slot_id)
    try:
        await lock.take(register=False)
    except SlotTaken as exc:
        summary.error = f"{exc}; stop it before retiring the slot"
        summary.exit_code = EXIT_SLOT_TAKEN
        return summary
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writer = Writer(
        settings.dsn,
        application_name=f"{options.client_id} retire",
        cache=DeviceCache(options.device_cache_s),
    )
    try:
        if not await _wait_for_members(lock, wait_s, stop):
            summary.error = (
                f"no other worker of the share group {options.group!r} is running and "
                "subscribed, so readings published once this slot unsubscribes would reach "
                "nobody; start the remaining workers first"
            )
            summary.exit_code = EXIT_SLOT_TAKEN
            return summary
        await _hand_over(settings, options, writer, summary, stop)
        try:
            await lock.mark_retired(summary.messages)
        except DATABASE_AWAY as exc:
            raise Aborted(f"the session was ended, but recording it failed ({exc!r})") from exc
        log.info("%s", summary.line())
    except (Aborted, GiveUp, *DATABASE_AWAY) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, GiveUp):
            text = "the database stayed away while stopping"
        summary.error = f"{text}; the session keeps what it holds, run retire-slot again"
        summary.exit_code = 2
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await writer.close()
        await lock.release(stopped=False)
    return summary


async def _wait_for_members(lock: SlotLock, wait_s: float, stop: asyncio.Event) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        assert lock.conn is not None
        members = await live_members(lock.conn, lock.slot)
        if members:
            log.info("members of the group running: %s", ", ".join(m.client_id for m in members))
            return True
        if time.monotonic() >= deadline or stop.is_set():
            return False
        await asyncio.sleep(1.0)


async def _hand_over(
    settings: Settings,
    options: Options,
    writer: Writer,
    summary: RetireSummary,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    for number in range(MAX_CONNECTIONS):
        link = _Link(settings, options, loop)
        await link.open()
        summary.connections += 1
        if number == 0:
            summary.session_found = link.sub.session_present
        elif not link.sub.session_present:
            await link.leave(end_session=True)
            raise Aborted("the session was gone on reconnecting, before it was ended")
        try:
            handed = await _drain(link, options, writer, summary, stop)
        except BaseException:
            await link.leave(end_session=False)
            raise
        if handed == 0 and (number > 0 or not link.sub.session_present):
            await link.leave(end_session=True)
            await _confirm_gone(settings, options, loop)
            return
        log.info("%d messages handed over on connection %d; connecting again to check", handed,
                 number + 1)  # fmt: skip
        await link.leave(end_session=False)
    raise Aborted(f"the session still delivered on the {MAX_CONNECTIONS}th connection")


async def _drain(
    link: _Link, options: Options, writer: Writer, summary: RetireSummary, stop: asyncio.Event
) -> int:
    """Unsubscribe, then commit and acknowledge until a barrier finds nothing more."""
    topics = options.subscriptions
    generation = link.sub.generation
    await link.barrier(topics, generation)
    handed = 0
    while True:
        if stop.is_set():
            writer.deadline = time.monotonic() + options.stop_grace_s
            raise Aborted("stopped")
        items = link.inbox.take_nowait(len(link.inbox))
        for start in range(0, len(items), options.batch_size):
            batch = items[start : start + options.batch_size]
            outcome = await writer.commit(batch, datetime.now(UTC))
            link.sub.ack(batch)
            summary.messages += len(batch)
            summary.stored += outcome.stored
            summary.rejected += outcome.rejected
            handed += len(batch)
        mark = link.delivered
        await link.barrier(topics, generation)
        if link.delivered == mark and not len(link.inbox):
            return handed


async def _confirm_gone(
    settings: Settings, options: Options, loop: asyncio.AbstractEventLoop
) -> None:
    """Connect once more under the id: the broker must have no session for it."""
    link = _Link(settings, options, loop)
    await link.open()
    if link.sub.session_present:
        await link.leave(end_session=False)
        raise Aborted("the broker still had a session under the id after it was ended")
    await link.leave(end_session=True)  # the empty one this connect made
