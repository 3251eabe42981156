"""The application: wires the core (telemed) and the domains (alerts, devices, ingest, wounds,
events) into processes — the HTTP app (asgi.py, api/, web/), the `telemed` command line
(cli.py), the scheduler, and `telemed up` with its supervisor. What plugs into what is listed
in wiring.py."""
