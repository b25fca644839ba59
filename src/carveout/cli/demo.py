"""`carveout demo`: the whole story on real data — load, serve, drive traffic, carve US/CA/AU/NZ
live, verify, retrain, and say what it cost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from carveout import carve, exchange
from carveout.cells import Deployment, init_data_dir
from carveout.cli.carve import RichReporter, _progress
from carveout.cli.common import fail_on_errors
from carveout.cli.demo_traffic import Traffic, Writer
from carveout.core import CarveoutError, settings
from carveout.datamap import DATA_MAP, TABLES

MARKER = ".carveout-demo"
MOVING = ("AU", "CA", "NZ", "US")
STAYING = ("GB", "DE", "BR", "JP")
console = Console()


def _fresh(data_dir: Path) -> None:
    if data_dir.exists():
        if not (data_dir / MARKER).exists():
            raise CarveoutError(f"{data_dir} exists and is not a demo folder: choose another")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("made by `carveout demo`; removed by the next demo run\n")


def _serve(data_dir: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, settings.DATA_ENV: str(data_dir)}
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter running uvicorn
        [
            sys.executable,
            "-m",
            "uvicorn",
            "carveout.api.server:app",
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://{host}:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise CarveoutError(f"the API server did not start on {host}:{port} (port taken?)")
        time.sleep(0.2)


def _writers(base: str, deployment: Deployment) -> list[Writer]:
    videos = TABLES["videos"]
    cell = deployment.cell("global")
    out = []
    for i, country in enumerate(MOVING + STAYING):
        side = MOVING if country in MOVING else STAYING
        with cell.store.connect() as conn:
            vids = [
                r[0]
                for r in conn.execute(
                    sa.select(videos.c.id).where(videos.c.domicile.in_(side)).limit(20)
                )
            ]
        body = {
            "handle": f"demo_{country.lower()}",
            "display_name": f"Demo {country}",
            "email": f"demo{i}@example.com",
            "password": "demo password",
            "country": country,
        }
        r = httpx.post(f"{base}/v1/users", json=body, timeout=30)
        if r.status_code != 201:
            raise CarveoutError(f"demo sign-up failed: {r.status_code} {r.text}")
        data = r.json()
        out.append(Writer(f"demo-{country}", country, data["token"], data["user"]["id"], vids))
    return out


def _ledger(deployment: Deployment, writers: list[Writer]) -> tuple[int, int]:
    """(lost, duplicated): acknowledged comments not found exactly once in the writer's cell."""
    comments = TABLES["comments"]
    lost = dup = 0
    for w in writers:
        home = deployment.cell_for(w.country)
        with home.store.connect() as conn:
            rows = conn.execute(
                sa.select(comments.c.user_id, comments.c.body).where(
                    comments.c.user_id == w.user_id
                )
            ).all()
        bodies = [r["body"] for r in home.vault.open_rows(DATA_MAP.table("comments"), rows)]
        for n in range(w.acked):
            found = bodies.count(f"{w.name}-{n}")
            lost += found == 0
            dup += max(0, found - 1)
    return lost, dup


def demo_command(
    data_dir: Annotated[Path, typer.Option(help="demo data folder (recreated)")] = Path("demo"),
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    serve: Annotated[bool, typer.Option(help="keep serving both cells afterwards")] = True,
    datasets: Annotated[Path | None, typer.Option(help="public datasets folder")] = None,
) -> None:
    """Load KuaiRec into a `global` cell, serve it, drive traffic, carve US/CA/AU/NZ live into
    `na-anz`, verify, retrain, and print what it cost."""
    from carveout.bench.separation import separation_cost
    from carveout.datasets import load_kuairec
    from carveout.recommend import train_cell

    with fail_on_errors():
        _fresh(data_dir)
        console.rule("carveout demo: real KuaiRec data, one global cell")
        deployment = init_data_dir(data_dir)
        with _progress() as bars:
            tasks: dict[str, object] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bars.add_task(stage, total=total)
                bars.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

            report = load_kuairec(deployment, settings.datasets_dir(datasets), progress=progress)
        console.print(
            f"loaded {report.total('users'):,} users, {report.total('videos'):,} "
            f"videos, {report.total('events'):,} events"
        )
        manifest = train_cell(deployment.cell("global"))
        console.print(f"recommender trained: model {manifest.version}")
        server = _serve(data_dir, host, port)
        base = f"http://{host}:{port}"
        try:
            writers = _writers(base, deployment)
            console.rule(
                f"serving on {base}; {len(writers)} writers in "
                f"{', '.join(MOVING + STAYING)}; carving {', '.join(MOVING)} live"
            )
            with Traffic(base, writers):
                time.sleep(1.0)
                spec = carve.start(deployment, MOVING, "na-anz")
                with _progress() as bars:
                    outcome = carve.run(deployment, spec, reporter=RichReporter(bars))
                time.sleep(1.0)
            deployment.refresh_policy()
            lost, dup = _ledger(deployment, writers)
            # The carved cell depends on nothing of global, yet its users had watched, liked
            # and commented on global videos: the logged content exchange brings those back
            # as guest copies, re-moderated by na-anz.
            with console.status("content exchange: guest copies of the global videos J used"):
                shared = exchange.sync(
                    deployment.policy,
                    deployment.cell("global"),
                    deployment.cell("na-anz"),
                    only_referenced=True,
                )
            console.print("measuring the quality the carved recommender keeps (3 seeds)...")
            quality = separation_cost(settings.datasets_dir(datasets), MOVING, seeds=3)
            _print_summary(outcome, writers, lost, dup, shared, quality.kept, quality.summary())
            if serve:
                console.print(f"\nserving both cells on {base} (docs: {base}/docs); Ctrl-C stops")
                server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.terminate()
            server.wait(timeout=10)
            deployment.close()


def _print_summary(
    outcome: carve.CarveOutcome,
    writers: list[Writer],
    lost: int,
    dup: int,
    shared: exchange.SyncReport,
    kept: float,
    quality: dict[str, object],
) -> None:
    moving = [x for w in writers if w.country in MOVING for x in w.latencies]
    staying = [x for w in writers if w.country not in MOVING for x in w.latencies]
    errors = sum(len(w.errors) for w in writers)
    table = Table(
        title="carve US, CA, AU, NZ out of `global` into `na-anz`, live", show_header=False
    )
    pause = outcome.cutover.pause_ms if outcome.cutover else float("nan")
    rows = [
        ("write pause (fence up to down)", f"{pause:.0f} ms"),
        ("slowest write, moving writers", f"{max(moving) * 1000:.0f} ms"),
        (
            "p99 write, moving / staying",
            f"{np.percentile(moving, 99) * 1000:.0f} ms / "
            f"{np.percentile(staying, 99) * 1000:.0f} ms",
        ),
        ("writes acknowledged / failed", f"{sum(w.acked for w in writers):,} / {errors}"),
        ("lost / duplicated writes", f"{lost} / {dup}"),
        ("rows copied", f"{outcome.copy.rows:,} in {outcome.copy.chunks} chunks"),
        ("changes applied while serving", f"{outcome.apply.changes:,}"),
        (
            "verify",
            f"{outcome.verify.chunks if outcome.verify else 0} chunks, "
            f"{len(outcome.verify.mismatches) if outcome.verify else '?'} mismatches",
        ),
        ("leaks found in na-anz", str(outcome.leaks.leaks if outcome.leaks else "?")),
        (
            "rows of US/CA/AU/NZ left in global",
            str(outcome.purge.remaining_rows if outcome.purge else "?"),
        ),
        (
            "guest copies (content exchange)",
            f"{sum(shared.copied.values()):,} from global, {len(shared.failures)} failed",
        ),
        ("quality kept (NDCG@10 of J's users)", f"{kept:.1%} of the global model's"),
        ("phases (s)", ", ".join(f"{k} {v:.1f}" for k, v in outcome.seconds.items())),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    g = quality["global_model_ndcg@10"]
    c = quality["carved_model_ndcg@10"]
    assert isinstance(g, dict) and isinstance(c, dict)
    console.print(
        f"NDCG@10 on J's users: global model {g['mean']:.4f}, model trained on "
        f"J's data alone {c['mean']:.4f} (KuaiRec protocol, {quality['seeds']} seeds)"
    )
