"""The moderation bench's report: a Rich table for people, JSON for the record, Markdown too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from carveout import __version__
from carveout.bench.moderation import DATA_LABEL, Figure, ModerationBenchResult

TITLE = "carveout moderation next to same-run baselines"
CAPTION = (
    "× = carveout / baseline. Times: above 1 means carveout is slower. Recall, AUC, precision: "
    "above 1 means carveout is better. SYNTHETIC bank hashes are labelled so."
)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "auc":
        return f"{value:.3f}"
    if unit in ("bits", "count"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "MB":
        return f"{value:,.1f} MB"
    return f"{value:g} {unit}"


def _ratio(f: Figure) -> str:
    r = f.ratio_value
    return "–" if r is None else f"{r:.2f}"


def moderation_table(result: ModerationBenchResult) -> Table:
    table = Table(title=TITLE, caption=CAPTION)
    table.add_column("section")
    table.add_column("figure")
    table.add_column("carveout", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("×", justify="right", style="bold")
    table.add_column("baseline is")
    table.add_column("note", style="dim")
    for section in result.sections:
        for i, f in enumerate(section.figures):
            table.add_row(
                section.name if i == 0 else "",
                f.name,
                fmt(f.value, f.unit),
                fmt(f.baseline, f.unit),
                _ratio(f),
                f.baseline_name,
                f.note,
                end_section=i == len(section.figures) - 1,
            )
    return table


def moderation_json(result: ModerationBenchResult, machine: dict[str, Any]) -> dict[str, Any]:
    config = result.config
    size = config.sizes
    return {
        "benchmark": "moderation",
        "carveout": __version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_total": round(result.seconds, 1),
        "machine": machine,
        "data": DATA_LABEL,
        "parameters": {
            "quick": config.quick,
            "seed": config.seed,
            "sections": list(config.sections),
            "conformance_videos": size.max_videos,
            "robustness_edits_per_kind": size.per_edit,
            "text_rows_per_label": size.text_rows,
            "latency_video_seconds": size.latency.seconds,
            "latency_sizes": [f"{w}x{h}" for w, h in size.latency.sizes],
            "latency_runs": size.latency.runs,
            "latency_bank_synthetic_hashes": size.latency.bank_hashes,
            "scale_synthetic_hashes": size.scale_hashes,
            "scale_batches": size.scale_batches,
        },
        "sections": {
            s.name: {
                "seconds": round(s.seconds, 1),
                "figures": [f.as_json() for f in s.figures],
                "details": s.details,
            }
            for s in result.sections
        },
    }


def moderation_markdown(result: ModerationBenchResult) -> str:
    head = (
        "| section | figure | carveout | baseline | × | baseline is |\n|---|---|--:|--:|--:|---|\n"
    )
    rows = [
        f"| {s.name if i == 0 else ''} | {f.name.strip()} | {fmt(f.value, f.unit)} "
        f"| {fmt(f.baseline, f.unit)} | **{_ratio(f)}** | {f.baseline_name} |"
        for s in result.sections
        for i, f in enumerate(s.figures)
    ]
    return head + "\n".join(rows) + "\n"
