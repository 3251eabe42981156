"""The ingest worker: MQTT messages in, committed readings out, then the acknowledgements.

    paho on_message → the device's lane's Inbox → batch (size or time) → validate → one
    transaction (rejections, statuses, readings + alert hooks) → commit → ack every message

A crash at any point loses nothing: what is not acknowledged is redelivered to this slot's
persistent session, and the readings' unique key makes the second delivery store nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from ingest.batch import Incoming, lane_of
from ingest.inbox import Gate, Inbox
from ingest.mqtt import Subscriber
from ingest.slots import DATABASE_AWAY, EXIT_SLOT_TAKEN, Slot, SlotLock, SlotTaken
from ingest.writer import DeviceCache, GiveUp, Writer
from telemed.device_contract import READINGS_FILTER, STATUS_FILTER
from telemed.settings import IngestSettings, Settings

log = logging.getLogger("ingest.worker")

MAX_RECEIVE = 65535  # MQTT's limit for Receive Maximum (and for packet ids in flight)


class Options(msgspec.Struct, frozen=True, kw_only=True):
    slot: int = 0
    batch_size: int = 5000
    batch_ms: int = 50
    # The shared-subscription group and client id prefix; other values only to keep several
    # installations (or test runs) on one broker apart.
    group: str = "ingest"
    client_prefix: str = "telemed-ingest"
    session_expiry_s: int = 7 * 86400
    # Batches written at once, each on its own database connection: while one waits for the
    # database, the next is validated and sent. Each device's messages go to one lane.
    lanes: int = 2
    stop_grace_s: float = 10.0
    device_cache_s: float = 10.0
    progress_every_s: float = 30.0

    @property
    def client_id(self) -> str:
        return f"{self.client_prefix}-{self.slot}"

    @property
    def slot_id(self) -> Slot:
        return Slot(client_id=self.client_id, client_prefix=self.client_prefix,
                    share_group=self.group, slot=self.slot)  # fmt: skip

    @property
    def receive_maximum(self) -> int:
        # Every lane's batch in hand, and one more arriving. Mosquitto 2.0.11 does not keep to
        # it once acknowledgements come (docs/ingest.md, "MQTT session"): the gate bounds.
        return min(MAX_RECEIVE, (self.lanes + 1) * self.batch_size)

    def inbox_max(self, settings: Settings) -> int:
        """The most messages waiting for a batch before reading from the broker stops."""
        return settings.ingest.inbox_max or (self.lanes + 1) * self.batch_size

    @property
    def subscriptions(self) -> tuple[str, str]:
        return (f"$share/{self.group}/{READINGS_FILTER}", f"$share/{self.group}/{STATUS_FILTER}")


def options_from_settings(
    settings: IngestSettings, *, slot: int, batch_size: int, batch_ms: int
) -> Options:
    return Options(
        slot=slot,
        batch_size=batch_size,
        batch_ms=batch_ms,
        group=settings.group,
        client_prefix=settings.client_prefix,
        session_expiry_s=settings.session_expiry_s,
        device_cache_s=settings.device_cache_s,
        lanes=settings.lanes,
    )


class Summary(msgspec.Struct, kw_only=True):
    messages: int = 0
    stored: int = 0
    rejected: int = 0
    in_flight: int = 0
    error: str | None = None
    exit_code: int = 0

    def line(self) -> str:
        return (
            f"stopped: {self.messages} messages, {self.stored} readings stored, "
            f"{self.rejected} rejected, {self.in_flight} in flight"
        )


def check_settings(settings: Settings) -> str | None:
    """Why the worker refuses to start with these settings, if it does."""
    if settings.ingest.inbox_max < 0:
        return f"TELEMED_INGEST_INBOX_MAX must be at least 0, not {settings.ingest.inbox_max}"
    if not 1 <= settings.ingest.keepalive_s <= 65535:
        return f"TELEMED_INGEST_KEEPALIVE_S must be 1 to 65535, not {settings.ingest.keepalive_s}"
    return None


async def run(settings: Settings, options: Options) -> Summary:
    summary = Summary()
    if (refused := check_settings(settings)) is not None:
        summary.error, summary.exit_code = refused, 2
        return summary
    loop = asyncio.get_running_loop()
    # The bound on what the worker holds (ingest.inbox.Gate): over it, reading stops until the
    # lanes have taken half of it.
    gate = Gate(options.inbox_max(settings))
    # One inbox per lane, a device's messages always to the same lane (ingest.batch.lane_of):
    # the lanes never write one patient's readings at once, so they never wait for each other's
    # patient locks (alerts.hooks.lock_patients), except for a patient with two devices.
    inboxes: list[Inbox[Incoming]] = [Inbox(loop, gate) for _ in range(options.lanes)]
    stop = asyncio.Event()
    cache = DeviceCache(options.device_cache_s)
    writers = [
        Writer(settings.dsn, application_name=options.client_id, cache=cache)
        for _ in range(options.lanes)
    ]

    def request_stop() -> None:
        if not stop.is_set():
            stop.set()
            for writer in writers:
                writer.deadline = time.monotonic() + options.stop_grace_s
            for inbox in inboxes:
                inbox.interrupt()

    def fatal(text: str, code: int = 2) -> None:
        summary.error = text
        summary.exit_code = code
        request_stop()

    sub = Subscriber(
        settings,
        client_id=options.client_id,
        subscriptions=options.subscriptions,
        receive_maximum=options.receive_maximum,
        session_expiry_s=options.session_expiry_s,
        deliver=_router(inboxes),
        on_fatal=lambda text: loop.call_soon_threadsafe(fatal, text),
        on_subscribed=lambda: loop.call_soon_threadsafe(subscribed.set),
        gate=gate,
    )
    subscribed = asyncio.Event()
    lock = SlotLock(settings.dsn, options.slot_id)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    in_hand: dict[int, list[Incoming]] = {}
    last_progress = time.monotonic()

    async def handle(lane: int, batch: list[Incoming]) -> None:
        nonlocal last_progress
        in_hand[lane] = batch
        outcome = await writers[lane].commit(batch, datetime.now(UTC))
        sub.ack(batch)
        del in_hand[lane]
        summary.messages += len(batch)
        summary.stored += outcome.stored
        summary.rejected += outcome.rejected
        if time.monotonic() - last_progress >= options.progress_every_s:
            last_progress = time.monotonic()
            log.info("%s so far", summary.line().removeprefix("stopped: "))

    async def lane(number: int) -> None:
        inbox = inboxes[number]
        while not stop.is_set():
            batch = await inbox.take(options.batch_size, options.batch_ms / 1000)
            if batch:
                await handle(number, batch)

    async def keep_slot() -> None:
        try:
            await lock.keep(stop, subscribed)
        except SlotTaken as exc:
            fatal(f"{exc}; this worker stops", EXIT_SLOT_TAKEN)
        except Exception as exc:
            log.exception("keeping the slot's lock failed")
            fatal(f"keeping the slot's lock failed: {exc!r}")

    # The slot's lock before the broker: a second process on a slot must never connect under
    # its client id (each connect would throw the other off).
    try:
        await lock.take(register=True, stop=stop)
    except SlotTaken as exc:
        fatal(f"{exc}; refusing to run it twice", EXIT_SLOT_TAKEN)
        log.error("%s", summary.error)
    except DATABASE_AWAY:  # stopped while waiting for the database
        pass
    if stop.is_set():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        return summary
    log.info("ingest worker %s starting (batch %d / %d ms, %d lanes, at most %d messages "
             "waiting)", options.client_id, options.batch_size, options.batch_ms, options.lanes,
             gate.high)  # fmt: skip
    sub.start()
    keeper = asyncio.create_task(keep_slot())
    try:
        await asyncio.gather(*(lane(i) for i in range(options.lanes)))
        if summary.error is None:
            # Finish what was received, while the connection is still there for the acks; what
            # arrives from now on is left to the broker, which delivers it again.
            sub.hold()
            for inbox in inboxes:
                inbox.close()
            for number, inbox in enumerate(inboxes):
                while len(inbox):
                    await handle(number, inbox.take_nowait(options.batch_size))
            # The acks applied by the broker before the DISCONNECT (ingest.mqtt, "Leaving").
            await asyncio.to_thread(sub.disconnect)
    except GiveUp:
        held = sum(len(b) for b in in_hand.values())
        log.error("stopping with %d messages uncommitted; the broker keeps them", held)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(sub.close)
        for writer in writers:
            await writer.close()
        stop.set()
        await keeper
        await lock.release(stopped=True)
    summary.in_flight = sum(len(b) for b in in_hand.values()) + sum(map(len, inboxes))
    left = sum(inbox.refused for inbox in inboxes)
    if left:
        log.info("%d messages arrived while stopping; the broker delivers them again", left)
    log.info("at most %d messages waited for a batch at once (bound %d; reading held %d times)",
             gate.peak, gate.high, gate.holds)  # fmt: skip
    return summary


def _router(inboxes: list[Inbox[Incoming]]) -> Callable[[Incoming], None]:
    """paho's hand-over (its network thread): each message to its device's lane."""
    if len(inboxes) == 1:
        return inboxes[0].put
    lanes = len(inboxes)

    def deliver(item: Incoming) -> None:
        inboxes[lane_of(item.topic, lanes)].put(item)

    return deliver
