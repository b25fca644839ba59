"""`carveout bench privacy`: the command; wired into `carveout bench` by cli/bench.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carveout.cli.bench_common import DatasetsOpt, MarkdownOpt, bench_bars
from carveout.core import settings

DEFAULT_JSON = Path("benchmarks/results/privacy.json")

BENCH_PRIVACY_HELP = (
    "Access export and erasure p50/p95 for a typical and a heavy user, on SQLite and "
    "PostgreSQL, next to a plain SQL script in the same run."
    "\n\n"
    "Each backend gets a fresh cell with a SYNTHETIC population calibrated on KuaiRec and a "
    "trained recommender, served by uvicorn. Per run, a typical user (KuaiRec's median: 83 "
    "watches, 3 likes, 15 follows) and a heavy one (10,000 events, 500 comments, 50 videos) "
    "sign up over the API; their export (POST /v1/me/exports to the downloaded zip) and "
    "erasure (DELETE /v1/me to the receipt) are timed next to per-table SELECT-to-JSON and "
    "DELETE scripts. Every archive is checked row for row, every receipt against the rows the "
    "user had, and the cell's files are scanned byte by byte for the user's email, handle and "
    "display name after each erasure: a wrong receipt or a single hit fails the run. Targets: "
    "export p95 <= 1 s (typical user), erasure p95 <= 1 s."
)


def bench_privacy_command(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="1 run, 300 synthetic users around them (a smoke test)."),
    ] = False,
    backends: Annotated[
        str, typer.Option(help="Comma-separated storage backends: sqlite, postgresql.")
    ] = "sqlite,postgresql",
    runs: Annotated[
        int | None,
        typer.Option(min=1, help="Measured users of each kind per backend. [default: 20]"),
    ] = None,
    population: Annotated[
        int | None,
        typer.Option(min=50, help="Synthetic users in the cell around them. [default: 10,000]"),
    ] = None,
    model: Annotated[
        bool, typer.Option(help="Train a recommender first, so exports and erasure reach it.")
    ] = True,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = DEFAULT_JSON,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic data.")] = 7,
    markdown: MarkdownOpt = False,
) -> None:
    from carveout.bench.privacy import PrivacyBenchConfig, run_privacy_bench
    from carveout.bench.privacy_report import (
        BASELINES,
        CARVEOUT_PATH,
        privacy_json,
        privacy_markdown,
        privacy_table,
        setup_lines,
    )
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=160)
    with bench_bars(refresh_per_second=4) as bars:
        config = PrivacyBenchConfig(
            datasets=settings.datasets_dir(datasets),
            backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
            quick=quick,
            runs=runs,
            population=population,
            seed=seed,
            train=model,
        )
        result = run_privacy_bench(config, bars)
    info = machine()
    data = privacy_json(result, info)
    write_json(json_path, data)
    out.print(privacy_table(result))
    for line in setup_lines(result):
        out.print(line, highlight=False)
    out.print(f"carveout: {CARVEOUT_PATH}", highlight=False)
    for op, what in BASELINES.items():
        out.print(f"baseline {op}: {what}", highlight=False)
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(f"data: {data['data']}", highlight=False)
    kind = "quick run (--quick): small samples, not for the record" if quick else "full run"
    out.print(
        f"{kind}; {config.n_runs} run(s), seed {seed}; total {result.seconds:.0f} s",
        highlight=False,
    )
    if markdown:
        out.print(privacy_markdown(result), highlight=False, markup=False, soft_wrap=True)
    out.print(f"JSON: {json_path}", highlight=False)
