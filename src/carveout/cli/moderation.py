"""`carveout moderation ...`: hash, match, classify, train, and manage a cell's hash banks."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from carveout.cli.common import DataDirOpt, fail_on_errors, open_cell, open_deployment
from carveout.core import InvalidInput

moderation_app = typer.Typer(help="Hash banks, the text classifier and checks of one cell.")
bank_app = typer.Typer(help="A cell's hash banks.")
moderation_app.add_typer(bank_app, name="bank")

CellOpt = Annotated[str, typer.Option(help="the cell whose banks or model to use")]
DatasetsOpt = Annotated[
    Path | None,
    typer.Option("--datasets", help="shared data [env CARVEOUT_DATASETS; default ../shared/data]"),
]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def _hashes(file: Path) -> list[tuple[float | None, str, int]]:
    from carveout.moderation import hash_image, hash_video

    if not file.is_file():
        raise InvalidInput(f"no file {file}")
    if file.suffix.lower() in IMAGE_SUFFIXES:
        h = hash_image(file)
        return [(None, h.hex, h.quality)]
    video = hash_video(file, keep_all=True)
    return [(f.seconds, f.hex, f.quality) for f in video.frames]


@moderation_app.command("hash")
def hash_command(file: Path) -> None:
    """PDQ hash and quality of an image, or per-frame hashes (1 per second) of a video."""
    with fail_on_errors():
        for seconds, hexdigest, quality in _hashes(file):
            where = "" if seconds is None else f"{seconds:.3f},"
            typer.echo(f"{where}{hexdigest},{quality}")


@moderation_app.command()
def match(
    file: Path,
    bank: Annotated[str, typer.Option(help="bank name")],
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Match an image or video against one bank of a cell (frames of quality >= 50)."""
    from carveout.moderation import get_bank, matcher

    with fail_on_errors():
        with open_cell(data_dir, cell) as target:
            get_bank(target.store, bank)
            hexes = [h for _, h, q in _hashes(file) if q >= 50]
            found = matcher(target.store).match(hexes, bank=bank)
        if not found:
            typer.echo(f"no match in bank {bank} ({len(hexes)} hashes checked)")
            raise typer.Exit(1)
        m = found[0]
        typer.echo(
            f"match in bank {bank}: {m.frames_matched}/{m.frames_total} hashes, "
            f"closest {m.best_distance} bits"
        )


@moderation_app.command()
def classify(
    input: Annotated[Path, typer.Option("--input", help="CSV file with a header row")],
    text_column: Annotated[str, typer.Option(help="column holding the text")],
    out: Annotated[Path, typer.Option(help="CSV to write: input plus scores and action")],
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Score each row per label; `action` is auto, review or clear by the model's thresholds."""
    from carveout.moderation import cell_model

    with fail_on_errors():
        with open_cell(data_dir, cell) as target:
            model = cell_model(target.root)
        if model is None:
            raise InvalidInput(f"cell {cell} has no text model: run `carveout moderation train`")
        csv.field_size_limit(10_000_000)
        with input.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise InvalidInput(f"{input} has no column {text_column!r}")
            fields = list(reader.fieldnames)
            rows = list(reader)
        texts = [r[text_column] or "" for r in rows]
        scores = model.scores([t[:10_000] for t in texts]) if texts else None
        with out.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, [*fields, *model.labels, "action", "labels"])
            writer.writeheader()
            for i, row in enumerate(rows):
                bands = {}
                for j, label in enumerate(model.labels):
                    value = float(scores[i, j]) if scores is not None else 0.0
                    row[label] = f"{value:.4f}"
                    bands[label] = model.band(label, value)
                worst = (
                    "auto"
                    if "auto" in bands.values()
                    else ("review" if "review" in bands.values() else "clear")
                )
                row["action"] = worst
                row["labels"] = ";".join(k for k, v in bands.items() if v != "clear")
                writer.writerow(row)
        typer.echo(f"{len(rows)} rows scored -> {out}")


@moderation_app.command()
def train(
    data_dir: DataDirOpt = None,
    datasets: DatasetsOpt = None,
    cell: Annotated[str | None, typer.Option(help="cell to install into (default: all)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the train/calibration/test split")] = 0,
) -> None:
    """Train the text classifier on the shared labelled data; install it in the cells."""
    from carveout.core.settings import datasets_dir
    from carveout.moderation.classifier import MODEL_DIR
    from carveout.moderation.training import train as fit

    with fail_on_errors():
        model = fit(datasets_dir(datasets), seed=seed)
        with open_deployment(data_dir) as deployment:
            names = [cell] if cell else list(deployment.policy.names)
            for name in names:
                model.save(deployment.cell(name).root / MODEL_DIR)
        for label, m in model.manifest["metrics"].items():
            th = model.manifest["thresholds"][label]
            auto = "review only" if th["auto"] is None else f"auto >= {th['auto']:.3f}"
            typer.echo(f"{label}: ROC AUC {m['roc_auc']:.3f}; {auto}; {json.dumps(m)}")
        typer.echo(f"installed in cells: {', '.join(names)}")


@bank_app.command("create")
def bank_create(
    name: str,
    jurisdiction: Annotated[str, typer.Option(help="jurisdiction whose rules the bank enforces")],
    action: Annotated[str, typer.Option(help="reject | hold | restrict")] = "reject",
    ground: Annotated[str, typer.Option(help="illegal | terms")] = "terms",
    category: Annotated[str, typer.Option(help="DSA statement category")] = (
        "STATEMENT_CATEGORY_NONE"
    ),
    description: str = "",
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Create a bank."""
    from carveout.moderation import create_bank

    with fail_on_errors():
        with open_cell(data_dir, cell) as target:
            b = create_bank(
                target.store,
                name,
                jurisdiction,
                action=action,
                ground=ground,
                category=category,
                description=description,
            )
        typer.echo(f"bank {b.name} created in cell {cell} ({b.action.value}, {b.domicile})")


@bank_app.command("import")
def bank_import(
    name: str,
    file: Annotated[Path, typer.Argument(help="hash list ('-' for stdin)")],
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Import a ThreatExchange-style hash list; any malformed line refuses the whole file."""
    from carveout.moderation import add_hashes, parse_hash_list

    with fail_on_errors():
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {file}: {exc}") from exc
        entries = parse_hash_list(text, source=file.name)
        with open_cell(data_dir, cell) as target:
            added = add_hashes(target.store, name, entries)
        typer.echo(f"{added} hashes added to bank {name} ({len(entries)} in the list)")


@bank_app.command("add")
def bank_add(
    name: str,
    file: Annotated[Path, typer.Argument(help="image or video whose hashes to add")],
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Add the PDQ hashes of an image or video (frames of quality >= 50) to a bank."""
    from carveout.moderation import ListedHash, add_hashes

    with fail_on_errors():
        entries = [ListedHash(h, file.name[:200]) for _, h, q in _hashes(file) if q >= 50]
        if not entries:
            raise InvalidInput(f"{file.name}: no frame reached PDQ quality 50")
        with open_cell(data_dir, cell) as target:
            added = add_hashes(target.store, name, entries)
        typer.echo(f"{added} hashes added to bank {name}")


@bank_app.command("disable")
def bank_disable(
    name: str,
    pdq: Annotated[str | None, typer.Option(help="disable only this hash")] = None,
    cell: CellOpt = "global",
    data_dir: DataDirOpt = None,
) -> None:
    """Disable a bank, or one hash of it; the next upload no longer matches it."""
    from carveout.moderation import disable_hash, parse_hex, set_enabled

    with fail_on_errors():
        with open_cell(data_dir, cell) as target:
            if pdq is not None:
                disable_hash(target.store, name, parse_hex(pdq))
            else:
                set_enabled(target.store, name, False)
        typer.echo(f"disabled {'hash ' + pdq + ' of ' if pdq else ''}bank {name}")


@bank_app.command("list")
def bank_list(cell: CellOpt = "global", data_dir: DataDirOpt = None) -> None:
    """Banks of a cell with their enabled hash counts."""
    from carveout.moderation import list_banks

    with fail_on_errors(), open_cell(data_dir, cell) as target:
        for b in list_banks(target.store):
            state = "enabled" if b.enabled else "disabled"
            typer.echo(
                f"{b.name}\t{b.domicile}\t{b.action.value}\t{b.ground.value}\t{b.hashes}\t{state}"
            )
