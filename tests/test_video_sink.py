"""VideoFileSink: timing and audio survive a transcode, interruption leaves a playable file or none."""

from __future__ import annotations

import signal
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np
import pytest

from engines.errors import StylizeError
from stream import interrupt
from stream.frames import Frame
from stream.video_sink import VideoFileSink
from stream.video_source import VideoFileSource

W, H = 64, 48


def frames(n: int, with_pts: bool = True) -> list[Frame]:
    """Synthetic frames timed like a 24 fps file (pts in 1/12288), or untimed like a webcam's."""
    tb = Fraction(1, 12288)
    return [
        Frame(np.full((H, W, 3), 8 * i, np.uint8), i, 512 * i if with_pts else None, tb if with_pts else None)
        for i in range(n)
    ]


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def leftovers(folder: Path) -> list[Path]:
    return list(folder.glob("*.partial*"))


def audio_packets(path: Path, until: float | None = None) -> list[bytes]:
    with av.open(str(path)) as container:
        return [
            bytes(p)
            for p in container.demux(audio=0)
            if p.size and (until is None or p.pts * p.time_base < until)
        ]


def test_transcode_keeps_frames_rate_duration_and_audio_bytes(clip, tmp_path):
    source_path = clip  # 3 s at 24 fps, 48 kHz AAC
    out = tmp_path / "out.mp4"
    n = 48  # the first 2 seconds
    with VideoFileSource(source_path) as source:
        size, fps = (source.width, source.height), source.fps
        with VideoFileSink(
            out, width=size[0], height=size[1], fps=fps, time_base=source.time_base, audio_from=source_path
        ) as sink:
            for frame in islice(source, n):
                sink.write(frame.with_image(255 - frame.image))
    assert sink.finalized and not sink.partial and not leftovers(tmp_path)

    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.average_rate == fps
        assert float(video.duration * video.time_base) == pytest.approx(float(n / fps), abs=float(1 / fps))
        assert (video.codec_context.width, video.codec_context.height) == size
        positions = {"audio": [], "video": []}
        for packet in container.demux():
            if packet.size:
                positions[packet.stream.type].append(packet.pos)
    assert abs(len(decoded_frames(out)) - n) <= 1
    converted = audio_packets(source_path, until=n / fps)
    assert len(converted) > 90  # ~2 s of 48 kHz AAC
    assert audio_packets(out) == converted  # copied, not re-encoded
    assert min(positions["audio"]) < max(positions["video"])  # interleaved, not all appended at the end


def test_untimed_frames_are_timed_by_index(tmp_path):
    out = tmp_path / "cam.mp4"
    with VideoFileSink(out, width=W, height=H, fps=30) as sink:
        for frame in frames(15, with_pts=False):
            sink.write(frame)
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.average_rate == 30
        assert float(video.duration * video.time_base) == pytest.approx(0.5, abs=1 / 30)
    assert len(decoded_frames(out)) == 15


def test_ctrl_c_midway_leaves_a_playable_file_with_the_frames_so_far(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoFileSink(out, width=W, height=H, fps=24, time_base=Fraction(1, 12288)) as sink:
            for frame in frames(7):
                sink.write(frame)
            raise KeyboardInterrupt
    assert sink.finalized and sink.partial and sink.frames_written == 7
    decoded = decoded_frames(out)
    assert len(decoded) == 7
    assert [round(float(f.pts * f.time_base) * 24) for f in decoded] == list(range(7))
    assert not leftovers(tmp_path)


def test_ctrl_c_during_encoding_is_held_until_the_frame_is_muxed(tmp_path):
    """The signal lands right after the encoder returned its packets: they must still reach the file."""

    class InterruptingEncoder:
        def __init__(self, stream):
            self.stream = stream

        def encode(self, frame):
            packets = self.stream.encode(frame)
            if frame is not None and frame.pts == 5 * 512:
                signal.raise_signal(signal.SIGINT)
            return packets

    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoFileSink(out, width=W, height=H, fps=24, time_base=Fraction(1, 12288)) as sink:
            sink._video = InterruptingEncoder(sink._video)
            for frame in frames(12):
                sink.write(frame)
    assert sink.frames_written == 6 and sink.partial
    assert len(decoded_frames(out)) == 6


def test_sigterm_during_encoding_is_held_like_ctrl_c_under_the_command_line(tmp_path):
    """With the CLI's handlers, SIGTERM is a Ctrl-C too: held until the frame is muxed, exit code 143."""

    class TerminatingEncoder:
        def __init__(self, stream):
            self.stream = stream

        def encode(self, frame):
            packets = self.stream.encode(frame)
            if frame is not None and frame.pts == 3 * 512:
                signal.raise_signal(signal.SIGTERM)
            return packets

    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), interrupt.signals_as_ctrl_c():
        with VideoFileSink(out, width=W, height=H, fps=24, time_base=Fraction(1, 12288)) as sink:
            sink._video = TerminatingEncoder(sink._video)
            for frame in frames(12):
                sink.write(frame)
    assert sink.frames_written == 4 and sink.partial
    assert len(decoded_frames(out)) == 4 and not leftovers(tmp_path)
    assert (interrupt.exit_code(), interrupt.reason()) == (143, "terminated (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are the command's only


def test_error_before_any_frame_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError):
        with VideoFileSink(out, width=W, height=H, fps=24) as sink:
            raise ValueError("engine failed")
    assert sink.aborted and not sink.finalized
    assert list(tmp_path.iterdir()) == []


def test_abort_leaves_nothing(tmp_path):
    sink = VideoFileSink(tmp_path / "out.mp4", width=W, height=H, fps=24)
    for frame in frames(3):
        sink.write(frame)
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_close_without_frames_is_an_error_and_leaves_nothing(tmp_path):
    sink = VideoFileSink(tmp_path / "out.mp4", width=W, height=H, fps=24)
    with pytest.raises(StylizeError, match="no frames"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(StylizeError, match="already exists"):
        VideoFileSink(out, width=W, height=H, fps=24)
    assert out.read_bytes() == b"precious" and not leftovers(tmp_path)

    with VideoFileSink(out, width=W, height=H, fps=24, overwrite=True) as sink:
        for frame in frames(3):
            sink.write(frame)
    assert len(decoded_frames(out)) == 3


def test_output_that_is_the_input_is_refused(tmp_path):
    source = tmp_path / "in.mp4"
    with VideoFileSink(source, width=W, height=H, fps=24) as sink:
        sink.write(frames(1)[0])
    alias = tmp_path / "alias.mp4"
    alias.symlink_to(source)
    before = source.read_bytes()
    for target in (source, alias):
        with pytest.raises(StylizeError, match="is the input file"):
            VideoFileSink(target, width=W, height=H, fps=24, audio_from=source, overwrite=True)
    assert source.read_bytes() == before and not leftovers(tmp_path)


def test_input_without_audio_gives_a_silent_output(tmp_path):
    source = tmp_path / "in.mp4"
    with VideoFileSink(source, width=W, height=H, fps=24) as sink:
        for frame in frames(4):
            sink.write(frame)
    out = tmp_path / "out.mp4"
    with VideoFileSink(out, width=W, height=H, fps=24, audio_from=source, crf=30) as sink:
        for frame in frames(4):
            sink.write(frame)
    with av.open(str(out)) as container:
        assert not container.streams.audio
    assert len(decoded_frames(out)) == 4


def test_unknown_codec_is_a_clear_error(tmp_path):
    with pytest.raises(StylizeError, match="not available in this FFmpeg build"):
        VideoFileSink(tmp_path / "out.mp4", width=W, height=H, fps=24, codec="no_such_encoder")
    assert not list(tmp_path.iterdir())


def test_nvenc_without_a_gpu_is_a_clear_error(tmp_path):
    try:
        sink = VideoFileSink(tmp_path / "out.mp4", width=256, height=144, fps=24, codec="h264_nvenc")
    except StylizeError as e:
        assert "h264_nvenc" in str(e)
        assert not list(tmp_path.iterdir())
    else:
        sink.abort()
        pytest.skip("h264_nvenc works on this machine")


def test_wrong_frame_size_is_a_clear_error(tmp_path):
    with pytest.raises(StylizeError, match="opened for 64×48"):
        with VideoFileSink(tmp_path / "out.mp4", width=W, height=H, fps=24) as sink:
            sink.write(Frame(np.zeros((H, W + 2, 3), np.uint8), 0))
    assert list(tmp_path.iterdir()) == []


def test_keep_partial_false_leaves_nothing_when_stopped_early(tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoFileSink(out, width=W, height=H, fps=24, keep_partial=False) as sink:
            for f in frames(5):
                sink.write(f)
            raise KeyboardInterrupt
    assert sink.aborted and not out.exists() and leftovers(tmp_path) == []


def test_copy_mode_writes_encoded_packets_with_the_audio_of_a_file(make_clip, tmp_path):
    """Packets go in as they are (the join of segments); audio is copied as for encoded frames."""
    clip = make_clip(tmp_path / "clip.mp4", frames=20, audio=True)
    tb = Fraction(1, 10240)
    encoded = tmp_path / "video.mp4"
    with (
        VideoFileSource(clip) as source,
        VideoFileSink(encoded, width=W, height=H, fps=20, time_base=tb) as s,
    ):
        for f in source:
            s.write(f)
    out = tmp_path / "copied.mp4"
    with av.open(str(encoded)) as src:
        stream = src.streams.video[0]
        copy = VideoFileSink(out, width=W, height=H, fps=20, time_base=tb, audio_from=clip, whole_audio=True,
                             video_template=stream)  # fmt: skip
        with copy:
            for packet in src.demux(stream):
                if packet.size:
                    packet.pts = round(packet.pts * stream.time_base / tb)
                    packet.dts = round(packet.dts * stream.time_base / tb)
                    copy.write_packet(packet)
            with pytest.raises(RuntimeError):
                copy.write(frames(1)[0])
    assert copy.frames_written == 20 and leftovers(tmp_path) == []
    want, got = decoded_frames(encoded), decoded_frames(out)
    assert [f.pts for f in got] == [f.pts for f in want]
    assert all(np.array_equal(a.to_ndarray(), b.to_ndarray()) for a, b in zip(got, want, strict=True))
    assert audio_packets(out) == audio_packets(clip)
