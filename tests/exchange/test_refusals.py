"""Bad input and interruptions: refused before anything is written, or finished by a re-run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from exchange_env import Env, count
from typer.testing import CliRunner

from carveout import exchange
from carveout.cli.main import app
from carveout.datamap import TABLES


def test_an_exchange_the_policy_does_not_allow_is_refused_and_writes_nothing(env: Env) -> None:
    gb = env.signup("GB")
    env.upload(gb, 21)
    before = env.fingerprints()
    closed = env.deployment.cell("closed")
    with pytest.raises(exchange.ExchangeRefused, match="'closed' does not take part"):
        exchange.sync(env.deployment.policy, env.glob, closed)
    with pytest.raises(exchange.ExchangeRefused, match="'closed' does not take part"):
        exchange.sync(env.deployment.policy, closed, env.na)
    with pytest.raises(exchange.ExchangeRefused, match="to itself"):
        exchange.sync(env.deployment.policy, env.na, env.na)
    after = env.fingerprints()
    for name, fp in before.items():
        assert fp.diff(after[name]) == [], name


def test_the_cli_names_the_refusal_and_exits_1(env: Env) -> None:
    runner = CliRunner()
    data = str(env.deployment.data_dir)
    before = env.fingerprints()
    for args, said in (
        (["--from", "global", "--to", "closed"], "does not take part"),
        (["--from", "global", "--to", "nowhere"], "no cell named 'nowhere'"),
        (["--from", "global"], "give --from and --to"),
    ):
        r = runner.invoke(app, ["exchange", "sync", *args, "--data-dir", data])
        assert r.exit_code == 1 and said in r.output, r.output
    after = env.fingerprints()
    for name, fp in before.items():
        assert fp.diff(after[name]) == [], name
    assert not (env.deployment.data_dir / "cells" / "nowhere").exists()


def test_the_cli_syncs_and_shows_the_log(sqlite_env: Env) -> None:
    env = sqlite_env
    v = env.upload(env.signup("GB"), 22)["id"]
    runner = CliRunner()
    data = str(env.deployment.data_dir)
    r = runner.invoke(
        app, ["exchange", "sync", "--from", "global", "--to", "na-anz", "--data-dir", data]
    )
    assert r.exit_code == 0 and "copied: 1 published" in r.output, r.output
    r = runner.invoke(app, ["exchange", "log", "--cell", "na-anz", "--data-dir", data])
    assert r.exit_code == 0 and f"{v} copied" in r.output and "received" in r.output
    r = runner.invoke(app, ["exchange", "guests", "--cell", "na-anz", "--data-dir", data])
    assert "@maker1 published" in r.output and "1 guest videos" in r.output
    r = runner.invoke(app, ["exchange", "sync", "--all", "--data-dir", data])
    assert r.exit_code == 0 and "global -> na-anz" in r.output and "na-anz -> global" in r.output


def test_a_media_file_missing_at_the_origin_fails_that_video_only(env: Env) -> None:
    gb = env.signup("GB")
    broken = env.upload(gb, 23)["id"]
    fine = env.upload(gb, 24)["id"]
    sha = next(o.sha256 for o in exchange.offered(env.glob) if o.id == broken)
    env.glob.blobs.delete(sha)
    report = env.sync()
    assert report.failures == [f"{broken}: media file missing at the origin"]
    assert report.copied == {"published": 1} and not report.ok
    assert exchange.guest(env.na, broken) is None
    assert count(env.na, "videos", TABLES["videos"].c.id == broken) == 0
    assert sha not in set(env.na.blobs.list())
    assert exchange.guest(env.na, fine) is not None
    assert exchange.read_log(env.na.store, video_id=broken)[0].action == "failed"


def test_a_sync_interrupted_between_videos_is_finished_by_running_it_again(env: Env) -> None:
    gb = env.signup("GB")
    ids = [env.upload(gb, seed)["id"] for seed in (25, 26, 27)]

    class Killed(Exception):
        pass

    def die_after_first(_video: str, action: str) -> None:
        if action.startswith("copied"):
            raise Killed

    with pytest.raises(Killed):
        env.sync(on_video=die_after_first)
    assert len(exchange.guests(env.na)) == 1
    report = env.sync()
    assert report.copied == {"published": 2} and report.kept == 1
    assert sorted(g.video_id for g in exchange.guests(env.na)) == sorted(ids)
    assert count(env.na, "videos") == 3 and len(list(env.na.blobs.list())) == 3


def test_a_copy_whose_transaction_fails_leaves_nothing_and_a_rerun_completes(
    sqlite_env: Env,
) -> None:
    """A real failure inside the receiver's transaction (a trigger refusing the second guest
    row): that video's rows roll back and its new media file is removed; a re-run copies it."""
    env = sqlite_env
    gb = env.signup("GB")
    first, second = (env.upload(gb, seed)["id"] for seed in (28, 29))
    with env.na.store.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER fail_second BEFORE INSERT ON guest_videos "
            f"WHEN NEW.video_id = '{second}' BEGIN SELECT RAISE(ABORT, 'disk gone'); END"
        )
    with pytest.raises(Exception, match="disk gone"):
        env.sync()
    assert exchange.guest(env.na, first) is not None
    assert count(env.na, "videos", TABLES["videos"].c.id == second) == 0
    assert len(list(env.na.blobs.list())) == 1
    with env.na.store.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER fail_second")
    report = env.sync()
    assert report.copied == {"published": 1} and report.kept == 1
    assert count(env.na, "videos") == 2 and len(list(env.na.blobs.list())) == 2


def test_videos_of_the_receivers_own_jurisdictions_are_never_guest_copies(env: Env) -> None:
    """Between a carve's cutover and its purge the source still holds the carved
    jurisdictions' videos: they are the receiver's own data, not guest content."""
    gb = env.signup("GB")
    v = env.upload(gb, 51)["id"]
    videos = TABLES["videos"]
    with env.glob.store.begin() as conn:
        conn.execute(sa.update(videos).where(videos.c.id == v).values(domicile="US"))
    report = env.sync()
    assert report.copied == {} and exchange.guests(env.na) == []
