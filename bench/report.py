"""The tables of docs/benchmarks.md, written from the stored results under bench/results/.

    python -m bench.report           # rewrite the generated blocks of docs/benchmarks.md
    python -m bench.report --check   # exit 1 if a block differs from what would be written

A block sits between `<!-- results NAME: FILE, ... -->` and `<!-- /results NAME -->`; the
opening marker names the results files its rows come from. BLOCKS below says, per block, which
files (paths under bench/results/, or glob patterns there) and which columns. Every row begins
with its run: date (UTC), commit and command line, as the result records them. A row from
bench/results/<bench>.json is labelled latest, and writing refuses to if that file is not the
newest stored run of its benchmark.
"""

from __future__ import annotations

import argparse
import re
import sys

from bench.stored import BLOCK, DOC, Block, col, get, num, pct, span


def _phases(result: dict, names: tuple[str, ...]) -> list[tuple[str, dict]]:
    return [(n, result["phases"][n]) for n in names if n in result.get("phases", {})]


def _transactions(phase: dict) -> str:
    """A paced phase records its transactions in detail, a drain only how many there were."""
    found = phase.get("transactions")
    return num(found.get("count") if isinstance(found, dict) else found)


def _profile(result: dict) -> list[tuple[str, dict]]:
    profile = result.get("profile") or {}
    rows = [("thread", name, share) for name, share in profile.get("threads_percent", [])]
    rows += [("inclusive", n, s) for n, s in profile.get("project_inclusive_percent", [])[:8]]
    rows += [("own", n, s) for n, s in profile.get("self_percent", [])[:8]]
    return [(kind, {"frame": name, "share": share}) for kind, name, share in rows]


def _ingest_locks(r: dict) -> str:
    shares = [
        get(r, f"phases.{p}.lock_waits.waiting_for_patient_locks_share")
        for p in ("paced_5k", "paced_10k", "sustained", "drain")
    ]
    return "—" if all(s is None for s in shares) else " / ".join(pct(s) for s in shares)


def _alerts(r: dict) -> str:
    return " / ".join(
        f"{num(get(r, f'phases.{p}.alerts_raised'))} of {num(get(r, f'phases.{p}.breaches_sent'))}"
        for p in ("paced_5k", "paced_10k")
    )


def _load(data: dict) -> str:
    before = get(data, "memory_measured.load.load_before") or get(data, "machine.load_before")
    after = get(data, "memory_measured.load.load_after") or get(data, "machine.load_after")
    if before is None:
        before, after = data.get("loadavg_before"), data.get("loadavg_after")
    return f"{num(before)} → {num(after)}"


def _bodies(r: dict) -> str:
    statuses = ", ".join(map(str, get(r, "big_sign_in_bodies.statuses") or []))
    return f"{statuses}; {span(get(r, 'big_sign_in_bodies.sent_before_refusal_mib') or [])}"


def _kinds(result: dict) -> list[tuple[str, dict]]:
    """The MQTT drains (mqtt_clients, inflow): each kind's medians with its rounds, in the
    summary's order (a ratio row such as bounded_vs_unbounded has no rounds)."""
    rows = []
    for kind, summary in result["summary"].items():
        rounds = [r for r in result["runs"] if r["kind"] == kind]
        rows.append((kind, {**summary, "rounds": rounds}))
    return rows


def _inflow_kinds(result: dict) -> list[tuple[str, dict]]:
    """The bounded variant labelled with its mark, the ratio row as bounded / unbounded."""
    labels = {"bounded": f"bounded (mark {num(result.get('mark'))})"}
    return [(labels.get(k, k).replace("_vs_", " / "), d) for k, d in _kinds(result)]


def _crash_settings(result: dict) -> list[tuple[str, dict]]:
    return [(f"`{s['setting']}`", s) for s in result["settings"].values()]


def _processes(result: dict) -> list[tuple[str, dict]]:
    return [(p, {**row, "result": result}) for p, row in result["processes"].items()]


def _puback(result: dict) -> list[tuple[str, dict]]:
    what = {
        "baseline": lambda p: "nothing else",
        "changes": lambda p: (
            f"{num(p.get('provisioned'))} provisioned and {num(p.get('revoked'))} revoked,"
            " one per transaction"
        ),
        "bulk": lambda p: (
            f"{num(p.get('devices'))} enrolled in one transaction ({num(p.get('seconds'))} s)"
        ),
        "full_sync": lambda p: (
            f"full sync of {num(p.get('devices'))} accounts ({num(p.get('seconds'))} s)"
        ),
    }
    return [
        (
            name,
            {
                **result["puback"][name],
                "what": what[name](result["phases"].get(name, {})),
                "ratio": result["max_delay_ratio"][name],
            },
        )
        for name in what
        if name in result["puback"]
    ]


# Which results files each block of docs/benchmarks.md shows, and its columns. A new section:
# one entry here and the two marker lines where its table goes in the doc.
BLOCKS: dict[str, Block] = {
    "ingest-runs": Block(
        files=["runs/ingest-*.json", "ingest.json"],
        columns=[
            col("devices", "config.devices"),
            col("paced 5k p50 / p99 ms", "paced_5k_p50_ms", "paced_5k_p99_ms"),
            col("paced 10k p50 / p99 ms", "paced_10k_p50_ms", "paced_10k_p99_ms"),
            col("alert p50 / p99 ms", "alert_p50_ms", "alert_p99_ms"),
            col("sustained readings/s", "sustained_readings_per_s"),
            col(
                "drain ours / minimal / mq-bridge readings/s",
                "drain_readings_per_s",
                "baseline_drain_readings_per_s",
                "mqbridge_drain_readings_per_s",
            ),
            col("drain ratio", "drain_ratio"),
            col("mq-bridge ratio", "mqbridge_ratio"),
            ("alerts raised 5k / 10k", _alerts),
            ("waiting for patient locks 5k / 10k / sustained / drain %", _ingest_locks),
        ],
    ),
    "ingest-phases": Block(
        files=["ingest.json"],
        items=lambda r: _phases(r, ("paced_5k", "paced_10k", "drain", "baseline", "mqbridge")),
        item_header="phase",
        columns=[
            col(
                "cores: consumer / PostgreSQL / Mosquitto",
                "cores_used.consumer",
                "cores_used.postgres",
                "cores_used.mosquitto",
            ),
            ("transactions", _transactions),
            col("transaction p50 / p99 ms", "transactions.ms.p50", "transactions.ms.p99"),
            col("rows per transaction p50", "transactions.rows_p50"),
        ],
    ),
    "ingest-profile": Block(
        files=["ingest.json"],
        items=_profile,
        item_header="samples of one worker in the drain",
        columns=[("frame", lambda d: f"`{d['frame']}`"), col("% of samples", "share")],
    ),
    "wound-timings": Block(
        files=[
            "runs/wound_upload-2026-12-01T1112-b749b0b.json",
            "runs/wound_upload-2026-12-01T1412-355959e.json",
            "wound_upload.json",
        ],
        columns=[
            ("load before → after", _load),
            col("sequential p50 / p95 ms", "sequential.p50_ms", "sequential.p95_ms"),
            col("sequential uploads/s", "sequential.uploads_per_s"),
            col(
                "2 clients p50 ms / uploads/s", "concurrent.2.p50_ms", "concurrent.2.uploads_per_s"
            ),
            col(
                "4 clients p50 ms / uploads/s", "concurrent.4.p50_ms", "concurrent.4.uploads_per_s"
            ),
            col("Pillow alone ms", "pillow_only_ms"),
            col("`sanitize` alone ms", "sanitize_ms"),
            col("server CPU ms per upload", "cpu.server_ms_per_upload"),
            col("p50 / Pillow", "ratio_p50_to_pillow"),
            col("server CPU / Pillow", "cpu.ratio_server_to_pillow"),
        ],
    ),
    "wound-memory": Block(
        files=["runs/wound_upload-2026-12-07T1343-91cfe30.json", "wound_upload.json"],
        meta="memory_measured",
        columns=[
            ("load before → after", _load),
            col("idle MiB", "rss_mib_idle"),
            col("12 MP JPEG: peak / kept MiB", "peak_rss_mib_jpeg_12mp", "rss_mib_after_jpeg_12mp"),
            col(
                "7000 × 7000 PNG: peak / kept MiB",
                "peak_rss_mib_png_7000_alpha",
                "rss_mib_after_png_7000_alpha",
            ),
            col("PNG peak / idle", "ratio_png_peak_to_idle"),
            col("PNG upload ms", "png_7000_alpha_upload_ms"),
        ],
    ),
    "provisioning-run": Block(
        files=["provisioning.json", "runs/provisioning-*.json"],
        columns=[
            col("enrolled devices", "enrolment.devices"),
            col("enrolment s / devices/s", "enrolment.seconds", "enrolment.per_second"),
            col("single changes/s", "phases.changes.per_second"),
            col("registered at the end", "registered_devices"),
            col("snapshot bytes", "snapshot_bytes"),
            col("broker restart s", "broker_restart_s"),
        ],
    ),
    "provisioning-puback": Block(
        files=["provisioning.json", "runs/provisioning-*.json"],
        items=_puback,
        item_header="phase",
        columns=[
            ("while", lambda d: d["what"]),
            col("probe PUBACK p50 / p99 / max ms", "p50_ms", "p99_ms", "max_ms", digits=2),
            col("max vs baseline", "ratio"),
        ],
    ),
    "broker-crash": Block(
        files=["runs/broker_crash-*.json", "broker_crash.json"],
        items=_crash_settings,
        item_header="setting",
        columns=[
            (
                "lost, per run",
                lambda s: " / ".join(
                    f"{num(r['lost'])} of {num(r['acknowledged'])}" for r in s["runs"]
                ),
            ),
            col("window, worst s", "loss_window_max_s"),
            ("publishing took s", lambda s: span([r.get("publish_s") for r in s["runs"]])),
            col("throughput msg/s", "throughput_msg_s"),
            col("ratio", "throughput_ratio"),
        ],
    ),
    "mqtt-clients": Block(
        files=["mqtt_clients.json"],
        items=_kinds,
        item_header="client",
        columns=[
            col("messages/s", "messages_per_s"),
            col("client CPU µs/message", "client_cpu_us_per_message"),
            col("broker CPU µs/message", "broker_cpu_us_per_message"),
            col("rate vs patched", "rate_vs_patched"),
            col("client CPU vs patched", "client_cpu_vs_patched"),
            ("messages/s, rounds", lambda d: span([r["messages_per_s"] for r in d["rounds"]])),
            (
                "client CPU µs, rounds",
                lambda d: span([r["client_cpu_us_per_message"] for r in d["rounds"]]),
            ),
            col("left unacknowledged", "left_unacknowledged"),
        ],
    ),
    "inflow": Block(
        files=["inflow.json"],
        items=_inflow_kinds,
        item_header="variant",
        columns=[
            col("messages/s", "messages_per_s"),
            col("client CPU µs/message", "client_cpu_us_per_message"),
            col("peak waiting", "peak_waiting"),
            col("RSS growth MiB", "rss_growth_mib"),
            col("left unacknowledged", "left_unacknowledged"),
            ("messages/s, rounds", lambda d: span([r["messages_per_s"] for r in d["rounds"]])),
            ("peak waiting, rounds", lambda d: span([r["peak_waiting"] for r in d["rounds"]])),
            ("reading held, rounds", lambda d: span([r["holds"] for r in d["rounds"]])),
        ],
    ),
    "audit-chain": Block(
        files=["audit_chain.json"],
        items=_processes,
        item_header="processes",
        columns=[
            ("load before → after", lambda d: _load(d["result"])),
            col("bare: chained / unchained tx/s", "bare.chain_tps", "bare.no_chain_tps"),
            col("ratio", "bare.ratio"),
            col("work: chained / unchained tx/s", "work.chain_tps", "work.no_chain_tps"),
            col("ratio", "work.ratio"),
        ],
    ),
    "signin": Block(
        files=["runs/signin-*.json", "signin.json"],
        columns=[
            ("load before → after", _load),
            col("idle p50 ms", "idle.p50_ms"),
            col("attack p50 / p95 ms", "attack.p50_ms", "attack.p95_ms"),
            col("**ratio**", "authme_p50_ratio_under_attack"),
            col(
                "throttled p50 ms / ratio",
                "throttled_attack.p50_ms",
                "authme_p50_ratio_under_throttled_attack",
            ),
            col(
                "sign-ins/s attack / throttled",
                "attack.sign_ins_per_s",
                "throttled_attack.sign_ins_per_s",
            ),
            col(
                "server CPU ms per sign-in attack / throttled",
                "attack.server_cpu_ms_per_sign_in",
                "throttled_attack.server_cpu_ms_per_sign_in",
            ),
            col(
                "wrong password known / unknown user p50 ms (ratio)",
                "unknown_vs_known.known_wrong_password_p50_ms",
                "unknown_vs_known.unknown_user_p50_ms",
                "unknown_vs_known.ratio_unknown_to_known",
            ),
            ("150 MiB bodies: statuses; MiB sent before refusal", _bodies),
            col(
                "server RSS before / after / peak MiB",
                "big_sign_in_bodies.server_rss_mib_before",
                "big_sign_in_bodies.server_rss_mib_after",
                "big_sign_in_bodies.server_peak_rss_mib",
            ),
        ],
    ),
}


def generate(text: str) -> str:
    """The doc with every block rewritten from the stored results."""
    seen: set[str] = set()

    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise KeyError(
                f"docs/benchmarks.md has a block {name!r} that bench/report.py does not know"
            )
        seen.add(name)
        return BLOCKS[name].render(name)

    out = BLOCK.sub(block, text)
    if missing := set(BLOCKS) - seen:
        raise KeyError(f"blocks missing from docs/benchmarks.md: {sorted(missing)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is not up to date")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = generate(text)
    if args.check:
        if new != text:
            print("docs/benchmarks.md differs from the stored results: python -m bench.report")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
