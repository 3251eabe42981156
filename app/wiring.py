"""What plugs into what, in one place: the routers the HTTP app mounts besides its own, the
commands of `telemed`, the scheduler's jobs, and the hook that runs the alert rules on every
stored reading.

Nothing is found by name or by installed metadata: a part that is missing here is missing from
the code, where a reader and the tests see it. The domain packages are imported inside the
functions, so that a command imports only what it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from telemed.jobs import Job
from telemed.settings import Settings

Register = Callable[[argparse._SubParsersAction], None]


def routers(settings: Settings) -> list:
    """The domains' controllers: alerts, devices, events, wounds."""
    from alerts import api as alerts_api
    from devices import api as devices_api
    from events import api as events_api
    from wounds import api as wounds_api

    return [
        *alerts_api.routers(),
        *devices_api.routers(),
        *events_api.routers(),
        *wounds_api.routers(settings),
    ]


def commands() -> list[Register]:
    """The domains' subcommands of `telemed`, each added by its package's `register`."""
    from alerts import cli as alerts_cli
    from devices import cli as devices_cli
    from devices import simulator
    from ingest import cli as ingest_cli

    return [alerts_cli.register, devices_cli.register, ingest_cli.register, simulator.register]


def jobs(settings: Settings) -> list[Job]:
    """The scheduler's jobs, each package's own."""
    from alerts import jobs as alerts_jobs
    from events import jobs as events_jobs
    from telemed import jobs as core_jobs
    from wounds import jobs as wounds_jobs

    return [
        *core_jobs.jobs(settings),
        *alerts_jobs.jobs(settings),
        *wounds_jobs.jobs(settings),
        *events_jobs.jobs(settings),
    ]


def register_reading_hooks() -> None:
    """Every process that stores readings (the API, the ingest workers, the command line) calls
    this at start: the alert rules run inside the transaction that stores the readings, and
    `telemed.readings.store` refuses to store readings in a process that did not."""
    from alerts.hooks import after_readings
    from telemed import readings

    readings.register_hook("alerts", after_readings)
