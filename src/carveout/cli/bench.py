"""`carveout bench`: benchmarks as commands, each against its baseline in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from carveout.cli.bench_common import Bars, DatasetsOpt, MarkdownOpt, bench_bars, exit_on_sigterm
from carveout.core import CarveoutError, settings

# The feed and train benches read the datasets only to calibrate their synthetic data.
CalibrationDatasetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--datasets",
        envvar=settings.DATASETS_ENV,
        help="Folder of the public datasets (KuaiRand, KuaiRec) used for calibration.",
        show_default=False,
    ),
]

bench_app = typer.Typer(
    help="Benchmarks: carveout next to the baseline a user would pick, same run, same machine.",
    no_args_is_help=True,
)

DEFAULT_JSON = Path("benchmarks/results/api.json")

API_HELP = (
    "HTTP API throughput and latency on SQLite and PostgreSQL, next to a trivial FastAPI app."
    "\n\n"
    "Each backend gets a fresh one-cell deployment seeded with the real KuaiRec data, served by "
    "uvicorn (one worker) in its own process; a trivial FastAPI app (GET /ping, POST /echo of "
    "the same event batch) runs beside it with the same settings. One httpx client drives both: "
    "the feed (GET /v1/feed) against /ping, event ingest (POST /v1/events) against /echo. "
    "The ratio is the figure; absolute numbers depend on the machine. PostgreSQL runs in a "
    "private throwaway cluster and is skipped, with the reason, where its binaries are missing."
)


@bench_app.command("api", help=API_HELP)
def api(
    backends: Annotated[
        str, typer.Option(help="Comma-separated storage backends: sqlite, postgresql.")
    ] = "sqlite,postgresql",
    seconds: Annotated[
        float, typer.Option(min=0.1, help="Measured seconds per scenario and app.")
    ] = 10.0,
    warmup: Annotated[
        float, typer.Option(min=0.0, help="Unmeasured seconds of load before each measurement.")
    ] = 2.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent keep-alive connections.")] = 8,
    batch: Annotated[
        int, typer.Option(min=1, max=500, help="Events per POST /v1/events request.")
    ] = 50,
    users: Annotated[int, typer.Option(min=1, help="Bench users signed up via the API.")] = 32,
    history: Annotated[
        int, typer.Option(min=0, help="Watch events each bench user posts before the feed runs.")
    ] = 80,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = DEFAULT_JSON,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the data and the requests.")] = 7,
    markdown: MarkdownOpt = False,
) -> None:
    from carveout.bench import ApiBenchConfig, run_api_bench
    from carveout.bench.report import (
        api_json,
        api_table,
        client_bound_note,
        errors_note,
        machine,
        machine_line,
        markdown_table,
        scenario_lines,
        write_json,
    )

    # Piped to a file, Rich would squeeze the table into 80 columns.
    out = Console() if Console().is_terminal else Console(width=120)
    err = Console(stderr=True)
    try:
        config = ApiBenchConfig(
            datasets=settings.datasets_dir(datasets),
            backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
            seconds=seconds,
            warmup=warmup,
            concurrency=concurrency,
            batch=batch,
            users=users,
            history=history,
            seed=seed,
        )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        with (
            exit_on_sigterm(),
            Progress(*columns, console=err, refresh_per_second=4) as progress,
        ):
            result = run_api_bench(config, Bars(progress))
    except CarveoutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    info = machine()
    data = api_json(result, info)
    write_json(json_path, data)
    out.print(api_table(result))
    for line in scenario_lines(result):
        out.print(line, highlight=False)
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(
        f"data: {data['data']}; {concurrency} connections, {seconds:g} s measured after "
        f"{warmup:g} s warm-up per app; batches of {batch} events; {users} users "
        f"(total {result.seconds:.0f} s)",
        highlight=False,
    )
    if note := client_bound_note(result):
        out.print(f"note: {note}", highlight=False)
    for note in errors_note(result):
        out.print(f"warning: {note}", style="yellow", highlight=False)
    if markdown:
        out.print(markdown_table(result), highlight=False, markup=False, soft_wrap=True)
    out.print(f"JSON: {json_path}", highlight=False)


RECOMMEND_HELP = (
    "The For You ranker against random, popularity, shrunk log mean, item-kNN and tuned ALS."
    "\n\n"
    "Per seed, each user's rows are split 60/23 (of 83); every method fits on training rows only "
    "(tuned ones on a validation split carved from them) and ranks each user's test rows: "
    "NDCG@10 with watch_ratio as gain, Recall@10 of liked (>= 2.0), mean watch ratio of the top "
    "10; mean and 95% CI over seeds. --foldin users are never trained on: 60 of their rows go "
    "through the online update, then the rest are ranked."
)


@bench_app.command("recommend", help=RECOMMEND_HELP)
def recommend(
    data: Annotated[
        Path | None,
        typer.Option(help="Watch ratios (user_id,video_id,watch_ratio). (default: KuaiRec's)"),
    ] = None,
    foldin: Annotated[
        Path | None, typer.Option(help="Ratings of users absent from --data, for fold-in.")
    ] = None,
    seeds: Annotated[int, typer.Option(min=2, max=11, help="Seeds (splits) to average.")] = 5,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write every method's metrics per seed.")
    ] = Path("benchmarks/results/recommend.json"),
    datasets: Annotated[
        Path | None,
        typer.Option(
            "--datasets",
            envvar=settings.DATASETS_ENV,
            help="Folder of the public datasets (video categories and tags).",
            show_default=False,
        ),
    ] = None,
) -> None:
    from carveout.bench.recommend import run_recommend_bench
    from carveout.bench.recommend_report import recommend_table
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=120)
    folder = settings.datasets_dir(datasets)
    with bench_bars() as bars:
        result = run_recommend_bench(
            data or folder / "kuairec" / "watch_ratio.csv",
            folder,
            seeds,
            foldin,
            bars,
        )
    info = machine()
    write_json(json_path, {**result.as_json(), "machine": info})
    for table in recommend_table(result):
        out.print(table)
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(f"JSON: {json_path}", highlight=False)


FEED_HELP = (
    "For You serving on a synthetic 1M-video catalogue (labelled synthetic): feed p50/p99, ANN "
    "recall@100 against exact search, and freshness."
    "\n\n"
    "The catalogue is seeded and calibrated on KuaiRand (durations, videos per author) and KuaiRec "
    "(category mix), written to a one-cell SQLite deployment with a synthetic model version. In "
    "this process: single requests of 20 with the usearch index and with exact search in its "
    "place (the ratio), recall@100 of the index over the viewers' taste vectors, the time from an "
    "acknowledged watch to a changed feed, and a new upload's first impression under --rps "
    "traffic. Then the same cell over HTTP (uvicorn, one worker, its own process): "
    "GET /v1/feed?limit=20 open-loop at --rps for --http-seconds, p50/p99 from each request's due "
    "time, and errors."
)


@bench_app.command("feed", help=FEED_HELP)
def feed(
    videos: Annotated[int, typer.Option(min=1000, help="Synthetic catalogue size.")] = 1_000_000,
    viewers: Annotated[int, typer.Option(min=10, help="Viewers with a watch history.")] = 500,
    requests: Annotated[int, typer.Option(min=100, help="Timed feed requests per mode.")] = 2000,
    rps: Annotated[
        float,
        typer.Option(min=1.0, help="Feed requests per second: the upload test and over HTTP."),
    ] = 20.0,
    http_seconds: Annotated[
        float, typer.Option(min=0.0, help="Seconds of measured HTTP load (0: skip it).")
    ] = 30.0,
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds of --requests in-process ANN feed requests.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "benchmarks/results/feed.json"
    ),
    datasets: CalibrationDatasetsOpt = None,
) -> None:
    from carveout.bench.feed import run_feed_bench
    from carveout.bench.feed_report import feed_table
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=120)
    with bench_bars() as bars:
        result = run_feed_bench(
            settings.datasets_dir(datasets),
            videos,
            viewers,
            requests,
            rps,
            seed,
            bars,
            http_seconds,
            rounds,
        )
    info = machine()
    write_json(json_path, {**result.as_json(), "machine": info})
    out.print(feed_table(result))
    out.print(f"machine: {machine_line(info)}", highlight=False)
    out.print(f"JSON: {json_path}", highlight=False)


TRAIN_HELP = (
    "train_cell on a synthetic catalogue with synthetic watch events (labelled synthetic): "
    "training time per stage and the training process's peak memory. Histories and watch ratios "
    "are resampled from KuaiRec's watch_ratio.csv; the catalogue is bench feed's."
)


@bench_app.command("train", help=TRAIN_HELP)
def train(
    videos: Annotated[int, typer.Option(min=1000, help="Synthetic catalogue size.")] = 200_000,
    users: Annotated[int, typer.Option(min=20, help="Synthetic users who watched.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path(
        "benchmarks/results/train.json"
    ),
    datasets: CalibrationDatasetsOpt = None,
) -> None:
    from carveout.bench.feed_train import run_train_bench
    from carveout.bench.report import machine, machine_line, write_json

    with bench_bars() as bars:
        result = run_train_bench(settings.datasets_dir(datasets), videos, users, seed, bars)
    info = machine()
    write_json(json_path, {**result.as_json(), "machine": info})
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.stages_s.items())
    typer.echo(
        f"train_cell [{result.label}]: {result.videos:,} videos, {result.users:,} users, "
        f"{result.watch_events:,} watch events: {result.train_s:.1f} s "
        f"(stages, s: {stages}); peak memory {result.peak_rss_mib:,.0f} MiB; "
        f"load {result.load_1min[0]:.1f} -> {result.load_1min[1]:.1f}"
    )
    typer.echo(f"machine: {machine_line(info)}")
    typer.echo(f"JSON: {json_path}")


from carveout.cli.bench_backup import BENCH_BACKUP_HELP, bench_backup_command  # noqa: E402

bench_app.command("backup", help=BENCH_BACKUP_HELP)(bench_backup_command)

from carveout.cli.bench_carve import BENCH_CARVE_HELP, bench_carve_command  # noqa: E402

bench_app.command("carve", help=BENCH_CARVE_HELP)(bench_carve_command)

from carveout.cli.bench_moderation import (  # noqa: E402
    BENCH_MODERATION_HELP,
    bench_moderation_command,
)

bench_app.command("moderation", help=BENCH_MODERATION_HELP)(bench_moderation_command)

from carveout.cli.bench_privacy import BENCH_PRIVACY_HELP, bench_privacy_command  # noqa: E402

bench_app.command("privacy", help=BENCH_PRIVACY_HELP)(bench_privacy_command)
