"""One typed settings object, read once at start: telemed.settings is the only module that reads
the environment, no module reads settings when imported, every variable is in
docs/deployment.md with its default, and a value that does not parse refuses the start."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import msgspec
import pytest

from app.supervise import Backoff
from events.notify import RetryPolicy, UrlPolicy
from ingest.worker import Options, options_from_settings
from telemed.settings import (
    REPO_ROOT,
    IngestSettings,
    SchedulerSettings,
    SupervisorSettings,
    WebhookSettings,
    WoundSettings,
    load_settings,
)
from wounds import media
from wounds.multipart import UploadLimits

PACKAGES = ("app", "telemed", "alerts", "devices", "events", "ingest", "wounds")
SETTINGS = REPO_ROOT / "telemed" / "settings.py"


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _environment_reads(path) -> list[str]:
    """Where a module touches the environment: os.environ, os.getenv, or either imported."""
    tree = ast.parse(path.read_text(), str(path))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            hits.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = {a.name for a in node.names} & {"environ", "getenv", "environb"}
            hits += [f"{path.name}:{node.lineno} from os import {n}" for n in sorted(names)]
    return hits


def test_only_the_settings_module_reads_the_environment() -> None:
    reads = {
        str(path.relative_to(REPO_ROOT)): hits
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if path != SETTINGS and (hits := _environment_reads(path))
    }
    assert reads == {}
    assert _environment_reads(SETTINGS)  # the check sees what it looks for


def test_no_module_reads_the_environment_or_the_settings_when_imported() -> None:
    """Every module imported in a process whose environment records each TELEMED_* variable
    read, and whose load_settings refuses to run."""
    code = f"""
import importlib, json, os, sys

class Recording(dict):
    read = set()
    def _note(self, key):
        if isinstance(key, str) and key.startswith("TELEMED_"):
            Recording.read.add(key)
    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)
    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)
    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)

os.environ = Recording(os.environ)
import telemed.settings
def refuse(*args, **kwargs):
    raise RuntimeError("load_settings called while importing")
telemed.settings.load_settings = refuse
failed = {{}}
for name in {_modules()!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
print(json.dumps({{"read": sorted(Recording.read), "failed": failed}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"read": [], "failed": {}}


def test_every_variable_is_in_the_deployment_guide_with_its_default() -> None:
    read = set(re.findall(r'"(TELEMED_[A-Z0-9_]+)"', SETTINGS.read_text()))
    read |= {f"TELEMED_SCHEDULER_{f.upper()}" for f in SchedulerSettings.__struct_fields__}
    read.discard("TELEMED_SCHEDULER_")
    guide = (REPO_ROOT / "docs" / "deployment.md").read_text()
    table = guide.split("\n## Application settings\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(TELEMED_[A-Z0-9_]+)` \| ([^|]+) \|", table, re.M))
    assert sorted(read - rows.keys()) == []  # read, but not in the table
    assert sorted(rows.keys() - read) == []  # in the table, but read nowhere
    # Each number in the table is the default of the field its variable sets.
    base = {"TELEMED_STATE_DIR": str(REPO_ROOT / ".dev" / "test")}
    defaults = _flat(load_settings(base))
    checked = 0
    for name, cell in rows.items():
        if not re.fullmatch(r"\d+(\.\d+)?", cell.strip()):
            continue
        for probe in ("7", "1"):  # a flag takes only 1
            changed = _flat(load_settings({**base, name: probe}))
            fields = [f for f, v in changed.items() if v != defaults[f]]
            if fields:
                break
        assert fields, f"{name} changes nothing"
        numbers = [f for f in fields if isinstance(defaults[f], bool | int | float)]
        if numbers:  # the variable's own field (a port also moves the TLS port after it)
            assert any(defaults[f] == float(cell) for f in numbers), (name, cell, numbers)
            checked += 1
    assert checked >= 50


def _flat(settings) -> dict:
    out = {}
    for name, value in msgspec.structs.asdict(settings).items():
        if isinstance(value, msgspec.Struct):
            out |= {f"{name}.{k}": v for k, v in msgspec.structs.asdict(value).items()}
        else:
            out[name] = value
    return out


def test_the_parts_defaults_are_the_settings_defaults() -> None:
    """Structs that parts build from settings keep defaults of their own (for tests and
    callers); they must be the ones a deployment gets."""
    assert UploadLimits.from_settings(WoundSettings()) == UploadLimits()
    assert RetryPolicy.from_settings(WebhookSettings()) == RetryPolicy()
    assert UrlPolicy.from_settings(WebhookSettings()) == UrlPolicy()
    assert Backoff.from_settings(SupervisorSettings()) == Backoff()
    assert (
        options_from_settings(IngestSettings(), slot=0, batch_size=5000, batch_ms=50) == Options()
    )
    assert WoundSettings().sweep_grace_h * 3600 == media.GRACE_S
    assert WoundSettings().orphans_keep_days == media.ORPHANS_KEEP_DAYS


def test_groups_read_their_variables(tmp_path) -> None:
    env = {
        "TELEMED_STATE_DIR": str(tmp_path),
        "TELEMED_SSE_HEARTBEAT_S": "0.5",
        "TELEMED_WEBHOOK_ALLOWED_HOSTS": " Engine.Internal, 127.0.0.1 ,",
        "TELEMED_INGEST_LANES": "0",
        "TELEMED_WOUND_SANITIZE_THREADS": "3",
        "TELEMED_SCHEDULER_ESCALATIONS_S": "30",
        "TELEMED_SCHEDULER_RETENTION_S": "",
        "TELEMED_READY_DB_GRACE_S": "7",
        "TELEMED_UP_RESTART_MAX_S": "9",
        "TELEMED_WEB_SECRET": "s" * 40,
    }
    s = load_settings(env)
    assert s.events.heartbeat_s == 0.5
    assert s.webhooks.allowed_hosts == {"engine.internal", "127.0.0.1"}
    assert s.ingest.lanes == 1  # at least one
    assert s.wounds.sanitize_threads == 3
    # Wound cases escalate as often as alerts unless told otherwise; empty is unset here.
    assert (s.scheduler.escalations_s, s.scheduler.wound_escalations_s) == (30, 30)
    assert s.scheduler.retention_s == SchedulerSettings().retention_s
    assert s.readiness.database_grace_s == 7 and s.up.restart_max_s == 9
    assert s.web_secret == "s" * 40 and s.state_dir == tmp_path
    with pytest.raises(AttributeError):
        s.pool_max = 3  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("name", "value"),
    [("TELEMED_POOL_MAX", "ten"), ("TELEMED_SSE_MAX_S", "5 min"), ("TELEMED_INGEST_LANES", "2,5"),
     ("TELEMED_INGEST_INBOX_MAX", "17,5"), ("TELEMED_INGEST_INBOX_MAX", "4 cm"),
     ("TELEMED_INGEST_INBOX_MAX", ""), ("TELEMED_INGEST_KEEPALIVE_S", "thirty"),
     ("TELEMED_INGEST_KEEPALIVE_S", "2.5")],
)  # fmt: skip
def test_a_value_that_does_not_parse_is_refused_by_name(tmp_path, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        load_settings({"TELEMED_STATE_DIR": str(tmp_path), name: value})


def test_a_command_with_a_bad_setting_refuses_to_start(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TELEMED_STATE_DIR": str(tmp_path), "TELEMED_POOL_MAX": "ten"}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "rules", "coverage"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to start: TELEMED_POOL_MAX: 'ten' is not a whole number" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [("TELEMED_INGEST_INBOX_MAX", "-5", "TELEMED_INGEST_INBOX_MAX must be at least 0, not -5"),
     ("TELEMED_INGEST_KEEPALIVE_S", "0", "TELEMED_INGEST_KEEPALIVE_S must be 1 to 65535, not 0"),
     ("TELEMED_INGEST_KEEPALIVE_S", "70000",
      "TELEMED_INGEST_KEEPALIVE_S must be 1 to 65535, not 70000")],
)  # fmt: skip
def test_the_ingest_worker_refuses_settings_out_of_range(tmp_path, name, value, refusal) -> None:
    from ingest.worker import check_settings

    assert check_settings(load_settings({"TELEMED_STATE_DIR": str(tmp_path)})) is None
    settings = load_settings({"TELEMED_STATE_DIR": str(tmp_path), name: value})
    assert check_settings(settings) == refusal
