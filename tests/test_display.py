"""The preview window, for real: an OpenCV window on a private Xvfb server, checked by screenshot.

Needs the Debian packages ``xvfb`` (the X server) and ``x11-apps`` (``xwd``, the screenshot tool);
skipped without them. Real key presses are synthesised with ``xdotool`` (package ``xdotool``; those
tests skip without it); the key handler itself is tested by calling it with key codes. The tests
always start their own Xvfb, even on a desktop, so no window pops up on a developer's screen.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import StylizeError
from media import photo as make_photo
from stream.controls import LiveControls, keys_help
from stream.frames import Frame
from stream.pipeline import Pipeline, StopPipeline

DEADLINE = 10.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Xvfb tests are Linux-only")


def _die_with_parent() -> None:
    """Xvfb gets SIGTERM when pytest dies, even if killed before teardown (no orphaned X servers)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A private Xvfb display, set as DISPLAY for the module's tests."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None or shutil.which("xwd") is None:
        pytest.skip("needs Xvfb and xwd: apt-get install -y xvfb x11-apps")
    proc = subprocess.Popen(
        [xvfb, "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
    number = proc.stdout.readline().decode().strip() if ready else ""
    if not number:
        proc.kill()
        pytest.skip("Xvfb did not start")
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM")}
    os.environ["DISPLAY"] = f":{number}"
    os.environ.pop("QT_QPA_PLATFORM", None)
    yield f":{number}"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    proc.terminate()
    proc.wait(DEADLINE)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo(320, 240)


@pytest.fixture
def controls() -> LiveControls:
    return LiveControls(["starry_night", "la_muse", "the_scream"], model_name="adain-cd16x", alpha=0.5)


def _read_xwd(data: bytes) -> np.ndarray:
    """An ``xwd`` screenshot (ZPixmap, 24 or 32 bits per pixel, 8-bit RGB masks) as a BGR image."""
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order = fields[0], fields[4], fields[5], fields[7]
    bits_per_pixel, bytes_per_line, ncolors = fields[11], fields[12], fields[19]
    assert fields[2] == 2 and bits_per_pixel in (24, 32), "unexpected xwd format"
    bpp = bits_per_pixel // 8
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=start).reshape(height, -1)
    pixels = rows[:, : width * bpp].reshape(height, width, bpp)
    bgr = pixels[:, :, :3] if byte_order == 0 else pixels[:, :, ::-1][:, :, :3]  # LSB first: B, G, R
    return np.ascontiguousarray(bgr)


def _screenshot(display: str, sink, frame: Frame, tmp_path: Path) -> np.ndarray:
    """Take a screenshot while the window keeps drawing (HighGUI only paints inside waitKey)."""
    out = tmp_path / "screen.xwd"
    proc = subprocess.Popen(["xwd", "-root", "-silent", "-display", display, "-out", str(out)])
    start = time.monotonic()
    while proc.poll() is None:
        sink.write(frame)
        assert time.monotonic() - start < DEADLINE, "xwd hung"
    assert proc.returncode == 0
    return _read_xwd(out.read_bytes())


def _sink(title: str, **kwargs):
    from stream.display import DisplaySink

    return DisplaySink(title, **kwargs)


def test_the_window_shows_the_frame_with_an_overlay(
    x_display: str, photo: np.ndarray, controls: LiveControls, tmp_path: Path
) -> None:
    sink = _sink("adain-test-show", controls=controls)
    try:
        frame = Frame(photo, 0)
        for _ in range(5):
            sink.write(frame)
        screen = _screenshot(x_display, sink, frame, tmp_path)
    finally:
        sink.close()

    # The lower half (below the overlay text) appears pixel for pixel somewhere on the screen...
    lower = photo[120:]
    result = cv2.matchTemplate(screen, lower, cv2.TM_SQDIFF_NORMED)
    best, _, (x, y), _ = cv2.minMaxLoc(result)
    assert best < 0.01, f"the frame is not on the screen (best match {best:.3f})"
    # ...and above it, the same picture with text drawn over it: the overlay.
    top = screen[y - 120 : y - 80, x : x + 320].astype(int)
    assert top.shape == (40, 320, 3) and np.abs(top - photo[:40]).max() > 100
    text = " ".join(sink.overlay_lines())
    for part in ("adain-cd16x", "starry_night", "alpha 0.50", "fps", "latency", "q:quit"):
        assert part in text


def test_keys_drive_the_controls_snapshot_and_fullscreen(
    x_display: str, photo: np.ndarray, controls: LiveControls, tmp_path: Path
) -> None:
    sink = _sink("adain-test-keys", controls=controls, snapshot_dir=tmp_path / "snaps")
    try:
        sink.write(Frame(photo, 7))
        for key in "n]]p[":  # +1 +1 +1 (wraps to 0) -1 -1
            sink.handle_key(ord(key))
        assert controls.snapshot().style_index == 1
        for key in "++-=":
            sink.handle_key(ord(key))
        assert controls.snapshot().alpha == pytest.approx(0.7)
        sink.handle_key(ord("c"))
        sink.handle_key(ord("f"))
        state = controls.snapshot()
        assert state.preserve_color and state.smoothing and state.style_name == "la_muse"

        sink.handle_key(ord("s"))
        assert sink.last_snapshot is not None and sink.last_snapshot.suffix == ".png"
        assert np.array_equal(cv2.imread(str(sink.last_snapshot)), photo)  # the frame, not the overlay
        assert any("saved" in line for line in sink.overlay_lines())

        sink.handle_key(ord("w"))
        sink.write(Frame(photo, 8))
        assert cv2.getWindowProperty("adain-test-keys", cv2.WND_PROP_FULLSCREEN) == cv2.WINDOW_FULLSCREEN
        sink.handle_key(ord("w"))
        sink.write(Frame(photo, 9))
        assert cv2.getWindowProperty("adain-test-keys", cv2.WND_PROP_FULLSCREEN) != cv2.WINDOW_FULLSCREEN

        before = controls.snapshot()
        sink.handle_key(-1)  # no key
        sink.handle_key(ord("z"))  # not bound
        sink.handle_key(0xFF00 | ord("n"))  # a special key (here: X11 keysym) never aliases a letter
        assert controls.snapshot() == before
        for key in (ord("q"), 27):  # q and Esc
            with pytest.raises(StopPipeline):
                sink.handle_key(key)
    finally:
        sink.close()
        sink.close()  # idempotent


def _xdotool_keys(title: str, keys: list[str], delay: float) -> threading.Thread:
    """Real X key events to the window titled ``title`` (found with ``search --sync``), from a thread."""

    def send() -> None:
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--name", f"^{title}$"],
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        window = found.stdout.split()[0]
        for key in keys:
            time.sleep(delay)
            subprocess.run(["xdotool", "key", "--window", window, key], stderr=subprocess.DEVNULL, check=True)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_real_key_presses_steer_a_running_pipeline(
    x_display: str, photo: np.ndarray, controls: LiveControls
) -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("needs xdotool to synthesise key presses: apt-get install -y xdotool")

    def camera() -> Iterator[Frame]:
        i, start = 0, time.monotonic()
        while time.monotonic() - start < DEADLINE:  # ends the run should the keys never arrive
            time.sleep(0.01)
            yield Frame(photo, i)
            i += 1

    seen_styles: list[int] = []

    def process(frames: list[Frame]) -> list[Frame]:
        seen_styles.append(controls.snapshot().style_index)  # what the GPU stage would read
        return frames

    sink = _sink("adain-test-pipeline", controls=controls)
    sender = _xdotool_keys("adain-test-pipeline", ["n", "plus", "q"], delay=0.3)
    start = time.monotonic()
    stats = Pipeline(camera(), process, [sink], policy="live").run()
    sender.join(DEADLINE)

    assert stats.stop_reason == "stopped" and time.monotonic() - start < DEADLINE
    assert seen_styles[0] == 0 and seen_styles[-1] == 1
    assert controls.snapshot().alpha == pytest.approx(0.6)


def test_without_a_display_the_sink_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(StylizeError, match="cannot open a window: no display"):
        _sink("nowhere")
    unused = next(n for n in range(4242, 4300) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    monkeypatch.setenv("DISPLAY", f":{unused}")
    with pytest.raises(StylizeError, match="cannot open a window"):  # Qt alone would abort the process
        _sink("nowhere")


def test_the_stream_modules_import_without_a_display() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    code = "import stream.display, stream.vcam, stream.webcam, stream.controls, stream.pipeline"
    repo = Path(__file__).parents[1]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, check=True, timeout=60)


def test_keys_help_lists_every_binding() -> None:
    text = keys_help()
    for key in ("n", "p", "+", "-", "c", "f", "s", "w", "q", "Esc"):
        assert f" {key} " in f" {text} ".replace("\n", " ")
