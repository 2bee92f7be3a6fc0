"""VideoFileSource on real files: small videos made here, and the shared Big Buck Bunny clip's metadata."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np
import pytest

from engines.errors import StylizeError
from media import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE
from stream.video_source import VideoFileSource

W, H = 64, 48


def make_video(path: Path, frames: int = 24, fps: int = 24, faststart: bool = False) -> Path:
    """A tiny H.264 MP4 whose frame i is a flat gray of level 10·i, blue-tinted so BGR order shows."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            image = np.full((H, W, 3), 10 * i % 200, np.uint8)
            image[:, :, 0] = 230  # B
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        for k in range(5):
            silence = np.zeros((2, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(silence, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, k * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_reads_properties_and_bgr_frames_with_timestamps(tmp_path):
    path = make_video(tmp_path / "clip.mp4", frames=12)
    with VideoFileSource(path) as source:
        assert (source.width, source.height) == (W, H)
        assert source.fps == Fraction(24)
        assert source.frame_count == 12
        assert source.duration == pytest.approx(0.5, abs=1 / 24)
        assert source.has_audio is False
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.time_base == source.time_base for f in frames)
    assert [f.time for f in frames] == pytest.approx([i / 24 for i in range(12)], abs=1e-6)
    blue, _, red = frames[5].image.reshape(-1, 3).mean(axis=0)
    assert blue > 200 and abs(red - 50) < 8  # BGR order, frame 5 is level 50
    assert not source.ended_early


def test_clip_with_sound_metadata_and_first_frames(clip):
    with VideoFileSource(clip) as source:
        assert (source.width, source.height) == CLIP_SIZE
        assert source.fps == CLIP_FPS
        assert source.frame_count == CLIP_FRAMES
        assert source.duration == pytest.approx(CLIP_FRAMES / CLIP_FPS)
        assert source.has_audio
        first = list(islice(source, 3))
    assert first[0].image.shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3)
    assert [f.pts for f in first] == [0, 512, 1024]  # the MP4 muxer's 1/12288 time base at 24 fps
    assert not np.array_equal(first[0].image, first[2].image)  # the picture moves


def test_shared_video_metadata_and_first_frames(shared_media):
    """A file made by another muxer (the real Big Buck Bunny clip): its known metadata."""
    with VideoFileSource(shared_media / "video" / "big_buck_bunny_480p_30s.mp4") as source:
        assert (source.width, source.height) == (854, 480)
        assert source.fps == 24
        assert source.frame_count == 720
        assert source.duration == pytest.approx(30.0)
        assert source.has_audio
        first = list(islice(source, 3))
    assert first[0].image.shape == (480, 854, 3)
    assert [f.pts for f in first] == [0, 512, 1024]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StylizeError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4")


def test_text_file_named_mp4_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(StylizeError, match="notes.mp4: not a video file"):
        VideoFileSource(path)


def test_truncated_mp4_is_a_clear_error(clip, tmp_path):
    data = clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])  # its index (moov) is at the end: lost
    with pytest.raises(StylizeError, match="damaged or incomplete"):
        VideoFileSource(path)


def test_file_cut_midway_ends_cleanly_after_last_decodable_frame(tmp_path):
    data = make_video(tmp_path / "full.mp4", frames=48, faststart=True).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.85)])  # the index up front survives, the last frames do not
    with VideoFileSource(path) as source:
        frames = list(source)
    assert 0 < len(frames) < 48
    assert source.ended_early
    assert source.damaged_packets <= 1  # at most the half-written last packet


def test_file_without_a_decodable_frame_is_a_clear_error(tmp_path):
    data = make_video(tmp_path / "full.mp4", frames=24, faststart=True).read_bytes()
    path = tmp_path / "header_only.mp4"
    path.write_bytes(data[: data.find(b"mdat") + 8])
    with pytest.raises(StylizeError, match="first video frame cannot be decoded"):
        VideoFileSource(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    with pytest.raises(StylizeError, match="no video stream"):
        VideoFileSource(make_audio_only(tmp_path / "sound.m4a"))


def test_single_thread_decode_and_single_iteration(tmp_path):
    source = VideoFileSource(make_video(tmp_path / "clip.mp4", frames=5), threads=False)
    assert len(list(source)) == 5
    with pytest.raises(RuntimeError):
        iter(source)
    source.close()


def test_max_frames_stops_early_without_calling_it_truncated(tmp_path):
    path = make_video(tmp_path / "v.mp4", frames=24)
    with VideoFileSource(path, max_frames=5) as source:
        frames = list(source)
        assert [f.index for f in frames] == [0, 1, 2, 3, 4]
        assert not source.ended_early


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_a_range_from_a_keyframe_gives_exactly_those_frames(suffix, make_clip, tmp_path):
    """What a segment's worker reads: the same pixels and timestamps as a reader from the start.

    MPEG-TS has no index: its seek lands after the keyframe (or at the end), so the source decodes
    from the beginning instead and still misses nothing.
    """
    clip = make_clip(tmp_path / "clip.mp4", frames=30, gop=5, audio=False)
    if suffix != ".mp4":
        path = tmp_path / f"clip{suffix}"
        with VideoFileSource(clip) as source, av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=20)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            stream.codec_context.gop_size = 5
            for f in source:
                frame = av.VideoFrame.from_ndarray(f.image, format="bgr24")
                frame.pts = f.index
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        clip = path
    full = [(f.pts, f.image) for f in VideoFileSource(clip)]
    with av.open(str(clip)) as c:
        keys = sorted(p.pts for p in c.demux(video=0) if p.size and p.is_keyframe)
    assert len(keys) >= 5
    for start, end in [(keys[1], keys[3]), (keys[-1], None), (keys[2], None)]:
        got = [(f.pts, f.image) for f in VideoFileSource(clip, start_pts=start, end_pts=end)]
        expected = [(p, im) for p, im in full if p >= start and (end is None or p < end)]
        assert [p for p, _ in got] == [p for p, _ in expected]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))
