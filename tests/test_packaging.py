"""The project as it ships: every third-party module its code imports is declared, and a wheel
built from the tree, installed into a fresh virtual environment with the locked packages,
migrates an empty database, runs its commands and serves the app without the source tree."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import psycopg
import pytest
from packaging.utils import canonicalize_name

from telemed.settings import REPO_ROOT
from tests import lockfile, services

PACKAGES = ("app", "telemed", "devices", "ingest", "alerts", "events", "wounds")
FIRST_PARTY = {*PACKAGES, "migrations", "tests", "bench"}
# What each folder may import beyond the standard library: the extras it may rely on.
FOLDERS = {
    **{package: () for package in PACKAGES},
    "tests": ("test",),
    "bench": ("test", "bench"),
}
# Imported, but from somewhere other than .venv: bench/common.py installs mq-bridge into
# bench/.venv, where bench/mqbridge.py runs.
ELSEWHERE = {"mq_bridge"}


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in `folder` (absolute imports), with the files."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_imported_third_party_module_is_declared(folder):
    """A module that only arrives because another package needs it today can leave with that
    package's next release: each one imported must come from a requirement of pyproject.toml
    (the code's from `dependencies`, the tests' also from the `test` extra)."""
    declared = {canonicalize_name(r.name) for r in lockfile.declared(*FOLDERS[folder])}
    providers = packages_distributions()
    problems = []
    for module, files in sorted(_imports(REPO_ROOT / folder).items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module in ELSEWHERE:
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        where = ", ".join(sorted(files)[:3])
        if not dists:
            problems.append(f"{module} (imported by {where}) is provided by no installed package")
        elif not dists & declared:
            problems.append(
                f"{module} (imported by {where}) comes from {', '.join(sorted(dists))}, "
                "which pyproject.toml does not declare"
            )
    assert not problems, "\n".join(problems)


# --- the built wheel, installed -----------------------------------------------------------

# Not copied into the build: what the tree holds beside the sources (environments, state,
# caches, an earlier build whose leftovers would otherwise land in the wheel).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".dev", "build", "dist", "*.egg-info", "node_modules", "__pycache__",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "screenshots", "results",
)  # fmt: skip


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path  # its site-packages
    elsewhere: Path  # an empty folder to run from: nothing of the source tree is importable

    def env(self, service_env: dict[str, str], **extra: str) -> dict[str, str]:
        keep = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR") if k in os.environ}
        path = f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {**keep, **service_env, "PATH": path, **extra}

    def run(self, args: list[str], env: dict[str, str], timeout: float = 120):
        return subprocess.run(
            args, cwd=self.elsewhere, env=env, capture_output=True, text=True, timeout=timeout
        )


def _must(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    run = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    assert run.returncode == 0, f"{' '.join(args)}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """One wheel built from a copy of the tree with the locked build backend, installed with
    requirements-runtime.lock (hashes checked) into a new virtual environment, as
    docs/deployment.md says to."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO_ROOT, tmp / "src", ignore=_NOT_SOURCES, symlinks=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _must([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
           "-w", str(tmp / "dist"), str(tmp / "src")])  # fmt: skip
    (wheel,) = (tmp / "dist").glob("telemed-*.whl")

    venv = tmp / "venv"
    _must([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    into = [*pip, "--python", str(venv / "bin" / "python")]
    lock = str(lockfile.RUNTIME_LOCK)
    _must([*into, "install", "-q", "--no-deps", "--require-hashes", "-r", lock], timeout=900)
    _must([*into, "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # The wheel's own requirements are met by the locked run-time packages alone.
    _must([*into, "check"])
    (site,) = venv.glob("lib/python3*/site-packages")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Installed(venv, site, elsewhere)


def _data_files(package: str) -> list[Path]:
    """The files of a package in the tree that are not Python: what the code reads at run time
    (SQL, migrations, templates, static assets with the vendored ones, the plugin's source)."""
    root = REPO_ROOT / package
    return sorted(
        p.relative_to(REPO_ROOT)
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".pyc")
        and not any(part.startswith(".") or part in ("node_modules", "__pycache__")
                    for part in p.relative_to(root).parts)
    )  # fmt: skip


@pytest.mark.slow
def test_the_wheel_holds_every_file_the_code_reads(installed):
    missing = [
        str(rel)
        for package in (*PACKAGES, "migrations")
        for rel in _data_files(package)
        if not (installed.site / rel).is_file()
        or (installed.site / rel).read_bytes() != (REPO_ROOT / rel).read_bytes()
    ]
    assert not missing, f"not in the wheel as in the tree: {missing}"
    vendor = installed.site / "app" / "web" / "static" / "vendor" / "uPlot.iife.min.js"
    assert vendor.is_file(), "the pages' uPlot is not in the wheel: run scripts/web-assets first"
    migrations = sorted(p.name for p in (installed.site / "migrations").glob("*.sql"))
    assert migrations == sorted(p.name for p in (REPO_ROOT / "migrations").glob("*.sql"))


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
tops = ("app", "telemed", "devices", "ingest", "alerts", "events", "wounds", "migrations")
for top in tops:
    for info in pkgutil.walk_packages(importlib.import_module(top).__path__, top + "."):
        importlib.import_module(info.name)
mine = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.split(".")[0] in tops}
print(json.dumps({"modules": mine}))
"""


@pytest.mark.slow
def test_every_module_imports_from_the_installed_package(installed, service_env):
    """Importing a module loads its SQL files (Queries at import): all of them, every one from
    site-packages."""
    run = installed.run(
        [str(installed.venv / "bin" / "python"), "-c", _IMPORT_ALL],
        installed.env(service_env, TELEMED_STATE_DIR=str(installed.elsewhere.parent / "state")),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout)
    outside = {
        n: f for n, f in found["modules"].items() if not str(f).startswith(str(installed.site))
    }
    assert not outside, f"imported from outside the installed package: {outside}"
    in_tree = sum(1 for p in PACKAGES for _ in (REPO_ROOT / p).rglob("*.py"))
    assert len(found["modules"]) >= in_tree


@dataclass(frozen=True)
class Migrated:
    owner_dsn: str
    env: dict[str, str]  # the installed commands' environment, on this database
    migrate: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def migrated(installed, service_env, tmp_path_factory):
    """An empty database of the owner role (as the `empty_db` fixture makes one), migrated by
    the installed `telemed migrate`."""
    name = f"telemed_wheel_{uuid.uuid4().hex[:8]}"
    server = services.role_dsn(service_env["TELEMED_DSN"], "superuser").rpartition("/")[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {services.OWNER_ROLE}')
    owner = services.role_dsn(f"{server}/{name}", "owner")
    state = tmp_path_factory.mktemp("state")
    env = installed.env(
        service_env,
        TELEMED_STATE_DIR=str(state),
        TELEMED_MEDIA_DIR=str(state / "media"),
        TELEMED_OWNER_DSN=owner,
        TELEMED_DSN=services.role_dsn(owner, "app"),
    )
    env.pop("TELEMED_MIGRATIONS_DIR", None)
    try:
        yield Migrated(owner, env, installed.run(["telemed", "migrate"], env, timeout=300))
    finally:
        services.drop_database(owner)


# What a migrated database is made of, beyond its name: compared between the installed
# wheel's migrations and the source tree's.
_SCHEMA = {
    "extensions": "SELECT extname, extversion FROM pg_extension",
    "migrations": "SELECT filename, sha256 FROM schema_migrations",
    "relations": "SELECT relname, relkind::text, pg_get_userbyid(relowner) FROM pg_class"
    " WHERE relnamespace = 'public'::regnamespace",
    "columns": "SELECT table_name, column_name, data_type, udt_name, is_nullable,"
    " column_default, character_maximum_length FROM information_schema.columns"
    " WHERE table_schema = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "functions": "SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc),"
    " prosecdef, provolatile::text, pg_get_userbyid(proowner) FROM pg_proc"
    " WHERE pronamespace = 'public'::regnamespace",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
    " WHERE NOT tgisinternal",
    "enums": "SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_enum e"
    " JOIN pg_type t ON t.oid = e.enumtypid",
    "grants": "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants"
    " WHERE table_schema = 'public'",
    "column_grants": "SELECT table_name, column_name, grantee, privilege_type"
    " FROM information_schema.column_privileges WHERE table_schema = 'public'",
    "routine_grants": "SELECT routine_name, grantee, privilege_type"
    " FROM information_schema.routine_privileges WHERE routine_schema = 'public'",
    "hypertables": "SELECT hypertable_name, num_dimensions"
    " FROM timescaledb_information.hypertables",
    "dimensions": "SELECT hypertable_name, column_name, time_interval::text"
    " FROM timescaledb_information.dimensions",
}


def _schema(dsn: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = {
            key: sorted(conn.execute(sql).fetchall(), key=repr) for key, sql in _SCHEMA.items()
        }
        tables = [r[0] for r in found["relations"] if r[1] in ("r", "p")]
        found["rows"] = [
            (t, conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in sorted(tables)
        ]
    return found


@pytest.mark.slow
def test_the_installed_wheel_migrates_an_empty_database_as_the_tree_does(
    installed, migrated, service_env
):
    run = migrated.migrate
    assert run.returncode == 0, run.stderr[-3000:]
    count = len(list((REPO_ROOT / "migrations").glob("*.sql")))
    assert run.stdout.startswith(f"migrations: {count} applied ("), run.stdout
    reference = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    try:
        theirs = _schema(services.role_dsn(reference, "owner"))
    finally:
        services.drop_database(reference)
    ours = _schema(migrated.owner_dsn)
    assert ours["migrations"] and ours["relations"] and ours["rows"]
    differ = {
        key: {"wheel only": sorted(set(ours[key]) - set(theirs[key]), key=repr)[:5],
              "tree only": sorted(set(theirs[key]) - set(ours[key]), key=repr)[:5]}
        for key in ours
        if ours[key] != theirs[key]
    }  # fmt: skip
    assert not differ, differ
    again = installed.run(["telemed", "migrate"], migrated.env)
    assert again.returncode == 0 and again.stdout.strip() == "migrations: 0 applied", again


@pytest.mark.slow
def test_the_installed_command_line_answers(installed, migrated):
    help_ = installed.run(["telemed", "--help"], migrated.env)
    assert help_.returncode == 0, help_.stderr
    for command in ("migrate", "serve", "ingest", "scheduler", "devices", "rules", "up"):
        assert command in help_.stdout, help_.stdout
    coverage = installed.run(["telemed", "rules", "coverage"], migrated.env)
    assert coverage.returncode == 0, coverage.stdout + coverage.stderr
    assert "copd severe:" in coverage.stdout
    assert "accepted strata have rules" in coverage.stderr


_SERVE = """
import json, socket, sys, threading, time, urllib.error, urllib.request
import uvicorn
import app.asgi
from telemed.settings import load_settings

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
application = app.asgi.create_app(load_settings())
server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_config=None))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.monotonic() + 60
while not server.started:
    if not thread.is_alive() or time.monotonic() > deadline:
        sys.exit("the app did not start")
    time.sleep(0.05)

def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

found = {path: get(path) for path in json.loads(sys.argv[1])}
found["app_module"] = app.asgi.__file__
server.should_exit = True
thread.join(30)
print(json.dumps(found))
"""


@pytest.mark.slow
def test_the_installed_app_starts_and_serves(installed, migrated):
    """create_app from the installed package, under uvicorn: /livez answers, a page renders its
    template, the static files (the vendored ones too) are served from the package, and the
    domains' routes (alerts, devices, wounds) are mounted by the app's wiring."""
    paths = ["/livez", "/login", "/static/css/app.css", "/static/vendor/uPlot.iife.min.js",
             "/schema/openapi.json"]  # fmt: skip
    python = str(installed.venv / "bin" / "python")
    run = installed.run([python, "-c", _SERVE, json.dumps(paths)], migrated.env, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout)
    assert found["app_module"].startswith(str(installed.site))
    assert found["/livez"] == [200, json.dumps({"status": "alive"}, separators=(",", ":"))]
    for path in paths[1:]:
        assert found[path][0] == 200, (path, found[path][1][:300])
    assert "<form" in found["/login"][1]
    vendor = REPO_ROOT / "app" / "web" / "static" / "vendor" / "uPlot.iife.min.js"
    assert found["/static/vendor/uPlot.iife.min.js"][1] == vendor.read_text()
    api = json.loads(found["/schema/openapi.json"][1])["paths"]
    assert any(p.startswith("/api/v1/alerts") for p in api), sorted(api)
