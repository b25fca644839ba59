"""Rich tables of `carveout bench recommend`: mean ± 95 % CI per method and metric."""

from __future__ import annotations

from rich.table import Table

from carveout.bench.recommend import RecommendBenchResult

METRICS = ("ndcg@10", "recall@10", "mean_ratio@10")


def _table(title: str, summary: dict[str, dict[str, tuple[float, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("method")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    best = max(summary.values(), key=lambda m: m["ndcg@10"][0]) if summary else None
    for method, metrics in summary.items():
        cells = [f"{metrics[m][0]:.4f} ± {metrics[m][1]:.4f}" for m in METRICS]
        style = "bold" if metrics is best else None
        table.add_row(method, *cells, style=style)
    return table


def recommend_table(result: RecommendBenchResult) -> list[Table]:
    tables = [
        _table(
            f"Ranking each user's held-out videos ({result.seeds} seeds, mean ± 95% CI)",
            result.summary("main"),
        )
    ]
    if result.foldin_per_seed:
        tables.append(_table("Fold-in users (never trained on)", result.summary("foldin")))
    return tables
