"""Uploading, reading and streaming videos; every refused upload leaves the cell as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from apiclient import Api, auth

from carveout.core import new_id, now_ms
from carveout.datamap import TABLES
from media import make_audio_only, make_video


def test_upload_then_read_metadata_and_media(api: Api) -> None:
    a = api.signup("AU")
    video = api.upload(a, seed=1, caption="Surf 🏄 day", hashtags="#surf, beach")
    assert video["status"] == "published"
    assert video["domicile"] == "AU"
    assert video["hashtags"] == ["surf", "beach"]
    assert (video["width"], video["height"], video["duration_ms"]) == (64, 64, 1000)
    got = api.client.get(f"/v1/videos/{video['id']}", headers=auth(a)).json()
    assert got == video

    original = (api.tmp / f"clip-1-{api._n}.mp4").read_bytes()
    full = api.client.get(video["media_url"], headers=auth(a))
    assert full.status_code == 200
    assert full.content == original
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"

    part = api.client.get(video["media_url"], headers={**auth(a), "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == original[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(original)}"
    tail = api.client.get(video["media_url"], headers={**auth(a), "Range": "bytes=-50"})
    assert tail.content == original[-50:]
    bad = api.client.get(
        video["media_url"], headers={**auth(a), "Range": f"bytes={len(original) + 10}-"}
    )
    assert bad.status_code == 416


def test_same_file_twice_is_stored_once(api: Api) -> None:
    a = api.signup()
    first = api.upload(a, seed=5)
    second = api.upload(a, seed=5)
    assert first["id"] != second["id"]
    cell = api.deployment.cells()[0]
    assert len(list(cell.blobs.list())) == 1


def _post(api: Api, headers: dict[str, str], path: Path, **form: str) -> tuple[int, str]:
    with path.open("rb") as fh:
        r = api.client.post(
            "/v1/videos",
            headers=auth(headers),
            files={"file": ("x.mp4", fh, "video/mp4")},
            data=form,
        )
    return r.status_code, r.text


def test_refused_uploads_change_nothing(api: Api, tmp_path: Path) -> None:
    a = api.signup()
    api.upload(a, seed=2)
    before = api.fingerprints()

    not_video = tmp_path / "notes.mp4"
    not_video.write_text("just some text, not a video")
    good = make_video(tmp_path / "good.mp4", seconds=3, seed=9)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    mpeg4 = make_video(tmp_path / "mpeg4.mp4", codec="mpeg4", seed=3)
    too_short = make_video(tmp_path / "short.mp4", seconds=0.2, seed=4)
    audio_only = make_audio_only(tmp_path / "tone.mp4")
    too_wide = make_video(tmp_path / "wide.mp4", size=4160, height=16, seconds=1, fps=2, seed=5)

    cases = [
        (truncated, {}, "truncated"),
        (empty, {}, "empty"),
        (mpeg4, {}, "codec"),
        (too_short, {}, "duration"),
        (audio_only, {}, "no video stream"),
        (too_wide, {}, "frame size 4160x16 too large"),
        (good, {"hashtags": "bad tag!"}, "hashtag"),
        (good, {"caption": "x" * 2201}, "caption"),
    ]
    for path, form, needle in cases:
        status, text = _post(api, a, path, **form)
        assert status == 422, (path.name, text)
        assert needle in text, (path.name, text)
    api.assert_unchanged(before)


def test_oversize_body_is_413_and_changes_nothing(make_api: Callable[..., Api]) -> None:
    api = make_api(max_body_bytes=20_000)
    a = api.signup()
    before = api.fingerprints()
    big = make_video(api.tmp / "big.mp4", seconds=4, size=128, seed=7)
    assert big.stat().st_size > 20_000
    status, text = _post(api, a, big)
    assert status == 413
    assert "limit" in text
    api.assert_unchanged(before)


def test_upload_needs_auth_and_a_file(api: Api) -> None:
    path = api.video_file(seed=1)
    with path.open("rb") as fh:
        r = api.client.post("/v1/videos", files={"file": ("x.mp4", fh, "video/mp4")})
    assert r.status_code == 401
    a = api.signup()
    r = api.client.post("/v1/videos", headers=auth(a), data={"caption": "no file"})
    assert r.status_code == 422


def test_unknown_video_is_404(api: Api) -> None:
    a = api.signup()
    missing = "0190a000-0000-7000-8000-000000000000"
    assert api.client.get(f"/v1/videos/{missing}", headers=auth(a)).status_code == 404
    assert api.client.get(f"/v1/videos/{missing}/media", headers=auth(a)).status_code == 404


def test_restricted_video_is_451_in_that_jurisdiction_only(api: Api) -> None:
    creator = api.signup("US")
    viewer_de = api.signup("DE")
    viewer_fr = api.signup("FR")
    video = api.upload(creator, seed=3)
    cell = api.deployment.cells()[0]
    with cell.store.begin() as conn:
        conn.execute(
            sa.insert(TABLES["video_restrictions"]).values(
                id=new_id(),
                domicile="US",
                video_id=video["id"],
                jurisdiction="DE",
                reason="test",
                created_at=now_ms(),
            )
        )
    r = api.client.get(f"/v1/videos/{video['id']}", headers=auth(viewer_de))
    assert r.status_code == 451 and "DE" in r.json()["detail"]
    assert api.client.get(video["media_url"], headers=auth(viewer_de)).status_code == 451
    assert api.client.get(f"/v1/videos/{video['id']}", headers=auth(viewer_fr)).status_code == 200
    feed_de = api.client.get("/v1/feed", headers=auth(viewer_de)).json()["items"]
    assert video["id"] not in [i["video"]["id"] for i in feed_de]


def test_list_by_creator_paginates_newest_first(api: Api) -> None:
    a = api.signup()
    b = api.signup()
    ids = [api.upload(a, seed=s)["id"] for s in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"/v1/users/{a['X-User']}/videos", headers=auth(b), params=params)
        assert page.status_code == 200
        seen += [v["id"] for v in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    bad = api.client.get(
        f"/v1/users/{a['X-User']}/videos", headers=auth(b), params={"cursor": "!!notacursor"}
    )
    assert bad.status_code == 422
    too_many = api.client.get(
        f"/v1/users/{a['X-User']}/videos", headers=auth(b), params={"limit": 1000}
    )
    assert too_many.status_code == 422


@pytest.mark.parametrize("codec", ["libvpx-vp9"])
def test_webm_vp9_is_accepted(api: Api, codec: str) -> None:
    a = api.signup()
    path = make_video(api.tmp / "clip.webm", codec=codec, seed=11)
    with path.open("rb") as fh:
        r = api.client.post(
            "/v1/videos", headers=auth(a), files={"file": ("clip.webm", fh, "video/webm")}
        )
    assert r.status_code == 201, r.text
    media = api.client.get(r.json()["media_url"], headers=auth(a))
    assert media.headers["content-type"] == "video/webm"


def test_frames_that_decode_to_garbage_never_crash_the_upload(api: Api, tmp_path: Path) -> None:
    """Bytes overwritten in the middle of a real sample video (the header and the length
    intact): each upload is either refused with a reason, changing nothing, or accepted with
    whatever the decoder makes of the damaged frames; never a server error."""
    from carveout.core.settings import datasets_dir

    sample = datasets_dir() / "pdq-threatexchange" / "videos" / "chair-19-sd-bar.mp4"
    data = sample.read_bytes()
    a = api.signup()
    outcomes = set()
    for seed, start in enumerate((len(data) // 4, len(data) // 2, len(data) * 3 // 4)):
        rng = np.random.default_rng(seed)
        damaged = bytearray(data)
        damaged[start : start + 20_000] = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
        path = tmp_path / f"damaged{seed}.mp4"
        path.write_bytes(bytes(damaged))
        before = api.fingerprints()
        status, text = _post(api, a, path)
        assert status in (201, 422), (seed, status, text)
        if status == 422:
            assert "detail" in text
            api.assert_unchanged(before)
        outcomes.add(status)
    assert outcomes, outcomes  # every damaged file got an answer


def test_truncated_faststart_upload_is_named_truncated(api: Api, tmp_path: Path) -> None:
    """A real phone-style MP4 (index first) cut short still opens: the frame count catches it."""
    from carveout.core.settings import datasets_dir

    sample = datasets_dir() / "pdq-threatexchange" / "videos" / "chair-19-sd-bar.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(sample.read_bytes()[:1_000_000])
    a = api.signup()
    before = api.fingerprints()
    status, text = _post(api, a, cut)
    assert status == 422
    assert "truncated" in text and "of 564 frames" in text
    api.assert_unchanged(before)
    status, _ = _post(api, a, sample)
    assert status == 201


def test_a_creator_deletes_their_video_and_others_cannot(api: Api) -> None:
    a, b = api.signup("AU"), api.signup("AU")
    clip = make_video(api.tmp / "shared.mp4", seed=31)

    def post(who: dict[str, str]) -> dict[str, str]:
        with clip.open("rb") as fh:
            r = api.client.post(
                "/v1/videos", headers=auth(who), files={"file": ("c.mp4", fh, "video/mp4")}
            )
        assert r.status_code == 201, r.text
        out: dict[str, str] = r.json()
        return out

    video, shared = post(a), post(a)  # the same file: one blob, two videos
    other = api.upload(a, seed=32)
    assert api.client.put(f"/v1/videos/{video['id']}/like", headers=auth(b)).status_code == 200
    before = api.fingerprints()
    assert api.client.delete(f"/v1/videos/{video['id']}", headers=auth(b)).status_code == 403
    assert api.client.delete(f"/v1/videos/{new_id()}", headers=auth(b)).status_code == 404
    api.assert_unchanged(before)
    cell = api.deployment.cell("global")
    files = set(cell.blobs.list())
    assert api.client.delete(f"/v1/videos/{video['id']}", headers=auth(a)).status_code == 204
    assert api.client.get(f"/v1/videos/{video['id']}", headers=auth(a)).status_code == 404
    assert set(cell.blobs.list()) == files  # still used by `shared`
    assert api.client.delete(f"/v1/videos/{shared['id']}", headers=auth(a)).status_code == 204
    assert len(set(cell.blobs.list())) == len(files) - 1
    assert api.client.get(f"/v1/videos/{other['id']}", headers=auth(b)).status_code == 200
    likes = TABLES["likes"]
    with cell.store.connect() as conn:
        kept = conn.execute(
            sa.select(sa.func.count()).select_from(likes).where(likes.c.video_id == video["id"])
        ).scalar_one()
        stats = conn.execute(
            sa.select(sa.func.count())
            .select_from(TABLES["video_stats"])
            .where(TABLES["video_stats"].c.video_id == video["id"])
        ).scalar_one()
    assert kept == 1 and stats == 0  # b's like is b's data; the counters went with the video
