"""`carveout bench moderation`: the command; wired into `carveout bench` by cli/bench.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from carveout.cli.bench_common import DatasetsOpt, MarkdownOpt, bench_bars
from carveout.core import settings

DEFAULT_JSON = Path("benchmarks/results/moderation.json")

BENCH_MODERATION_HELP = (
    "Hash conformance and robustness, the text classifier, upload latency and bank scale, each "
    "next to a baseline measured in the same run."
    "\n\n"
    "conformance: PDQ hashes of the ThreatExchange test images and vPDQ frame hashes of its "
    "sample videos against the published ones. robustness: seeded edits of the distinct test "
    "images (resize, crop, JPEG, blur, brightness, combined; flips and rotations apart) matched "
    "at <= 31 bits, against a 64-bit pHash; false matches between pictures. text: ROC AUC, "
    "precision and recall at the trained thresholds on each label's held-out split, against "
    "alt-profanity-check. latency: upload to stored decision of a 60 s video built from the "
    "sample videos, against decoding it. scale: lookups of 60 frame hashes in a bank of 1M "
    "SYNTHETIC hashes, against a brute-force numpy popcount. --quick measures a little of each."
)


def bench_moderation_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="A small run of every section (a smoke test).")
    ] = False,
    sections: Annotated[
        str,
        typer.Option(
            help="Comma-separated: conformance, robustness, text, latency, scale "
            "(latency also trains the text model)."
        ),
    ] = "conformance,robustness,text,latency,scale",
    latency_runs: Annotated[
        int | None, typer.Option(min=1, help="Measured uploads per video size. [default: 10]")
    ] = None,
    bank_size: Annotated[
        int | None,
        typer.Option(min=1, help="Synthetic hashes in the scale bank. [default: 1,000,000]"),
    ] = None,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = DEFAULT_JSON,
    datasets: DatasetsOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random choice.")] = 0,
    markdown: MarkdownOpt = False,
) -> None:
    from carveout.bench.moderation import ModerationBenchConfig, run_moderation_bench
    from carveout.bench.moderation_report import (
        moderation_json,
        moderation_markdown,
        moderation_table,
    )
    from carveout.bench.report import machine, machine_line, write_json

    out = Console() if Console().is_terminal else Console(width=180)
    with bench_bars(refresh_per_second=4) as bars:
        config = ModerationBenchConfig(
            datasets=settings.datasets_dir(datasets),
            quick=quick,
            seed=seed,
            sections=tuple(s.strip() for s in sections.split(",") if s.strip()),
            latency_runs=latency_runs,
            bank_size=bank_size,
        )
        result = run_moderation_bench(config, bars)
    info = machine()
    data = moderation_json(result, info)
    write_json(json_path, data)
    out.print(moderation_table(result))
    out.print(f"machine: {machine_line(info)}", highlight=False)
    kind = "quick run (--quick): small samples, not for the record" if quick else "full run"
    out.print(f"data: {data['data']}", highlight=False)
    out.print(f"{kind}; seed {seed}; total {result.seconds:.0f} s", highlight=False)
    if markdown:
        out.print(moderation_markdown(result), highlight=False, markup=False, soft_wrap=True)
    out.print(f"JSON: {json_path}", highlight=False)
