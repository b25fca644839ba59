"""The feed bench's table: serving latency, ANN against exact search, freshness (SYNTHETIC data)."""

from __future__ import annotations

from rich.table import Table

from carveout.bench.feed import FeedBenchResult
from carveout.bench.feed_http import HttpFeedResult


def feed_table(r: FeedBenchResult) -> Table:
    ann, exact = r.latency_ms["ann"], r.latency_ms["exact"]
    table = Table(
        title=f"carveout bench feed: {r.videos:,} videos, {r.creators:,} creators, "
        f"{r.viewers} viewers [{r.label}]",
        title_justify="left",
    )
    for name in ("measure", "value", "target"):
        table.add_column(name)
    serving = next((x for x in r.recall if x["expansion"] == r.serving_expansion), r.recall[-1])
    p99s = [x["p99"] for x in r.rounds]
    loads = [x["load_1min"] for x in r.rounds]
    table.add_row(
        f"feed of 20, in-process, ANN candidates ({len(r.rounds)} rounds pooled)",
        f"p50 {ann['p50']:.1f} ms · p99 {ann['p99']:.1f} ms; p99 per round "
        f"{min(p99s):.1f}-{max(p99s):.1f} ms at load {min(loads):.1f}-{max(loads):.1f}",
        "p99 <= 30 ms",
    )
    table.add_row(
        "same, exact search instead of the index",
        f"p50 {exact['p50']:.1f} ms · p99 {exact['p99']:.1f} ms "
        f"(ratio p99 {exact['p99'] / ann['p99']:.2f}x)",
        "baseline",
    )
    for row in r.recall:
        mark = " (serving)" if row["expansion"] == r.serving_expansion else ""
        table.add_row(
            f"ANN recall@100, expansion {int(row['expansion'])}{mark}",
            f"{row['recall']:.4f} · search p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms",
            ">= 0.95" if mark else "",
        )
    table.add_row(
        "exact search top-100",
        f"p50 {r.exact_search_ms['p50']:.2f} ms p99 {r.exact_search_ms['p99']:.2f} ms "
        f"(ratio p50 {r.exact_search_ms['p50'] / serving['p50']:.1f}x)",
        "baseline",
    )
    table.add_row(
        "event acknowledged -> changed feed",
        f"p95 {r.event_to_feed_ms['p95']:.0f} ms",
        "p95 <= 1000 ms",
    )
    table.add_row(
        f"new upload -> first impression at {r.traffic_rps:g} req/s",
        f"p95 {r.first_impression_ms['p95']:.0f} ms · max of {int(r.first_impression_ms['n'])}",
        "<= 10000 ms",
    )
    if r.swap is not None:
        w = r.swap
        for name, win, extra in (
            ("no swap", w.steady, ""),
            (
                "swap in the background",
                w.background,
                f"; swapped after {w.background_swap_s:.1f} s",
            ),
            ("load on the request (before)", w.on_request, f"; load {w.on_request_load_s:.1f} s"),
        ):
            table.add_row(
                f"feed of 20 in-process, open loop {w.rate:g} req/s, {win.seconds:.0f} s: {name}",
                f"p50 {win.p50_ms:.1f} ms · p99 {win.p99_ms:.1f} ms · max {win.max_ms:.0f} ms · "
                f"{win.requests} requests at load {win.load_1min:.1f}{extra}",
                "stated" if name == "swap in the background" else "baseline",
            )
    if r.http is not None:
        m, b = r.http.measured, r.http.baseline
        table.add_row(
            f"feed of 20 over HTTP, uvicorn 1 worker, open loop {r.http.rate:g} req/s",
            f"p50 {float(m['p50_ms']):.1f} ms · p99 {float(m['p99_ms']):.1f} ms · "
            f"max {float(m['max_ms']):.0f} ms · {m['requests']} requests, {m['errors']} errors",
            "stated rate",
        )
        table.add_row(
            "same server, GET /v1/health at the same rate",
            f"p50 {float(b['p50_ms']):.1f} ms · p99 {float(b['p99_ms']):.1f} ms · "
            f"{b['errors']} errors",
            "baseline",
        )
        table.add_row("while the HTTP feed was measured", _stall_notes(r.http), "")
    setup = ", ".join(f"{k} {v:.0f}" for k, v in r.setup_s.items())
    if r.http is not None:
        setup += f", http_server_load_s {r.http.server_load_s:.0f}"
    table.caption = f"setup (s): {setup}; peak memory {r.max_rss_mib:,.0f} MiB. All data synthetic."
    return table


def _stall_notes(http: HttpFeedResult) -> str:
    """Counts and the largest of each kind of note that could explain a stall (stall_notes.py)."""

    def summary(what: str, values: list[float]) -> str:
        return f"{what} {len(values)}" + (f" (max {max(values):.0f} ms)" if values else "")

    notes = http.server_notes
    return " · ".join(
        (
            summary("server collections ≥ 5 ms", [ms for _at, ms, _d in notes.get("gc", [])]),
            summary("server wake-ups ≥ 20 ms late", [ms for _at, ms, _d in notes.get("lag", [])]),
            summary("server requests ≥ 50 ms", [ms for _at, ms, _d in notes.get("slow", [])]),
            summary("client sends ≥ 20 ms late", [ms for _at, ms in http.client_late_sends]),
            summary("client collections ≥ 5 ms", [ms for _at, ms, _g in http.client_gc]),
        )
    )
