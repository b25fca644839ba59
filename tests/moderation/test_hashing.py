"""PDQ and vPDQ conformance on ThreatExchange's published media, and bad media refused."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from carveout.core import InvalidInput
from carveout.core.settings import datasets_dir
from carveout.moderation import hamming, hash_image, hash_video, parse_hash_list, vpdq, vpdq_plan
from carveout.moderation.index import LinearIndex, MultiIndex, pack
from media import make_video

PDQ = datasets_dir() / "pdq-threatexchange"
needs_data = pytest.mark.skipif(not PDQ.is_dir(), reason="ThreatExchange media not present")
TOLERANCE = 10  # the data README: pdqhash 0.2.8 lands within 0-10 bits of published hashes


@needs_data
def test_image_hashes_match_published_ones() -> None:
    rows = list(csv.reader((PDQ / "expected_pdq_cpp_readme_dih.csv").open()))
    assert len(rows) == 8
    for expected, rel in rows:
        got = hash_image(PDQ / "images/reg-test-input/dih" / Path(rel).name)
        assert got.quality == 100
        assert hamming(got.hex, expected) <= TOLERANCE, rel


@needs_data
def test_video_frame_hashes_match_vpdq_samples() -> None:
    name = "chair-19-sd-bar"
    published = {}
    for line in (PDQ / "vpdq-sample-hashes" / f"{name}.txt").read_text().splitlines():
        _, _, hexdigest, seconds = line.split(",")
        published[round(float(seconds), 3)] = hexdigest
    video = hash_video(PDQ / "videos" / f"{name}.mp4")
    assert len(video.frames) == 19  # 18.8 s at 1 frame per second
    for frame in video.frames:
        nearest = min(published, key=lambda t: abs(t - frame.seconds))
        assert hamming(frame.hex, published[nearest]) <= TOLERANCE


def _smooth_clip(path: Path, seconds: int = 12, idr_every: int = 0) -> Path:
    """A moving gradient, the kind of content x264 codes with B-frames (noise gets none), at
    NTSC's 29.97 frames per second: frames fall between the whole seconds the sampler asks for,
    so the frame it takes is one the decoder may have skipped if the plan were wrong.
    `idr_every` frames an IDR picture (0: x264's choice, one at the start here)."""
    from fractions import Fraction

    import av

    y, x = np.mgrid[0:96, 0:128]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        if idr_every:
            stream.codec_context.gop_size = idr_every
        for i in range(seconds * 30):
            shade = ((x * 2 + y + i * 3) % 256).astype(np.uint8)
            rgb = np.stack([shade, np.roll(shade, i, axis=1), 255 - shade], axis=-1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


def _same_hashes(path: Path) -> tuple[int, int]:
    with mock.patch.object(vpdq, "_decode_and_hash", wraps=vpdq._decode_and_hash) as runs:
        fast = hash_video(path, keep_all=True)
    # The plan held: no second decode of every frame (plan None).
    assert all(call.args[5] is not None for call in runs.call_args_list), path.name
    every = hash_video(path, keep_all=True, skip_unsampled=False)
    assert fast.frames == every.frames, path.name
    assert fast.sampled == every.sampled
    return fast.decoded, every.decoded


def test_skipping_unsampled_frames_changes_no_hash(tmp_path: Path) -> None:
    fast, every = _same_hashes(_smooth_clip(tmp_path / "smooth.mp4"))
    assert fast < every * 0.8, (fast, every)  # it does skip: non-reference B-frames


@needs_data
def test_skipping_unsampled_frames_changes_no_hash_on_the_samples() -> None:
    skipped = 0
    for video in sorted((PDQ / "videos").glob("*.mp4")):
        fast, every = _same_hashes(video)
        skipped += every - fast
    assert skipped > 0


def test_runs_from_idr_pictures_hash_as_one_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = _smooth_clip(tmp_path / "idr.mp4", idr_every=45)
    monkeypatch.setattr(vpdq.os, "cpu_count", lambda: 3)
    plan = vpdq._scan(clip, vpdq.DEFAULT_FPS, vpdq.MAX_FRAMES)
    assert plan is not None and len(plan.starts) == 2  # three runs, one per "core"
    with mock.patch.object(vpdq, "_hash_run", wraps=vpdq._hash_run) as runs:
        fast, every = _same_hashes(clip)
    assert runs.call_count == 3
    assert fast < every * 0.8, (fast, every)
    # While another upload decodes in runs, this one takes one frame-threaded decoder.
    with vpdq._RUNS, mock.patch.object(vpdq, "_hash_run", wraps=vpdq._hash_run) as runs:
        assert _same_hashes(clip) == (fast, every)
    assert runs.call_count == 0


def test_h264_packets_tell_idr_and_reference_pictures(tmp_path: Path) -> None:
    import av

    clip = _smooth_clip(tmp_path / "idr.mp4", seconds=4, idr_every=45)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata
        kinds = [
            (vpdq_plan._h264_kind(bytes(p), extradata), p.is_keyframe)
            for p in container.demux(stream)
            if p.size
        ]
    assert [idr for (idr, _), _ in kinds] == [key for _, key in kinds]
    assert sum(idr for (idr, _), _ in kinds) == 3  # frames 0, 45 and 90 of 120
    assert 0 < sum(not ref for (_, ref), _ in kinds) < len(kinds)  # B-frames nothing uses
    assert vpdq_plan._h264_kind(b"\x00\x00\x00\x01\x65", b"") == (False, True)  # not as MP4


@pytest.mark.parametrize("runs", [1, 3])
def test_a_plan_the_decoder_contradicts_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: int
) -> None:
    clip = _smooth_clip(tmp_path / "smooth.mp4", idr_every=45)
    monkeypatch.setattr(vpdq.os, "cpu_count", lambda: runs)
    every = hash_video(clip, keep_all=True, skip_unsampled=False)
    plan = vpdq._scan(clip, vpdq.DEFAULT_FPS, vpdq.MAX_FRAMES)
    assert plan is not None and len(plan.samples) == every.sampled
    assert len(plan.starts) == runs - 1
    missing = sorted(plan.frames - set(plan.samples))[5]
    contradicted = [
        # The decoder returns a frame the packets did not announce.
        replace(plan, frames=plan.frames - {missing}),
        # A planned frame never comes (the decoder dropped it, say).
        replace(plan, samples=(*plan.samples[:3], plan.samples[3] + 1, *plan.samples[4:])),
    ]
    if plan.starts:  # a run would start at a picture that is not an IDR one
        pts, dts = plan.starts[0]
        contradicted.append(replace(plan, starts=((pts + 1001, dts + 1001), *plan.starts[1:])))
    for wrong in contradicted:
        monkeypatch.setattr(vpdq, "_scan", lambda *_: wrong)  # noqa: B023 - used at once
        got = hash_video(clip, keep_all=True)
        assert got.frames == every.frames
        assert got.decoded == every.decoded  # hashed again from every frame


def test_bad_media_is_refused_with_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    clip = make_video(tmp_path / "clip.mp4", seconds=2, seed=1)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    for path in (empty, truncated):
        with pytest.raises(InvalidInput):
            hash_video(path)
    with pytest.raises(InvalidInput, match=r"corrupt|not an image"):
        hash_image(garbage)


def test_malformed_hash_lists_are_refused_whole() -> None:
    good = "f" * 64
    assert [h.pdq for h in parse_hash_list(f"# comment\n{good.upper()},100,x.jpg\n")] == [good]
    for bad in (f"{good}\nxyz\n", f"{good[:-1]}g\n", f"{good}\x07\n", "\n\n"):
        with pytest.raises(InvalidInput):
            parse_hash_list(bad)


def test_multi_index_agrees_with_linear_scan() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**64 - 1, (5000, 4), dtype=np.uint64, endpoint=True)
    codes[4000:4010] = codes[:10]  # the same hash twice in a bank: both rows are hits
    queries = codes[:40].copy()
    for i, flips in enumerate(rng.integers(0, 40, 40)):  # 0-39 flipped bits around the threshold
        for bit in rng.choice(256, int(flips), replace=False):
            queries[i, bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    found = [(h.query, h.row, h.distance) for h in MultiIndex(codes).search(queries)]
    multi = set(found)
    assert len(found) == len(multi)  # a row found through several chunks is reported once
    linear = {(h.query, h.row, h.distance) for h in LinearIndex(codes).search(queries)}
    assert multi == linear
    assert 0 < len(multi) < 60
    assert MultiIndex(codes).search(queries[:0]) == []
    assert pack(["0" * 63 + "1"]).tolist() == [[0, 0, 0, 1]]
