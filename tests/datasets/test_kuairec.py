"""`carveout load kuairec` against the real KuaiRec, KuaiRand and ThreatExchange files."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from click.testing import Result
from typer.testing import CliRunner

from carveout.accounts import sealed_user_rows
from carveout.cells import Cell, Deployment, init_data_dir
from carveout.cli.load import load_app
from carveout.core import Conflict, NotFound, settings
from carveout.datamap import DATA_MAP, TABLES
from carveout.datasets import (
    JURISDICTION_WEIGHTS,
    KUAIREC_FILES,
    LoadReport,
    assign_jurisdictions,
    load_kuairec,
    quotas,
)
from carveout.datasets.kuairec_files import (
    DURATIONS_CSV,
    MEDIA_DIR,
    MEDIA_FILES,
    parse_topic_tag,
    probe_media,
    read_durations,
)
from carveout.storage import fingerprint, sha256_file

DATASETS = settings.datasets_dir()
KUAIREC = DATASETS / "kuairec"
CARVE_EXAMPLE = {"US", "CA", "AU", "NZ", "SG", "GB"}
NA_ANZ = {"US", "CA", "AU", "NZ"}
DAY_MS = 86_400_000
DS = str(DATASETS)

TWO_CELLS = """\
version = 1

[sites.us]
description = "United States (primary storage)"

[sites.sg]
description = "Singapore (backup site)"

[cells.na-anz]
jurisdictions = ["US", "CA", "AU", "NZ"]
primary_site = "us"
backup_site = "sg"
storage = "sqlite"

[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
content_exchange = true
storage = "sqlite"
"""


def cli(args: list[str]) -> Result:
    """Run `carveout load ...` as the main CLI mounts it (a lone command would be collapsed)."""
    app = typer.Typer()
    app.add_typer(load_app, name="load")
    return CliRunner().invoke(app, ["load", *args])


def csv_rows(name: str) -> list[dict[str, str]]:
    with (KUAIREC / name).open(newline="", encoding="utf-8") as fh:
        # Four captions hold a bare CR the csv module would take for a line end: drop it here.
        return list(csv.DictReader(io.StringIO(fh.read().replace("\r", ""), newline="\n")))


def q(cell: Cell, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with cell.store.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def scalar(cell: Cell, sql: str) -> Any:
    return q(cell, sql)[0][0]


def counts(cell: Cell) -> dict[str, int]:
    return {t.name: scalar(cell, f"SELECT count(*) FROM {t.name}") for t in DATA_MAP.tables}


@pytest.fixture(scope="module")
def watch_csv() -> list[dict[str, str]]:
    return csv_rows("watch_ratio.csv")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, LoadReport]]:
    """The full import into the default policy's single `global` cell, once per module."""
    deployment = init_data_dir(tmp_path_factory.mktemp("one-cell"))
    report = load_kuairec(deployment, DATASETS, seed=7)
    yield deployment, report
    deployment.close()


@pytest.fixture(scope="module")
def two_cells(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    """The full import through the CLI into a policy with cells `na-anz` and `global`."""
    data_dir = tmp_path_factory.mktemp("two-cells")
    init_data_dir(data_dir, TWO_CELLS).close()
    result = cli(["kuairec", "--data-dir", str(data_dir), "--datasets", str(DATASETS)])
    assert result.exit_code == 0, result.output
    deployment = Deployment.open(data_dir)
    yield deployment, result.stdout
    deployment.close()


# --- the jurisdiction mix (fast) ---------------------------------------------------------------


def test_jurisdiction_mix_is_deterministic_and_covers_the_carve_examples() -> None:
    first = assign_jurisdictions(7176, seed=7)
    assert first == assign_jurisdictions(7176, seed=7)
    assert first != assign_jurisdictions(7176, seed=8)
    assert Counter(first) == Counter(assign_jurisdictions(7176, seed=8))  # same mix, other order
    assert set(first) >= CARVE_EXAMPLE
    assert len(set(first)) >= 12
    assert Counter(first) == quotas(7176)


@pytest.mark.parametrize("n", [0, 1, 17, 999, 7176, 100_003])
def test_quotas_follow_the_weight_table(n: int) -> None:
    shares = quotas(n)
    total = sum(JURISDICTION_WEIGHTS.values())
    assert sum(shares.values()) == n
    for code, weight in JURISDICTION_WEIGHTS.items():
        assert abs(shares[code] - n * weight / total) < 1


def test_topic_tags_parse_to_lists() -> None:
    assert parse_topic_tag("[]") == []
    assert parse_topic_tag("[井柏然,宋威龙,张公案]") == ["井柏然", "宋威龙", "张公案"]
    assert parse_topic_tag("[a, b ,,c]") == ["a", "b", "c"]


# --- missing files and the CLI's errors (fast) --------------------------------------------------


def partial_datasets(tmp_path: Path, drop: set[str]) -> Path:
    root = tmp_path / "datasets"
    for item in KUAIREC_FILES:
        if item.path not in drop:
            target = root / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(DATASETS / item.path)
    root.mkdir(exist_ok=True)
    return root


def test_a_missing_file_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    cell = deployment.cell("global")
    before = fingerprint(cell.store, cell.blobs)
    drop = {"kuairec/watch_ratio.csv", f"{MEDIA_DIR}/{MEDIA_FILES[0]}"}
    with pytest.raises(NotFound) as err:
        load_kuairec(deployment, partial_datasets(tmp_path, drop))
    message = str(err.value)
    for path in drop:
        assert path in message
    assert "https://kuairec.com" in message
    assert "https://github.com/facebook/ThreatExchange" in message
    assert "kuairand" not in message  # only what is missing
    assert fingerprint(cell.store, cell.blobs).diff(before) == []
    deployment.close()


def test_an_empty_datasets_folder_names_every_file_and_publisher(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    with pytest.raises(NotFound) as err:
        load_kuairec(deployment, partial_datasets(tmp_path, {f.path for f in KUAIREC_FILES}))
    message = str(err.value)
    assert all(f.path in message for f in KUAIREC_FILES)
    for url in ("kuairec.com", "kuairand.com", "github.com/facebook/ThreatExchange"):
        assert url in message
    deployment.close()


def test_cli_without_a_deployment_suggests_init(tmp_path: Path) -> None:
    result = cli(["kuairec", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "carveout init" in result.stderr
    assert "Traceback" not in result.output


def test_cli_with_missing_datasets_fails_cleanly(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "data").close()
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["kuairec", "--data-dir", str(tmp_path / "data"), "--datasets", str(empty)]
    result = cli(args)
    assert result.exit_code == 1
    assert "kuairec/user_features.csv" in result.stderr
    assert "https://kuairec.com" in result.stderr
    assert "Traceback" not in result.output


# --- a failed import leaves nothing behind ------------------------------------------------------


@pytest.mark.slow
def test_a_taken_handle_is_refused_before_any_write(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    cell = deployment.cell("global")
    someone = {
        "id": "0190a000-0000-7000-8000-000000000001",
        "domicile": "FR",
        "handle": "kr42",
        "display_name": "someone",
        "email": "someone@example.org",
        "birth_year": 1990,
        "password_hash": "",
        "status": "active",
        "created_at": 1,
    }
    cell.store.bulk_insert("users", sealed_user_rows(cell.vault, [someone]))
    before = fingerprint(cell.store, cell.blobs)
    with pytest.raises(Conflict, match="kr42"):
        load_kuairec(deployment, DATASETS)
    assert fingerprint(cell.store, cell.blobs).diff(before) == []
    deployment.close()


@pytest.mark.slow
def test_a_write_failing_midway_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = init_data_dir(tmp_path / "data")
    cell = deployment.cell("global")
    before = fingerprint(cell.store, cell.blobs)
    real = cell.store.bulk_insert
    calls = Counter[str]()

    def failing(table: str, rows: Any) -> int:
        calls[table] += 1
        if table == "events" and calls[table] == 3:
            raise RuntimeError("disk full")
        return real(table, rows)

    monkeypatch.setattr(cell.store, "bulk_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        load_kuairec(deployment, DATASETS)
    assert calls["users"] == 2 and calls["events"] == 3  # rows were written, then removed
    assert fingerprint(cell.store, cell.blobs).diff(before) == []
    deployment.close()


# --- the full import into one cell --------------------------------------------------------------


@pytest.mark.slow
def test_counts_equal_the_csv_rows(
    loaded: tuple[Deployment, LoadReport], watch_csv: list[dict[str, str]]
) -> None:
    deployment, report = loaded
    cell = deployment.cell("global")
    got = counts(cell)
    liked = sum(float(r["watch_ratio"]) >= 2.0 for r in watch_csv)
    assert got["users"] == len(csv_rows("user_features.csv")) == 7176
    assert got["videos"] == 10_728
    assert got["likes"] == liked
    kinds = dict(q(cell, "SELECT kind, count(*) FROM events GROUP BY kind"))
    assert kinds == {"watch": len(watch_csv), "impression": len(watch_csv), "like": liked}
    assert got["video_stats"] == 10_728
    assert got["blobs"] == scalar(
        cell, "SELECT count(*) FROM (SELECT DISTINCT blob_id FROM videos) AS used"
    )
    for table in ("users", "blobs", "videos", "events", "likes", "video_stats"):
        assert report.total(table) == got[table]
    assert set(cell.blobs.list()) == {r[0] for r in q(cell, "SELECT sha256 FROM blobs")}
    assert report.cross_cell_events == 0


@pytest.mark.slow
def test_every_row_follows_the_domicile_rules(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    n_videos, n_events, n_likes = 10_728, counts(cell)["events"], counts(cell)["likes"]
    joined = "SELECT count(*), sum(CASE WHEN a.domicile = b.domicile THEN 1 ELSE 0 END) FROM "
    assert q(cell, joined + "videos a JOIN users b ON a.creator_id = b.id") == [(n_videos,) * 2]
    assert q(cell, joined + "events a JOIN users b ON a.user_id = b.id") == [(n_events,) * 2]
    assert q(cell, joined + "likes a JOIN users b ON a.user_id = b.id") == [(n_likes,) * 2]
    assert q(cell, joined + "videos a JOIN blobs b ON a.blob_id = b.id") == [(n_videos,) * 2]
    blobs = counts(cell)["blobs"]
    assert q(cell, joined + "blobs a JOIN users b ON a.owner_id = b.id") == [(blobs,) * 2]
    assert q(cell, joined + "video_stats a JOIN videos b ON a.video_id = b.id") == [(n_videos,) * 2]


@pytest.mark.slow
def test_users_get_the_seeded_jurisdictions(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    expected = assign_jurisdictions(7176, seed=7)
    got = {int(u["handle"][2:]): u["domicile"] for u in _users(cell)}
    assert [got[i] for i in range(7176)] == expected
    assert set(loaded[1].rows["users"]) >= CARVE_EXAMPLE


@pytest.mark.slow
def test_imported_fields(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    year = datetime.fromtimestamp(loaded[1].reference_ms / 1000, UTC).year
    for u in _users(cell):
        uid, handle, name, email = u["id"], u["handle"], u["display_name"], u["email"]
        birth, password, status = u["birth_year"], u["password_hash"], u["status"]
        number = handle.removeprefix("kr")
        assert name == f"KuaiRec user {number}" and email == f"kr{number}@kuairec.invalid"
        assert year - 70 <= birth <= year - 13
        assert password == "" and status == "active" and uid
    captions = csv_rows("kuairec_caption_category.csv")
    assert len(captions) == 10_728
    videos = q(cell, "SELECT external_ref, caption, hashtags, category, status FROM videos")
    assert {v[0] for v in videos} == {f"kuairec:{i}" for i in range(10_728)}
    assert sum(v[1] == "" for v in videos) == sum(r["caption"] == "" for r in captions) == 1355
    assert sum("\r" in v[1] for v in videos) == 4  # the bare CRs survive the import
    by_ref = {f"kuairec:{r['video_id']}": r for r in captions}
    for ref, caption, hashtags, category, _ in videos:
        assert caption.replace("\r", "") == by_ref[ref]["caption"]
        assert category == by_ref[ref]["first_level_category_name"]
        assert json.loads(hashtags) == parse_topic_tag(by_ref[ref]["topic_tag"])
    assert all(isinstance(json.loads(v[2]), list) for v in videos)
    assert sum(json.loads(v[2]) != [] for v in videos) == 10_728 - 4611
    assert {v[4] for v in videos} == {"published"}


@pytest.mark.slow
def test_media_and_durations_are_real(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    dims = {}
    for name in MEDIA_FILES:
        path = DATASETS / MEDIA_DIR / name
        media = probe_media(path)
        dims[sha256_file(path)[0]] = (media.width, media.height)
    rows = q(
        cell,
        "SELECT v.width, v.height, b.sha256, b.size_bytes, b.content_type, v.duration_ms "
        "FROM videos v JOIN blobs b ON v.blob_id = b.id",
    )
    real_durations = set(read_durations(DATASETS / DURATIONS_CSV).tolist())
    for width, height, sha, size, content_type, duration in rows:
        assert (width, height) == dims[sha]
        assert size == cell.blobs.size(sha) and content_type == "video/mp4"
        assert duration in real_durations and 3_000 <= duration <= 600_000
    assert len({r[2] for r in rows}) == len(MEDIA_FILES)


@pytest.mark.slow
def test_watches_match_the_csv(
    loaded: tuple[Deployment, LoadReport], watch_csv: list[dict[str, str]]
) -> None:
    cell = loaded[0].cell("global")
    rows = q(
        cell,
        "SELECT e.user_id, v.external_ref, e.watched_ms, v.duration_ms FROM events e "
        "JOIN videos v ON e.video_id = v.id WHERE e.kind = 'watch'",
    )
    handle = {u["id"]: u["handle"] for u in _users(cell)}
    got = {(handle[u][2:], ref.removeprefix("kuairec:")): (w, d) for u, ref, w, d in rows}
    assert len(got) == len(watch_csv)
    for r in watch_csv:
        watched, duration = got[(r["user_id"], r["video_id"])]
        assert watched == round(float(r["watch_ratio"]) * duration)
    csv_mean = sum(float(r["watch_ratio"]) for r in watch_csv) / len(watch_csv)
    event_mean = sum(w / d for w, d in got.values()) / len(got)
    assert math.isclose(event_mean, csv_mean, abs_tol=0.5 / 3_000)


@pytest.mark.slow
def test_times_are_past_ordered_and_in_the_window(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    reference = loaded[1].reference_ms
    now = time.time_ns() // 1_000_000
    assert reference % DAY_MS == 0 and now - DAY_MS < reference <= now
    lo, hi = q(cell, "SELECT min(created_at), max(created_at) FROM events")[0]
    assert reference - 30 * DAY_MS < lo and hi < reference
    for table in ("users", "videos", "blobs", "likes"):
        assert scalar(cell, f"SELECT max(created_at) FROM {table}") < reference
    late = (
        "SELECT count(*) FROM events e JOIN users u ON e.user_id = u.id "
        "JOIN videos v ON e.video_id = v.id "
        "WHERE e.created_at <= u.created_at OR e.created_at <= v.created_at"
    )
    assert scalar(cell, late) == 0
    assert (
        scalar(
            cell,
            "SELECT count(*) FROM videos v JOIN users u ON v.creator_id = u.id "
            "WHERE v.created_at <= u.created_at",
        )
        == 0
    )
    by_pair: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for user, video, kind, at in q(cell, "SELECT user_id, video_id, kind, created_at FROM events"):
        by_pair[(user, video)][kind] = at
    for kinds in by_pair.values():
        assert kinds["impression"] < kinds["watch"] < kinds.get("like", math.inf)
    like_times = dict(
        ((u, v), t) for u, v, t in q(cell, "SELECT user_id, video_id, created_at FROM likes")
    )
    assert like_times == {p: k["like"] for p, k in by_pair.items() if "like" in k}


@pytest.mark.slow
def test_video_stats_equal_a_recomputation(loaded: tuple[Deployment, LoadReport]) -> None:
    cell = loaded[0].cell("global")
    duration = dict(q(cell, "SELECT id, duration_ms FROM videos"))
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    ratio: dict[str, float] = defaultdict(float)
    for video, kind, watched in q(cell, "SELECT video_id, kind, watched_ms FROM events"):
        expected[video][kind] += 1
        if kind == "watch":
            expected[video]["watched_ms"] += watched
            ratio[video] += watched / duration[video]
    stats = q(
        cell,
        "SELECT video_id, impressions, watches, watched_ms, likes, comments, shares, skips, "
        "watch_ratio_sum FROM video_stats",
    )
    assert len(stats) == len(duration)
    for video, impressions, watches, watched_ms, likes, comments, shares, skips, rsum in stats:
        e = expected[video]
        assert (impressions, watches, watched_ms, likes) == (
            e["impression"],
            e["watch"],
            e["watched_ms"],
            e["like"],
        )
        assert comments == shares == skips == 0
        assert math.isclose(rsum, ratio[video], rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.slow
def test_a_second_load_is_refused_or_skipped(loaded: tuple[Deployment, LoadReport]) -> None:
    deployment = loaded[0]
    cell = deployment.cell("global")
    before = counts(cell)
    with pytest.raises(Conflict, match="already loaded"):
        load_kuairec(deployment, DATASETS)
    skipped = load_kuairec(deployment, DATASETS, if_empty=True)
    assert skipped.skipped and skipped.total("users") == 0
    assert counts(cell) == before
    result = cli(
        ["kuairec", "--data-dir", str(deployment.data_dir), "--datasets", DS],
    )
    assert result.exit_code == 1 and "already loaded" in result.stderr
    assert "Traceback" not in result.output
    result = cli(
        ["kuairec", "--if-empty", "--data-dir", str(deployment.data_dir), "--datasets", DS],
    )
    assert result.exit_code == 0 and "skipped" in result.stdout
    assert counts(cell) == before


# --- the full import into two cells ------------------------------------------------------------


@pytest.mark.slow
def test_two_cells_hold_exactly_their_jurisdictions(
    two_cells: tuple[Deployment, str], loaded: tuple[Deployment, LoadReport]
) -> None:
    deployment, output = two_cells
    na, rest = deployment.cell("na-anz"), deployment.cell("global")
    for table in DATA_MAP.tables:
        na_doms = {r[0] for r in q(na, f"SELECT DISTINCT domicile FROM {table.name}")}
        rest_doms = {r[0] for r in q(rest, f"SELECT DISTINCT domicile FROM {table.name}")}
        assert na_doms <= NA_ANZ, table.name
        assert not rest_doms & NA_ANZ, table.name
    single = counts(loaded[0].cell("global"))
    na_counts, rest_counts = counts(na), counts(rest)
    for table in DATA_MAP.tables:
        assert na_counts[table.name] + rest_counts[table.name] == single[table.name], table.name
    assert na_counts["users"] == sum(loaded[1].rows["users"][c] for c in NA_ANZ)
    for cell in (na, rest):
        assert set(cell.blobs.list()) == {r[0] for r in q(cell, "SELECT sha256 FROM blobs")}
        orphans = "SELECT count(*) FROM videos v LEFT JOIN blobs b ON v.blob_id = b.id "
        assert scalar(cell, orphans + "WHERE b.id IS NULL") == 0
    # Watch events live with the user even when the video lives in the other cell.
    foreign = "SELECT count(*) FROM events e LEFT JOIN videos v ON e.video_id = v.id "
    cross = scalar(na, foreign + "WHERE v.id IS NULL") + scalar(
        rest, foreign + "WHERE v.id IS NULL"
    )
    assert cross > 0
    assert f"{cross:,} events reference a video in another cell" in " ".join(output.split())
    assert "na-anz" in output and "global" in output


def _users(cell: Cell) -> list[dict[str, Any]]:
    """The cell's users with their sealed fields opened."""
    with cell.store.connect() as conn:
        rows = conn.execute(sa.select(TABLES["users"])).all()
    return cell.vault.open_rows(DATA_MAP.table("users"), rows)
