"""`carveout bench moderation`: hashing conformance and robustness, the text classifier, upload
latency and bank scale, each next to a baseline measured in the same run.

Sections (each in its own module): conformance against ThreatExchange's published hashes,
robustness of PDQ matching against a pHash baseline, the text classifier against
alt-profanity-check, upload-to-decision latency against a decode-only floor, and the bank
index against a brute-force popcount at 1M synthetic hashes."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from carveout.bench.api import BenchError, Progress, no_progress
from carveout.bench.moderation_conformance import run_conformance
from carveout.bench.moderation_figures import Figure, Section
from carveout.bench.moderation_latency import LatencyConfig, run_latency
from carveout.bench.moderation_media import check_present
from carveout.bench.moderation_robustness import run_robustness
from carveout.bench.moderation_scale import run_scale
from carveout.bench.moderation_text import run_text

SECTIONS = ("conformance", "robustness", "text", "latency", "scale")
DATA_LABEL = (
    "real: ThreatExchange PDQ/vPDQ test media and published hashes (BSD); toxic-spans (CC0), "
    "Davidson et al. (MIT), YouTube and SMS spam collections (CC BY 4.0). SYNTHETIC: the bank "
    "hashes of the latency and scale sections (seeded uniform random), labelled so"
)
__all__ = [
    "DATA_LABEL",
    "SECTIONS",
    "Figure",
    "ModerationBenchConfig",
    "ModerationBenchResult",
    "Section",
    "run_moderation_bench",
]


@dataclass(frozen=True)
class Sizes:
    """How much each section measures: the full run, or the quick smoke run."""

    max_videos: int | None  # conformance: sample videos hashed (None: all)
    per_edit: int  # robustness: edits of each kind per image
    text_rows: int | None  # text: rows per label (None: all)
    latency: LatencyConfig
    scale_hashes: int  # synthetic bank hashes
    scale_batches: int


def sizes(quick: bool, seed: int, latency_runs: int | None, bank_size: int | None) -> Sizes:
    if quick:
        return Sizes(
            max_videos=3,
            per_edit=1,
            text_rows=1500,
            latency=LatencyConfig(8.0, ((480, 720),), latency_runs or 2, 1_000, seed),
            scale_hashes=bank_size or 50_000,
            scale_batches=2,
        )
    return Sizes(
        max_videos=None,
        per_edit=4,
        text_rows=None,
        latency=LatencyConfig(60.0, ((480, 720), (720, 1280)), latency_runs or 10, 100_000, seed),
        scale_hashes=bank_size or 1_000_000,
        scale_batches=20,
    )


@dataclass(frozen=True)
class ModerationBenchConfig:
    datasets: Path
    quick: bool = False
    seed: int = 0
    sections: tuple[str, ...] = SECTIONS
    latency_runs: int | None = None
    bank_size: int | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown or not self.sections:
            raise BenchError(f"sections must be among {', '.join(SECTIONS)}, got {unknown}")
        if self.latency_runs is not None and self.latency_runs < 1:
            raise BenchError("latency runs must be at least 1")
        if self.bank_size is not None and self.bank_size < 1:
            raise BenchError("the bank size must be at least 1")

    @property
    def sizes(self) -> Sizes:
        return sizes(self.quick, self.seed, self.latency_runs, self.bank_size)


@dataclass
class ModerationBenchResult:
    config: ModerationBenchConfig
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0


def run_moderation_bench(
    config: ModerationBenchConfig, progress: Progress | None = None
) -> ModerationBenchResult:
    """Every section asked for, in order; the temp folder is gone when this returns."""
    report = progress or no_progress
    check_present(config.datasets)
    size = config.sizes
    result = ModerationBenchResult(config)
    started = time.perf_counter()
    wanted = set(config.sections)
    with tempfile.TemporaryDirectory(prefix="carveout-bench-") as tmp:
        model = None
        for name in SECTIONS:
            if name not in wanted and not (name == "text" and "latency" in wanted):
                continue
            began = time.perf_counter()
            if name == "conformance":
                section = run_conformance(config.datasets, report, max_videos=size.max_videos)
            elif name == "robustness":
                section = run_robustness(
                    config.datasets, report, per_edit=size.per_edit, seed=config.seed
                )
            elif name == "text":
                # Latency needs the trained model; text trains it, so it runs for latency too.
                section, model = run_text(
                    config.datasets, report, rows=size.text_rows, seed=config.seed
                )
            elif name == "latency":
                if model is None:
                    raise BenchError("the latency section needs the text model")
                section = run_latency(config.datasets, Path(tmp), model, size.latency, report)
            else:
                section = run_scale(
                    config.datasets,
                    report,
                    synthetic=size.scale_hashes,
                    batches=size.scale_batches,
                    seed=config.seed,
                )
            section.seconds = time.perf_counter() - began
            if name in wanted:
                result.sections.append(section)
    result.seconds = time.perf_counter() - started
    return result
