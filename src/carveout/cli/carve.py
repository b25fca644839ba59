"""`carveout carve ...`: plan, run, status, resume, verify, purge and abort a carve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from carveout import carve
from carveout.carve import Phase
from carveout.cells import Deployment
from carveout.cli.common import DataDirOpt, fail_on_errors, open_deployment

carve_app = typer.Typer(help="Carve jurisdictions out of a live cell into a new cell.")
console = Console(stderr=True)

JurisdictionsOpt = Annotated[
    str, typer.Option("--jurisdictions", "-j", help="comma-separated ISO codes, e.g. US,CA,AU,NZ")
]
TargetOpt = Annotated[str, typer.Option("--to", help="name of the new cell")]


class RichReporter:
    """Progress bars per phase (rows copied, chunks verified) and STEP lines."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.phase = ""

    def step(self, phase: Phase) -> None:
        self.phase = phase.value
        self.progress.console.print(f"STEP {phase.number}: {phase.value}")

    def advance(self, what: str, n: int) -> None:
        key = f"{self.phase} {what}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(key, total=None)
        self.progress.advance(self.tasks[key], n)

    def say(self, message: str) -> None:
        self.progress.console.print(f"  {message}")


def _progress() -> Progress:
    return Progress(
        TextColumn("  {task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed:>10,} rows"),
        TimeElapsedColumn(),
        console=console,
    )


def _summary(outcome: carve.CarveOutcome) -> None:
    table = Table("phase", "seconds", title=f"carve into {outcome.spec.target}")
    for phase, seconds in outcome.seconds.items():
        table.add_row(phase, f"{seconds:.2f}")
    console.print(table)
    if outcome.cutover is not None:
        console.print(f"write pause: {outcome.cutover.pause_ms:.0f} ms")
    if outcome.copy.rows:
        console.print(f"rows copied: {outcome.copy.rows:,} in {outcome.copy.chunks} chunks")
    if outcome.leaks is not None:
        console.print(f"leaks found: {outcome.leaks.leaks}")
    if outcome.purge is not None:
        console.print(
            f"rows of {','.join(outcome.spec.jurisdictions)} left in source: "
            f"{outcome.purge.remaining_rows}"
        )


@carve_app.command()
def plan(
    jurisdictions: JurisdictionsOpt,
    to: TargetOpt,
    data_dir: DataDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option(help="print the plan only (the plan never writes)")
    ] = True,
) -> None:
    """STEP 1: what moves (rows, bytes, blobs), every cross-border reference, an estimate."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        typer.echo(carve.render_plan(carve.make_plan(deployment, jurisdictions, to)), nl=False)


def _run(deployment: Deployment, spec: carve.CarveSpec, through: Phase) -> None:
    with _progress() as progress:
        outcome = carve.run(deployment, spec, through=through, reporter=RichReporter(progress))
    _summary(outcome)


@carve_app.command("run")
def run_command(
    jurisdictions: JurisdictionsOpt,
    to: TargetOpt,
    data_dir: DataDirOpt = None,
    storage: Annotated[
        str, typer.Option(help="target storage: 'sqlite' or a postgresql:// URL")
    ] = "sqlite",
    primary_site: Annotated[str | None, typer.Option(help="target's primary site")] = None,
    backup_site: Annotated[str | None, typer.Option(help="target's backup site")] = None,
    through: Annotated[Phase, typer.Option(help="stop after this phase")] = Phase.PURGE,
) -> None:
    """All phases, from prepare to purge, while the source keeps serving."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        spec = carve.start(
            deployment,
            jurisdictions,
            to,
            storage=storage,
            primary_site=primary_site,
            backup_site=backup_site,
        )
        _run(deployment, spec, through)


@carve_app.command()
def resume(
    to: TargetOpt,
    data_dir: DataDirOpt = None,
    through: Annotated[Phase, typer.Option(help="stop after this phase")] = Phase.PURGE,
) -> None:
    """Continue a carve where it stopped (after a crash, a kill, or `--through`)."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        try:
            spec = carve.load_spec(deployment, to)
        except carve.CarveFinished as done:
            typer.echo(str(done))
            return
        _run(deployment, spec, through)


@carve_app.command()
def status(to: TargetOpt, data_dir: DataDirOpt = None) -> None:
    """Phases done, change-apply lag, whether routing has switched, saved progress."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        info = carve.status(deployment, carve.load_spec(deployment, to))
        spec = info.pop("spec")
        typer.echo(
            json.dumps(
                {
                    "target": spec.target,
                    "jurisdictions": spec.jurisdictions,
                    "source": spec.source,
                    **info,
                },
                indent=2,
                default=str,
            )
        )


@carve_app.command()
def verify(to: TargetOpt, data_dir: DataDirOpt = None) -> None:
    """STEP 7 on its own: checksums source against target, and the leak scan."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        _run(deployment, carve.load_spec(deployment, to), Phase.VERIFY)


@carve_app.command()
def purge(to: TargetOpt, data_dir: DataDirOpt = None) -> None:
    """STEP 9: remove the carved jurisdictions from the source (runs any phase still due)."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        _run(deployment, carve.load_spec(deployment, to), Phase.PURGE)


@carve_app.command()
def reseal(data_dir: DataDirOpt = None) -> None:
    """Install again, with this version's rule, the seal of every carve past its cutover (after
    an upgrade: older seals refuse the guest copies the content exchange brings back)."""
    from carveout.carve.purge import upgrade_seals

    with fail_on_errors(), open_deployment(data_dir) as deployment:
        done = upgrade_seals(deployment)
        if not done:
            typer.echo("no carve past its cutover here: nothing to reseal")
        for target in done:
            typer.echo(f"resealed the source of the carve into {target!r}")


@carve_app.command()
def abort(to: TargetOpt, data_dir: DataDirOpt = None) -> None:
    """Roll back a carve before its cutover; after it, says what to do instead."""
    with fail_on_errors(), open_deployment(data_dir) as deployment:
        carve.abort(deployment, carve.load_spec(deployment, to))
        typer.echo(f"carve into {to!r} aborted: source unchanged, target removed")


@carve_app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="folder for recipient.key and recipient.pub")],
) -> None:
    """The receiving organisation's X25519 key pair: send recipient.pub, keep recipient.key."""
    from carveout.carve.bundle_crypto import generate_keypair

    with fail_on_errors():
        key, pub = generate_keypair(out)
        typer.echo(f"private key {key} (keep it), public key {pub} (send it to the sender)")


@carve_app.command("export")
def export_command(
    jurisdictions: JurisdictionsOpt,
    bundle: Annotated[Path, typer.Option(help="empty folder (e.g. on the disk to ship)")],
    recipient_key: Annotated[Path, typer.Option(help="the recipient's recipient.pub")],
    data_dir: DataDirOpt = None,
) -> None:
    """Write J's rows and blobs as a sealed, chunked, checksummed bundle (no network needed)."""
    from carveout.carve.bundle import export_bundle

    with fail_on_errors(), open_deployment(data_dir) as deployment:
        with _progress() as bars:
            reporter = RichReporter(bars)
            reporter.phase = "export"
            manifest = export_bundle(
                deployment, jurisdictions, bundle, recipient_key, reporter.advance
            )
        size = sum(c["bytes"] for c in manifest["chunks"])
        typer.echo(
            f"bundle {manifest['bundle_id']}: {len(manifest['chunks'])} chunks, "
            f"{size / 1e6:.1f} MB, root digest {manifest['root_digest']}"
        )


@carve_app.command("import")
def import_command(
    bundle: Annotated[Path, typer.Option(help="the bundle folder")],
    key: Annotated[Path, typer.Option(help="your recipient.key")],
    to: TargetOpt,
    data_dir: DataDirOpt = None,
    storage: Annotated[
        str, typer.Option(help="new cell's storage: 'sqlite' or a postgresql:// URL")
    ] = "sqlite",
) -> None:
    """Check every chunk, then load the bundle into a new cell; resumes after an interruption."""
    from carveout.carve.bundle import import_bundle

    with fail_on_errors(), open_deployment(data_dir) as deployment:
        with _progress() as bars:
            reporter = RichReporter(bars)
            reporter.phase = "import"
            report = import_bundle(
                deployment, bundle, key, to, storage=storage, progress=reporter.advance
            )
        typer.echo(
            f"imported into cell {report.target}: {sum(report.rows.values()):,} rows, "
            f"{report.blobs} blob files, verified against the bundle; leaks found: "
            f"{report.leaks.leaks}"
        )
