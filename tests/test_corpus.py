"""Awkward inputs, made here with PyAV: each converts correctly or fails in one clear line (issue #9).

Correctly means the output has the input's frames, timestamps, size (upright) and audio bytes. The
clips are tiny (a few frames of 64×48), stylized by the real small model at its own size.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stream.cli import main
from stream.video_sink import VideoFileSink
from stream.video_source import VideoFileSource

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48


# --- making inputs -------------------------------------------------------------------------------


def picture(i: int, width: int = W, height: int = H, noise: bool = False) -> np.ndarray:
    """Frame i: a gray level that changes per frame, with a white band on the left (shows orientation)."""
    if noise:
        return np.random.default_rng(i).integers(0, 256, (height, width, 3), np.uint8)
    image = np.full((height, width, 3), 40 + 5 * (i % 20), np.uint8)
    image[:, : width // 4] = 255
    return image


def make_clip(
    path: Path,
    *,
    codec: str = "libx264",
    size: tuple[int, int] = (W, H),
    frames: int = 6,
    fps: int = 24,
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: str | None = None,
    audio_options: dict | None = None,
    rotation: int | None = None,
    video_delay: int = 0,
    noise: bool = False,
    options: dict | None = None,
    audio_seconds: float | None = None,
) -> Path:
    """A clip with ``frames`` frames (pts ``pts`` in ``time_base``, else one per 1/fps, shifted by
    ``video_delay`` frames) and optionally an ``audio`` track, as long as the video unless
    ``audio_seconds``."""
    width, height = size
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            sound = out.add_stream(audio, rate=48000, layout="stereo", options=audio_options or {})
        packets = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(i, width, height, noise), format="bgr24")
            frame.pts = pts[i] if pts is not None else i + video_delay
            if time_base is not None:
                frame.time_base = time_base
            packets += video.encode(frame)
        packets += video.encode(None)
        if sound is not None:
            packets += encode_tone(sound, seconds=audio_seconds or frames / fps)
        for packet in packets:
            out.mux(packet)
    return path


def encode_tone(stream, seconds: float) -> list[av.Packet]:
    rate, fmt = stream.codec_context.sample_rate, stream.codec_context.format.name
    packets, start, total = [], 0, int(seconds * rate)
    step = stream.codec_context.frame_size or 1024
    while start < total:
        n = min(step, total - start)
        tone = (0.3 * np.sin(np.arange(start, start + n) / 7.0)).astype(np.float32)
        planes = np.stack([tone, tone])
        if fmt.startswith("s16"):
            planes = (planes * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            planes = (planes * 2**31 * 0.99).astype(np.int32)
        data = planes if fmt.endswith("p") else planes.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        frame.sample_rate, frame.pts = rate, start
        packets += stream.encode(frame)
        start += n
    return packets + stream.encode(None)


# --- looking at outputs --------------------------------------------------------------------------


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def video_info(path: Path) -> dict:
    """The video stream as a player sees it: codec, size, frame times, display rotation, pixels."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "size": (frames[0].width, frames[0].height),
            "times": [round(float(f.time), 3) for f in frames],
            "rotation": frames[0].rotation,
            "first": frames[0].to_ndarray(format="bgr24"),
            "audio": [s.codec_context.name for s in c.streams.audio],
        }


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name or p.name.startswith(".stylize")]


@pytest.fixture(scope="module")
def model_args(tiny_weights, style_image) -> list[str]:
    style = str(style_image)
    return [
        "--style",
        style,
        "--weights",
        str(tiny_weights),
        "--model",
        "adain-cd16x",
        "--style-size",
        "64",
    ]


def convert(capsys, src: Path, out: Path, *extra: str, model: list[str]) -> tuple[int, str]:
    """``stylize convert`` in this process: (exit code, stderr)."""
    code = main(["convert", str(src), str(out), *model, *extra])
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


NO_MODEL = ["--style", "missing-style.jpg", "--weights", "/nonexistent/weights", "--no-download"]
"""Arguments whose model and style cannot load: an error about anything else came before loading them."""


# --- 1. audio --------------------------------------------------------------------------------------


@pytest.mark.parametrize("out_ext", ["mp4", "mkv", "mov"])
def test_mkv_aac_priming_packet_and_audio_before_the_first_frame_are_kept(
    out_ext, model_args, tmp_path, capsys
):
    # AAC's priming packet has a negative pts; the video starts 2 frames later (B-frame delay), as in
    # MKVs remuxed from MP4. Both used to make the sink drop the audio before the first frame.
    src = make_clip(tmp_path / "in.mkv", frames=12, audio="aac", video_delay=2)
    with av.open(str(src)) as c:
        first = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        assert first.pts < 0
    out = tmp_path / f"out.{out_ext}"
    code, err = convert(capsys, src, out, model=model_args)
    assert code == 0, err
    assert audio_packets(out) == audio_packets(src)
    assert len(video_info(out)["times"]) == 12
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("limit", [[], ["--frames", "3"]])
def test_audio_longer_than_the_video_is_whole_unless_the_run_is_limited(limit, model_args, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", audio="aac", audio_seconds=1.0)  # 0.25 s of video
    out = tmp_path / "out.mp4"
    code, err = convert(capsys, src, out, *limit, model=model_args)
    assert code == 0, err
    copied, reference = audio_packets(out), audio_packets(src)
    if limit:
        assert len(video_info(out)["times"]) == 3
        assert 2 < len(copied) < 10 and copied == reference[: len(copied)]  # 3/24 s ≈ 6 AAC packets
    else:
        assert copied == reference


def _alac_mkv(path: Path) -> Path:
    return make_clip(path, audio="alac")  # Matroska stores ALAC packets without a duration


def _pcm_mkv(path: Path) -> Path:
    return make_clip(path, audio="pcm_s16le")  # channel count only, no named layout


AUDIO_INPUTS = {
    "aac.mkv": lambda p: make_clip(p, audio="aac"),
    "alac.mkv": _alac_mkv,
    "pcm_s16le.mkv": _pcm_mkv,
    "opus.webm": lambda p: make_clip(p, codec="libvpx-vp9", audio="libopus"),
    "vorbis.webm": lambda p: make_clip(
        p, codec="libvpx-vp9", audio="vorbis", audio_options={"strict": "experimental"}
    ),
    "mp3.mp4": lambda p: make_clip(p, audio="libmp3lame"),
}
#: What FFmpeg refuses to copy: WebM takes only Opus and Vorbis; MOV's muxer has no Opus.
REENCODED = {
    ("aac.mkv", "webm"): ("aac", "opus"),
    ("alac.mkv", "webm"): ("alac", "opus"),
    ("pcm_s16le.mkv", "webm"): ("pcm_s16le", "opus"),
    ("mp3.mp4", "webm"): ("mp3", "opus"),
    ("opus.webm", "mov"): ("opus", "aac"),
    ("vorbis.webm", "mov"): ("vorbis", "aac"),
}


@pytest.mark.parametrize("name", sorted(AUDIO_INPUTS))
def test_audio_is_copied_byte_for_byte_wherever_the_container_can_hold_it(name, tmp_path):
    src = AUDIO_INPUTS[name](tmp_path / name)
    reference = audio_packets(src)
    assert len(reference) >= 3
    for ext in ("mp4", "mkv", "mov", "webm"):
        out = tmp_path / f"out.{ext}"
        with VideoFileSource(src) as source:
            with VideoFileSink(
                out, width=source.width, height=source.height, fps=source.fps, time_base=source.time_base,
                audio_from=src, whole_audio=True,
            ) as sink:  # fmt: skip
                for frame in source:
                    sink.write(frame)
        expected = REENCODED.get((name, ext))
        if expected is None:
            assert sink.audio_reencoded == [], ext
            assert audio_packets(out) == reference, ext
        else:
            assert sink.audio_reencoded == [expected], ext
            with av.open(str(out)) as c:
                assert c.streams.audio[0].codec_context.name in ("opus", "aac")
                seconds = sum(f.samples / f.sample_rate for f in c.decode(audio=0))
            assert seconds == pytest.approx(6 / 24, abs=0.03), ext
    assert not leftovers(tmp_path)


def test_webm_output_re_encodes_aac_and_says_so_in_one_line(model_args, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", audio="aac")
    out = tmp_path / "out.webm"
    code, err = convert(capsys, src, out, model=model_args)
    assert code == 0, err
    assert err.strip() == "stylize: .webm files cannot hold aac audio: it is re-encoded to opus"
    info = video_info(out)
    assert info["codec"] == "vp9" and info["audio"] == ["opus"] and len(info["times"]) == 6


# --- 2. rotation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation, band_side", [(90, "bottom"), (-90, "top"), (180, "right")])
def test_rotated_phone_video_comes_out_upright(rotation, band_side, model_args, tmp_path, capsys):
    # Stored 64×48 with a white band on the left; the display matrix turns it. MicroAST blends α in
    # image space, so --alpha 0 returns the content itself: the band must be where a player shows it.
    src = make_clip(tmp_path / "phone.mp4", rotation=rotation, audio="aac")
    out = tmp_path / "out.mp4"
    microast = [*model_args[: model_args.index("--model")], "--model", "microast"]
    code, err = convert(capsys, src, out, "--alpha", "0", model=microast)
    assert code == 0, err
    info = video_info(out)
    assert info["size"] == ((H, W) if rotation % 180 else (W, H))
    assert not info["rotation"]  # applied to the pixels, not left to the player
    gray = info["first"].mean(axis=2)
    h, w = gray.shape
    sides = {
        "top": gray[: h // 5],
        "bottom": gray[-h // 5 :],
        "left": gray[:, : w // 5],
        "right": gray[:, -w // 5 :],
    }
    brightest = max(sides, key=lambda k: sides[k].mean())
    assert brightest == band_side, {k: round(float(v.mean())) for k, v in sides.items()}
    assert audio_packets(out) == audio_packets(src)


def test_source_applies_the_display_matrix_exactly(tmp_path):
    src = make_clip(tmp_path / "phone.mkv", codec="ffv1", pix_fmt="bgr0", rotation=90)
    with VideoFileSource(src) as source:
        assert (source.width, source.height, source.rotation) == (H, W, 90)
        first = next(iter(source)).image
    assert np.array_equal(first, np.rot90(picture(0)))  # 90° counter-clockwise, lossless


# --- 3. odd sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext, extra, size, notice",
    [
        ("webm", [], (321, 241), False),  # VP9 codes odd sizes
        ("mkv", ["--codec", "libvpx-vp9"], (321, 241), False),
        ("mp4", [], (320, 240), True),  # H.264 4:2:0 cannot: rounded, and said
    ],
)
def test_odd_size_is_kept_or_the_rounding_is_said(ext, extra, size, notice, model_args, tmp_path, capsys):
    src = make_clip(tmp_path / "odd.mkv", codec="ffv1", size=(321, 241), frames=3)
    out = tmp_path / f"out.{ext}"
    code, err = convert(capsys, src, out, *extra, model=model_args)
    assert code == 0, err
    assert video_info(out)["size"] == size
    if notice:
        assert err.strip() == (
            f"stylize: {src} is 321×241; libx264 needs even sides, so the output is 320×240 "
            "(--codec libvpx-vp9 keeps it)"
        )
    else:
        assert err == ""


# --- 4. SIGTERM / SIGHUP ---------------------------------------------------------------------------


def _wait_for_frames(folder: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until the hidden output file holds frames: past its header, FFmpeg writes in 32 KiB blocks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 4096 for p in folder.glob(".*.partial*")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no frames were written in {timeout} s: {proc.poll()=}")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_keep_a_playable_prefix_and_no_temp_file(sig, code, model_args, tmp_path):
    src = make_clip(tmp_path / "long.mp4", frames=400, size=(96, 64), noise=True, audio="aac")
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "convert", str(src), str(out), *model_args, "--size", "64"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_frames(tmp_path, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "internal error" not in err
    assert not leftovers(tmp_path)
    info = video_info(out)
    done = len(info["times"])
    assert 0 < done < 400
    reason = {signal.SIGTERM: "terminated (SIGTERM)", signal.SIGHUP: "hung up (SIGHUP)"}[sig]
    assert err.strip().endswith(f"{reason}; the {done} frames done were saved to {out}")
    assert info["times"] == [round(i / 24, 3) for i in range(done)]
    # the audio of those frames only, unchanged
    copied = audio_packets(out)
    assert 0 < len(copied) < len(audio_packets(src)) and copied == audio_packets(src)[: len(copied)]


def test_live_recording_survives_sigterm(model_args, tmp_path):
    camera = make_clip(tmp_path / "camera.mp4", frames=300, size=(96, 64), noise=True)
    out = tmp_path / "session.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_webcam.py"), "--camera", str(camera), "--loop", *model_args,
         "--max-side", "64", "--no-window", "--record", str(out)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_frames(tmp_path, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert not leftovers(tmp_path)
    assert len(video_info(out)["times"]) > 0


# --- 5, 6, 9: refused before the model loads ------------------------------------------------------


def test_codec_the_container_cannot_hold_is_one_line_naming_codec(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    code, err = convert(capsys, src, tmp_path / "out.webm", "--codec", "libx264", model=NO_MODEL)
    one_line_error(code, err)
    assert (
        ".webm files cannot hold libx264 video: choose another --codec (for example --codec libvpx-vp9" in err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot create files in (root ignores permissions: then /sys/kernel)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        yield folder
    else:
        (folder / "probe").unlink()
        if not Path("/sys/kernel").is_dir() or _can_create("/sys/kernel"):
            pytest.skip("no folder here is unwritable for this user")
        yield Path("/sys/kernel")
    folder.chmod(0o755)


def _can_create(folder: str) -> bool:
    try:
        Path(folder, ".stylize-test").touch()
    except OSError:
        return False
    Path(folder, ".stylize-test").unlink()
    return True


def test_unwritable_output_folder_fails_at_once(unwritable_folder, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4")
    code, err = convert(capsys, src, unwritable_folder / "out.mp4", model=NO_MODEL)
    one_line_error(code, err)
    assert f"cannot write to the output folder {unwritable_folder}" in err


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo.webp"])
def test_still_image_is_refused_with_a_pointer_to_stylize_image(name, tmp_path, capsys):
    import cv2

    path = tmp_path / name
    cv2.imwrite(str(path), picture(0))
    code, err = convert(capsys, path, tmp_path / "out.mp4", model=NO_MODEL)
    one_line_error(code, err)
    assert f"{name} is a still image; stylize pictures with `stylize image`" in err
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


# --- 10. truncated inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("ext, options", [("mp4", {"movflags": "faststart"}), ("mkv", {})])
def test_truncated_input_converts_what_it_can_and_says_how_far(ext, options, model_args, tmp_path, capsys):
    full = make_clip(tmp_path / f"full.{ext}", frames=48, noise=True, options=options).read_bytes()
    src = tmp_path / f"cut.{ext}"
    src.write_bytes(full[: int(len(full) * 0.6)])
    out = tmp_path / "out.mp4"
    code, err = convert(capsys, src, out, model=model_args)
    assert code == 0, err
    done = len(video_info(out)["times"])
    assert 10 < done < 48
    assert err.strip() == (
        f"stylize: {src} ended early: only {done} of about 48 frames could be decoded (cut short or damaged?)"
    )


# --- beyond the list: what else users have ---------------------------------------------------------

VARIED = {
    # name: (file name, clip arguments)
    "vfr": ("vfr.mkv", {"pts": [0, 40, 100, 120, 200, 330], "time_base": Fraction(1, 1000), "audio": "aac"}),
    "10-bit h264": ("deep.mp4", {"pix_fmt": "yuv420p10le", "audio": "aac"}),
    "gray h264": ("gray.mp4", {"pix_fmt": "gray"}),
    "hevc": ("hevc.mp4", {"codec": "libx265", "audio": "aac"}),
    "hevc 10-bit mkv": ("hevc10.mkv", {"codec": "libx265", "pix_fmt": "yuv420p10le"}),
    "vp9 opus": ("vp9.webm", {"codec": "libvpx-vp9", "audio": "libopus"}),
    "vp8": ("vp8.webm", {"codec": "libvpx"}),
    "av1": ("av1.mkv", {"codec": "libsvtav1", "audio": "libopus"}),
    "mpeg4 avi": ("old.avi", {"codec": "mpeg4", "audio": "libmp3lame"}),
    "mjpeg mov": ("camera.mov", {"codec": "mjpeg", "pix_fmt": "yuvj420p", "audio": "pcm_s16le"}),
    "ffv1 rgb": ("lossless.mkv", {"codec": "ffv1", "pix_fmt": "bgr0", "audio": "flac"}),
}


@pytest.mark.parametrize("kind", sorted(VARIED))
def test_varied_inputs_keep_frames_timestamps_size_and_audio(kind, model_args, tmp_path, capsys):
    name, clip = VARIED[kind]
    src = make_clip(tmp_path / name, **clip)
    # The same container out: FFmpeg shifts the whole mp4 timeline by AAC's priming into .mkv (sync kept).
    out = tmp_path / f"out{Path(name).suffix}"
    code, err = convert(capsys, src, out, model=model_args)
    assert code == 0, err
    assert err == ""
    before, after = video_info(src), video_info(out)
    assert after["size"] == before["size"] == (W, H)
    assert after["times"] == before["times"]
    assert audio_packets(out) == audio_packets(src)
    assert after["audio"] == before["audio"]


def _video_track_without_frames(path: Path) -> Path:
    with av.open(str(path), "w") as out:  # a camera that failed: the sound was recorded, no picture
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for packet in encode_tone(out.add_stream("aac", rate=48000, layout="stereo"), 0.2):
            out.mux(packet)
    return path


def _header_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        for packet in encode_tone(stream, 0.2):
            out.mux(packet)
    return path


def _song_with_cover(path: Path) -> Path:
    import cv2

    with av.open(str(path), "w") as out:
        sound = out.add_stream("libmp3lame", rate=48000, layout="stereo")
        cover = out.add_stream("png")
        cover.width, cover.height, cover.pix_fmt = W, H, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        packets = encode_tone(sound, 0.2)
        png = cv2.imencode(".png", picture(0))[1].tobytes()
        art = av.Packet(png)
        art.stream, art.pts, art.dts, art.is_keyframe = cover, 0, 0, True
        out.mux(art)
        for packet in packets:
            out.mux(packet)
    return path


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BROKEN = {
    "zero bytes": ("empty.mp4", lambda p: _written(p, b""), "not a video file"),
    "text named mkv": ("notes.mkv", lambda p: _written(p, b"hello\n" * 99), "not a video file"),
    "no frames": ("silent.mkv", _video_track_without_frames, "silent.mkv has no video frames"),
    "header only": ("empty.mkv", _header_only, "cannot open empty.mkv: not a video file, or it is damaged"),
    "audio only": ("sound.m4a", _audio_only, "sound.m4a has no video stream"),
    "song with cover art": (
        "song.mp3",
        _song_with_cover,
        "song.mp3 has no video stream (only a cover picture)",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_unusable_inputs_fail_in_one_line_before_the_model_loads(kind, tmp_path, capsys):
    name, make, message = BROKEN[kind]
    src = make(tmp_path / name)
    code, err = convert(capsys, src, tmp_path / "out.mp4", model=NO_MODEL)
    one_line_error(code, err)
    assert message in err
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


def test_an_open_sink_holds_only_its_hidden_file_until_it_ends(tmp_path):
    """Opened before the model loads, the sink makes only its hidden file (the audio trial is in memory)."""
    src = make_clip(tmp_path / "in.mkv", audio="libopus")
    sink = VideoFileSink(tmp_path / "out.mov", width=W, height=H, fps=24, audio_from=src)
    try:
        assert sink.audio_reencoded == [("opus", "aac")]
        assert [p.name for p in tmp_path.iterdir() if p.name != "in.mkv"] == [sink._tmp.name]
    finally:
        sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]
