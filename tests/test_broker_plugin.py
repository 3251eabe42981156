"""The broker plugin's own code under AddressSanitizer and UndefinedBehaviorSanitizer: the
decided cases and a few thousand hostile control messages, account files, logins and topics
(devices/broker_plugin/harness.c). Needs only what scripts/services installs to build the
plugin (gcc, mosquitto-dev, uthash-dev, libssl-dev); gcc's sanitizer runtimes come with it."""

from __future__ import annotations

import subprocess

from telemed.settings import REPO_ROOT

PLUGIN = REPO_ROOT / "devices" / "broker_plugin"
# The plugin's own files, as scripts/services builds them: every .c in its folder but the harness.
SOURCES = sorted(str(p) for p in PLUGIN.glob("*.c") if p.name != "harness.c")


def test_the_plugin_decides_as_it_should_and_survives_hostile_input_under_sanitizers(tmp_path):
    exe = tmp_path / "harness"
    subprocess.run(
        ["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-DTELEMED_AUTH_HARNESS", "-g", "-O1",
         "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-o", str(exe), str(PLUGIN / "harness.c"), *SOURCES,
         "-lcrypto"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    scratch = tmp_path / "files"
    scratch.mkdir()
    for seed in ("1", "20261207"):
        run = subprocess.run(
            [str(exe), str(scratch), "6000", seed],
            capture_output=True,
            text=True,
            timeout=300,
            env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "PATH": "/usr/bin:/bin"},
        )
        lines = run.stdout.splitlines()
        assert run.returncode == 0, (seed, run.stdout[-2000:], run.stderr[-4000:])
        assert not [line for line in lines if line.startswith("FAIL")], lines
        assert len([line for line in lines if line.startswith("ok ")]) >= 28, lines
        assert lines[-1].startswith("ok 6000 hostile inputs"), lines[-1]
        assert "runtime error" not in run.stderr and "Sanitizer" not in run.stderr, run.stderr


def test_the_broker_s_plugin_exports_only_mosquittos_entry_points(settings):
    """The plugin's files share their functions as hidden symbols: the broker finds its three
    entry points and nothing else, so none of the plugin's names (`control`, `apply`,
    `accounts`...) can bind to a symbol of the broker or of another plugin, and a file left out
    of the build fails the link instead of the broker's start."""
    so = settings.broker_dir / "telemed_auth.so"
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(so)], check=True, capture_output=True, text=True
    )
    exported = sorted(line.split()[-1] for line in nm.stdout.splitlines() if line.strip())
    assert exported == [
        "mosquitto_plugin_cleanup",
        "mosquitto_plugin_init",
        "mosquitto_plugin_version",
    ], exported
