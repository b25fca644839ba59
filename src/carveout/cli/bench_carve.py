"""`carveout bench carve`: the command; wired into `carveout bench` by cli/bench.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carveout.cli.bench_common import DatasetsOpt, MarkdownOpt, bench_bars
from carveout.core import CarveoutError, settings

DEFAULT_JSON = Path("benchmarks/results/carve.json")

BENCH_CARVE_HELP = (
    "A live carve of US,CA,AU,NZ under a write load: pause, errors, copy, apply, verify, ledger."
    "\n\n"
    "A fresh one-cell deployment is loaded with the real KuaiRec data and served by uvicorn; "
    "a client process writes events, likes, comments and follows at --rate requests/s, half for "
    "the moving jurisdictions, and keeps a ledger of every acknowledged write. The carve runs "
    "meanwhile. Reported: moving writers' latency while the fence is up (and the staying "
    "writers' in the same window), errors, copy rows/s and MB/s next to SQLite's backup API and "
    "a raw file copy of the same file in the same run, change-apply rate next to the source's, "
    "verify rows/s, and lost/duplicated writes from the ledger. --kill-at-random N runs the "
    "carve as `carveout carve run|resume` subprocesses and SIGKILLs it N times. With "
    "postgresql, a private local PostgreSQL server holds the source cell and a second one on the "
    "same machine the carve's target (PostgreSQL → PostgreSQL by logical replication; "
    "--same-server puts both on one), and the copy baseline is `pg_dump | psql` of the carved "
    "tables into a fresh database of the target's server."
)


def bench_carve_command(
    backends: Annotated[
        str, typer.Option(help="Comma-separated source/target backends: sqlite, postgresql.")
    ] = "sqlite",
    jurisdictions: Annotated[
        str, typer.Option("--jurisdictions", "-j", help="Jurisdictions carved out.")
    ] = "US,CA,AU,NZ",
    staying: Annotated[
        str, typer.Option(help="Jurisdictions of the writers that stay in the source.")
    ] = "GB,DE,BR,JP",
    rate: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Write requests per second (open loop), half moving; an events request carries "
            "--batch writes, so 170 requests/s make about 440 writes/s.",
        ),
    ] = 170.0,
    batch: Annotated[
        int, typer.Option(min=1, max=500, help="Watch events per events request (one write).")
    ] = 5,
    writers: Annotated[int, typer.Option(min=1, help="Writers signed up per jurisdiction.")] = 2,
    before: Annotated[
        float, typer.Option(min=0.0, help="Seconds of load before the carve starts.")
    ] = 5.0,
    after: Annotated[float, typer.Option(min=0.0, help="Seconds of load after it ends.")] = 3.0,
    max_in_flight: Annotated[
        int, typer.Option(min=2, help="Open requests at most, half per side.")
    ] = 128,
    kill_at_random: Annotated[
        int,
        typer.Option(
            "--kill-at-random",
            min=0,
            help="SIGKILL the carve (run as CLI subprocesses) N times at seeded instants.",
        ),
    ] = 0,
    kill_window: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Each kill comes uniformly within this many seconds of an attempt's first phase.",
        ),
    ] = 1.5,
    same_server: Annotated[
        bool,
        typer.Option(
            "--same-server",
            help="postgresql: source and target (and the baselines' copies) on one server.",
        ),
    ] = False,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = DEFAULT_JSON,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the data, the load and the kills.")] = 7,
    markdown: MarkdownOpt = False,
) -> None:
    from carveout.bench.carve_bench import CarveBenchConfig, run_carve_bench
    from carveout.bench.carve_report import (
        carve_json,
        carve_markdown,
        carve_table,
        notes,
        save_server_logs,
    )
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=140)

    def codes(text: str) -> tuple[str, ...]:
        return tuple(c.strip().upper() for c in text.split(",") if c.strip())

    with bench_bars(refresh_per_second=4, errors=(CarveoutError, RuntimeError)) as bars:
        config = CarveBenchConfig(
            datasets=settings.datasets_dir(datasets),
            backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
            moving=codes(jurisdictions),
            staying=codes(staying),
            rate=rate,
            batch=batch,
            writers_per_country=writers,
            before=before,
            after=after,
            max_in_flight=max_in_flight,
            kill_at_random=kill_at_random,
            kill_max_s=kill_window,
            seed=seed,
            same_server=same_server,
        )
        result = run_carve_bench(config, bars)
    info = machine()
    data = carve_json(result, info)
    logs = save_server_logs(result, json_path)
    for run in data["runs"]:
        if run["backend"] in logs:
            run["load"]["server_log"] = str(logs[run["backend"]])
    write_json(json_path, data)
    for table in carve_table(data):
        out.print(table)
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(f"data: {data['data']} (total {result.seconds:.0f} s)", highlight=False)
    for note in notes(data):
        out.print(f"warning: {note}", style="yellow", highlight=False)
    if markdown:
        out.print(carve_markdown(data), highlight=False, markup=False, soft_wrap=True)
    out.print(f"JSON: {json_path}", highlight=False)
