"""The carve bench's report: one JSON record, a Rich table and its Markdown twin."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.bench import carve_pg
from carveout.bench.carve_bench import DATA_LABEL, BackendRun, CarveBenchResult
from carveout.bench.carve_load import KINDS, MIX
from carveout.bench.carve_windows import (
    Request,
    overlapping,
    rate,
    started_in,
    stats,
    write_rate,
)
from carveout.bench.servers import server_errors, tracebacks

# The load target counts writes: rows the ledger checks (each watch event of a batch,
# each like, comment and follow). Requests per second are reported next to it.
TARGET_WRITES_S = 400.0
WARMUP_S = 1.0  # the first second of load (connections opening) is not the quiet reference


def _fence_windows(run: BackendRun) -> list[tuple[float, float]]:
    if run.measure is not None:
        return [run.measure.fence]
    return run.chaos.fence_windows if run.chaos is not None else []


def run_json(run: BackendRun, batch: int) -> dict[str, Any]:
    if run.skipped or run.load is None:
        return {"backend": run.backend, "skipped": run.skipped}
    load = run.load
    per_kind = [batch if k == "events" else 1 for k in KINDS]
    reqs: list[Request] = load.requests
    a, b = run.carve_window
    fences = _fence_windows(run)
    quiet_from = load.started + WARMUP_S
    out: dict[str, Any] = {
        "backend": run.backend,
        "data": run.data,
        "writers": run.writers,
        "load": {
            "requests": len(reqs),
            "errors": load.errors,
            "server_errors": load.server_errors,
            "first_error": load.first_error or None,
            # The server's tracebacks when it answered 5xx (the whole log: save_server_logs).
            "server_tracebacks": server_errors(run.server_log) if run.server_log else None,
            "skipped_at_in_flight_cap": load.skipped,
            "acked_rows": load.ledger.acked(),
            "requests_per_s_before_carve": round(rate(reqs, quiet_from, a), 1),
            "requests_per_s_during_carve": round(rate(reqs, a, b), 1),
            "requests_per_s_overall": round(rate(reqs, load.started, load.stopped), 1),
            "writes_per_s_before_carve": round(write_rate(reqs, quiet_from, a, per_kind), 1),
            "writes_per_s_during_carve": round(write_rate(reqs, a, b, per_kind), 1),
            "writes_per_s_overall": round(
                write_rate(reqs, load.started, load.stopped, per_kind), 1
            ),
            "moving_share": round(sum(1 for r in reqs if r[2]) / len(reqs), 3) if reqs else 0,
        },
        "carve_seconds": round(b - a, 2),
        "pause": {
            "fence_windows_ms": [round((e - s) * 1000, 1) for s, e in fences],
            "moving_in_fence": stats(overlapping(reqs, fences, True)).as_json(),
            "staying_in_fence": stats(overlapping(reqs, fences, False)).as_json(),
            "moving_before_carve": stats(started_in(reqs, quiet_from, a, True)).as_json(),
            "staying_before_carve": stats(started_in(reqs, quiet_from, a, False)).as_json(),
            "moving_during_carve": stats(started_in(reqs, a, b, True)).as_json(),
            "staying_during_carve": stats(started_in(reqs, a, b, False)).as_json(),
        },
        "baselines": [c.as_json() for c in run.baselines],
        "ledger": run.ledger.as_json() if run.ledger else None,
        "rows_to_copy_at_start": run.rows_to_copy,
    }
    if run.server:
        out["server"] = run.server
    if run.measure is not None:
        out["carve"] = run.measure.as_json()
        # Where in the carve each side's slow requests fall: requests by the phase they
        # started in (the cutover's includes its fence).
        phases = run.measure.phase_started
        out["pause"]["by_phase"] = {
            phase: {
                side: stats(
                    started_in(reqs, start, run.measure.phase_ended[phase], moving)
                ).as_json()
                for side, moving in (("moving", True), ("staying", False))
            }
            for phase, start in phases.items()
            if phase in run.measure.phase_ended
        }
        if run.measure.replication:
            # No capture log to count: the source's rate is the client's moving writes.
            a_copy = run.measure.phase_ended.get("capture", a)
            b_copy = run.measure.phase_ended.get("copy", b)
            moving = [r for r in reqs if r[2]]
            out["carve"]["apply"]["source_j_write_requests_per_s_during_copy"] = round(
                rate(moving, a_copy, b_copy), 1
            )
    if run.chaos is not None:
        c = run.chaos
        out["chaos"] = {
            "kills_requested": c.requested,
            "kills": [vars(k) for k in c.kills],
            "attempts": c.attempts,
            "phase_seconds_final_attempts": {
                k.removeprefix("phase:"): v.get("seconds")
                for k, v in c.state.items()
                if k.startswith("phase:")
            },
            "copy_work": c.copy_work(run.rows_to_copy),
        }
    return out


def save_server_logs(result: CarveBenchResult, json_path: Path) -> dict[str, Path]:
    """Each backend's server log, when it answered any 5xx, beside the JSON record:
    `carve.json` -> `carve.postgresql.server.log`. Returns {backend: path}."""
    saved = {}
    for run in result.runs:
        if run.server_log:
            path = json_path.with_name(f"{json_path.stem}.{run.backend}.server.log")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(run.server_log, encoding="utf-8")
            saved[run.backend] = path
    return saved


def carve_json(result: CarveBenchResult, info: dict[str, Any]) -> dict[str, Any]:
    config = result.config
    return {
        "benchmark": "carve",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": info,
        "data": DATA_LABEL,
        "parameters": {
            "backends": list(config.backends),
            "moving": list(config.moving),
            "staying": list(config.staying),
            "target": config.target,
            "rate": config.rate,
            "batch": config.batch,
            "writers_per_country": config.writers_per_country,
            "before_seconds": config.before,
            "after_seconds": config.after,
            "max_in_flight": config.max_in_flight,
            "kill_at_random": config.kill_at_random,
            "kill_max_seconds": config.kill_max_s,
            "seed": config.seed,
            "mix": dict(zip(KINDS, MIX, strict=True)),
            "client": "lean HTTP/1.1 keep-alive client on uvloop in its own process, open loop, "
            "cap per side",
            "writes_basis": "acknowledged rows the ledger checks: each watch event of a batch, "
            "each like, comment and follow",
        },
        "runs": [run_json(r, config.batch) for r in result.runs],
    }


def _ms(s: dict[str, Any]) -> str:
    return f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} / {s['max_ms']:.0f}"


def rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, carveout, baseline or reference) for one backend's JSON."""
    if data.get("skipped"):
        return [("carve", data["skipped"], "")]
    load, pause, ledger = data["load"], data["pause"], data["ledger"]
    out = [
        (
            "writes/s (rows) before / during carve",
            f"{load['writes_per_s_before_carve']:,.0f} / {load['writes_per_s_during_carve']:,.0f}",
            f"target ≥ {TARGET_WRITES_S:.0f}",
        ),
        (
            "write requests/s before / during carve",
            f"{load['requests_per_s_before_carve']:,.0f} / "
            f"{load['requests_per_s_during_carve']:,.0f}",
            "an events request carries a batch",
        ),
        ("errors", f"{load['errors']}", "must be 0"),
        (
            "moving writes in fence: p50 / p99 / max ms",
            _ms(pause["moving_in_fence"]) + f" (n={pause['moving_in_fence']['requests']})",
            "before carve: " + _ms(pause["moving_before_carve"]),
        ),
        (
            "staying writes in fence: p50 / p99 / max ms",
            _ms(pause["staying_in_fence"]) + f" (n={pause['staying_in_fence']['requests']})",
            "before carve: " + _ms(pause["staying_before_carve"]),
        ),
        (
            "fence raised (ms)",
            ", ".join(f"{w:.0f}" for w in pause["fence_windows_ms"]) or "-",
            "",
        ),
        ("lost / duplicated writes", f"{ledger['lost']} / {ledger['duplicated']}", "must be 0 / 0"),
        ("acked rows checked", f"{ledger['acked_rows']:,}", ""),
    ]
    base = {b["name"]: b for b in data["baselines"]}
    if "carve" in data:
        c = data["carve"]
        copy = c["copy"]
        streaming = c["apply"].get("method") == "subscription streaming"
        how = " (subscription's copy + index builds)" if streaming else ""
        for name in (
            carve_pg.PG_DUMP_PSQL,
            carve_pg.PG_SUBSET,
            "SQLite backup API",
            "raw file copy",
        ):
            b = base.get(name)
            if b:
                ratio = copy["rows_per_s"] / b["rows_per_s"] if b["rows_per_s"] else 0.0
                out.append(
                    (
                        f"copy rows/s, MB/s vs {name}",
                        f"{copy['rows_per_s']:,.0f}, {copy['mb_per_s']:.1f}{how}",
                        f"{b['rows_per_s']:,.0f}, {b['mb_per_s']:.1f} (× {ratio:.3f} rows/s)",
                    )
                )
        ap = c["apply"]
        if streaming:
            src = ap["source_j_write_requests_per_s_during_copy"]
            out.append(
                (
                    "change apply: subscription streaming",
                    f"caught up to the source's LSN in {ap['catch_up_seconds']:.2f} s "
                    "(changes not counted)",
                    f"source's J write requests/s during copy: {src:,.0f}",
                )
            )
        else:
            src = ap["source_changes_per_s_during_copy"]
            out.append(
                (
                    "change apply vs source's J changes/s",
                    f"{ap['changes_per_s']:,.0f} ({ap['catch_up_changes']:,} changes)",
                    f"{src:,.0f}" + (f" (× {ap['changes_per_s'] / src:.0f})" if src else ""),
                )
            )
        v = c["verify"]
        out.append(
            (
                "verify rows/s (checksums) vs copy rows/s",
                f"{v['rows_per_s']:,.0f} ({v['rows']:,} rows; whole phase with the leak scan "
                f"{v.get('rows_per_s_whole_phase', v['rows_per_s']):,.0f})",
                f"{copy['rows_per_s']:,.0f}",
            )
        )
        out.append(("carve's own pause (ms)", f"{c['pause_ms_carve']}", "target p99 ≤ 250"))
        steps = ", ".join(f"{k} {v:.0f}" for k, v in (c.get("fence_steps_ms") or {}).items())
        out.append(("fence steps (ms)", steps, ""))
        phases = ", ".join(f"{k} {v:.2f}" for k, v in c["phase_seconds"].items())
        out.append(("phase seconds", phases, ""))
        windows = data["pause"].get("by_phase", {})
        for side in ("moving", "staying"):
            p99 = ", ".join(
                f"{k} {w[side]['p99_ms']:.0f}" for k, w in windows.items() if w[side]["requests"]
            )
            out.append((f"{side} writes p99 ms by phase started in", p99, ""))
        out.append(("leaks / verify mismatches", f"{c['leaks']} / {v['mismatches']}", "0 / 0"))
    if "chaos" in data:
        ch = data["chaos"]
        work = ch["copy_work"]
        out.append(
            (
                "SIGKILLs / attempts",
                f"{len(ch['kills'])} / {ch['attempts']}",
                f"asked {ch['kills_requested']}",
            )
        )
        by_phase: dict[str, int] = {}
        for k in ch["kills"]:
            by_phase[k["phase"]] = by_phase.get(k["phase"], 0) + 1
        out.append(("kills by phase", ", ".join(f"{p} {n}" for p, n in by_phase.items()), ""))
        out.append(
            (
                "copy rows: committed by killed + final attempt",
                f"{work['rows_committed_by_killed_attempts']:,} + "
                f"{work['rows_copied_by_final_attempt']:,} = {work['rows_copied_total']:,}",
                f"J rows at start {work['rows_to_copy_at_start']:,}; ≤ "
                f"{work['uncommitted_rows_redone_at_most']:,} uncommitted rows redone",
            )
        )
    return out


def carve_table(data: dict[str, Any]) -> list[Table]:
    tables = []
    for run in data["runs"]:
        table = Table(
            title=f"carve {','.join(data['parameters']['moving'])} → "
            f"{data['parameters']['target']} under live writes ({run['backend']})",
            caption=run.get("server"),
        )
        table.add_column("measure")
        table.add_column("carveout", justify="right")
        table.add_column("baseline / reference", justify="right")
        for row in rows(run):
            table.add_row(*row)
        tables.append(table)
    return tables


def carve_markdown(data: dict[str, Any]) -> str:
    out = []
    for run in data["runs"]:
        server = f" ({run['server']})" if run.get("server") else ""
        out.append(f"**{run['backend']}**{server}\n\n| measure | carveout | baseline / reference |")
        out.append("|---|--:|--:|")
        cells = [tuple(x.replace("|", "\\|") for x in row) for row in rows(run)]
        out += [f"| {a} | {b} | {c} |" for a, b, c in cells]
        out.append("")
    return "\n".join(out)


def notes(data: dict[str, Any]) -> list[str]:
    """Warnings the numbers need next to them."""
    out = []
    for run in data["runs"]:
        if run.get("skipped"):
            continue
        load = run["load"]
        if load["writes_per_s_during_carve"] < 0.95 * TARGET_WRITES_S:
            out.append(
                f"{run['backend']}: the load reached {load['writes_per_s_before_carve']:,.0f} "
                f"writes/s ({load['requests_per_s_before_carve']:,.0f} requests/s) before and "
                f"{load['writes_per_s_during_carve']:,.0f} during the carve "
                f"({load['skipped_at_in_flight_cap']:,} scheduled requests not sent at the "
                f"in-flight cap), short of the {TARGET_WRITES_S:.0f} writes/s target"
            )
        if load["skipped_at_in_flight_cap"]:
            out.append(
                f"{run['backend']}: {load['skipped_at_in_flight_cap']:,} scheduled requests "
                "were not sent at the in-flight cap: the server saturated at this rate, and "
                "queueing inflates every latency"
            )
        if load["errors"]:
            out.append(f"{run['backend']}: {load['errors']} errors; first: {load['first_error']}")
        if load.get("server_tracebacks"):
            where = load.get("server_log") or "the JSON record (server_tracebacks)"
            first = (tracebacks(load["server_tracebacks"]) or [load["server_tracebacks"]])[0]
            out.append(
                f"{run['backend']}: the server answered {load['server_errors']} requests with "
                f"5xx; its log is kept in {where}; the first traceback's end:\n{first[-3000:]}"
            )
    return out
