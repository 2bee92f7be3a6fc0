"""The live preview window: OpenCV HighGUI with an overlay, keys that drive :class:`LiveControls`.

The sink knows nothing about engines. Keys either act on the window itself (snapshot, fullscreen,
quit) or go to the shared :class:`~stream.controls.LiveControls`, which the processing stage reads.
Quitting (``q``/Esc or closing the window) raises :class:`~stream.pipeline.StopPipeline`, which ends
the pipeline cleanly.

OpenCV's Qt backend aborts the whole process (not an exception) when it cannot reach a display, so
the display is probed with libxcb first and a missing one becomes a :class:`StylizeError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engines.errors import StylizeError
from stream.controls import KEY_ACTIONS, LiveControls, keys_help_line
from stream.frames import Frame
from stream.pipeline import StopPipeline

log = logging.getLogger(__name__)

_ESC = 27
_MESSAGE_SECONDS = 2.0
_SMOOTHING = 0.9  # EMA weight for the on-screen fps and latency, so the numbers are readable


class DisplaySink:
    """Shows frames in a window titled ``title``; ``snapshot_dir`` receives the ``s`` key's PNGs."""

    #: GUI calls must stay on one thread, the main one on macOS/Qt: the pipeline runs us there.
    needs_main_thread = True

    def __init__(
        self,
        title: str = "adain-stream",
        controls: LiveControls | None = None,
        fullscreen: bool = False,
        snapshot_dir: str | Path = ".",
        overlay: bool = True,
    ) -> None:
        self.title = title
        self.controls = controls
        self.snapshot_dir = Path(snapshot_dir)
        self.overlay = overlay
        self.last_snapshot: Path | None = None
        self._fullscreen = False
        self._interval: float | None = None
        self._latency: float | None = None
        self._last_write: float | None = None
        self._last_frame: Frame | None = None
        self._message = ""
        self._message_until = 0.0
        self._closed = False
        _require_display()
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise StylizeError(
                f"cannot open a window: this OpenCV has no GUI support ({_last_line(e)}); "
                "install 'opencv-python' instead of 'opencv-python-headless'"
            ) from None
        if fullscreen:
            self.set_fullscreen(True)

    # -- sink -------------------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        if self._closed:
            raise StopPipeline("the window was closed")
        self._measure(frame)
        if self._last_frame is None and not self._fullscreen:
            height, width = frame.image.shape[:2]
            cv2.resizeWindow(self.title, width, height)  # a normal window opens at Qt's 400×300 otherwise
        self._last_frame = frame
        cv2.imshow(self.title, self._with_overlay(frame.image) if self.overlay else frame.image)
        self.handle_key(cv2.waitKeyEx(1))  # Ex: arrows etc. come as codes > 255 instead of aliasing letters
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopPipeline("the window was closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI loop actually take the window down
        except cv2.error:
            pass  # already gone (closed by the user)

    # -- keys -------------------------------------------------------------------------------------

    def handle_key(self, key: int) -> None:
        """Act on one ``cv2.waitKeyEx`` code (-1: no key). Raises :class:`StopPipeline` for quit."""
        if not 0 <= key <= 0xFF:
            return  # no key, or a non-character key (arrows, F-keys, modifiers)
        action = KEY_ACTIONS.get("Esc" if key == _ESC else chr(key))
        if action is None:
            return
        if action == "quit":
            raise StopPipeline("quit key")
        if action == "snapshot":
            self.snapshot()
        elif action == "fullscreen":
            self.set_fullscreen(not self._fullscreen)
        elif self.controls is not None:
            self.controls.apply(action)

    def snapshot(self) -> Path | None:
        """Save the last stylized frame (without the overlay) as PNG; a failure is shown, not raised."""
        if self._last_frame is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.snapshot_dir / f"snapshot-{stamp}-{self._last_frame.index:06d}.png"
        try:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            ok, png = cv2.imencode(".png", self._last_frame.image)
            if not ok:
                raise OSError("PNG encoding failed")
            path.write_bytes(png.tobytes())  # not cv2.imwrite: that cannot write non-ASCII paths on Windows
        except OSError as e:
            log.warning("snapshot failed: %s", e)
            self._show_message(f"snapshot failed: {e}")
            return None
        self.last_snapshot = path
        self._show_message(f"saved {path.name}")
        return path

    def set_fullscreen(self, on: bool) -> None:
        mode = cv2.WINDOW_FULLSCREEN if on else cv2.WINDOW_NORMAL
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, mode)
        self._fullscreen = on

    # -- overlay ----------------------------------------------------------------------------------

    def _measure(self, frame: Frame) -> None:
        """Smoothed display rate and end-to-end latency (capture → now), for the overlay."""
        now = time.monotonic()
        if self._last_write is not None:
            dt = now - self._last_write
            self._interval = _ema(self._interval, dt)
        self._last_write = now
        self._latency = _ema(self._latency, now - frame.captured_at)

    def overlay_lines(self) -> list[str]:
        """The text drawn on the picture (public so tests and a headless status line can reuse it)."""
        fps = f"{1 / self._interval:.1f} fps" if self._interval else "-- fps"
        latency = f"{1000 * self._latency:.0f} ms" if self._latency is not None else "-- ms"
        lines = [f"{fps}  latency {latency}"]
        if self.controls is not None:
            s = self.controls.snapshot()
            n = len(self.controls.styles)
            style = f"style {s.style_index + 1}/{n} {s.style_name}" if n else "no style"
            flags = ("  colour kept" if s.preserve_color else "") + ("  smoothing" if s.smoothing else "")
            flags += "  temporal" if s.temporal else ""
            lines.insert(0, f"{self.controls.model_name}  {style}  alpha {s.alpha:.2f}{flags}".strip())
        if self._message and time.monotonic() < self._message_until:
            lines.append(self._message)
        lines.append(keys_help_line())
        return lines

    def _with_overlay(self, image: np.ndarray) -> np.ndarray:
        """The overlay text on a darkened band, so it reads on any style; the frame itself is untouched."""
        out = image.copy()
        lines = self.overlay_lines()
        font = cv2.FONT_HERSHEY_SIMPLEX
        widest = max(cv2.getTextSize(line, font, 1.0, 1)[0][0] for line in lines)
        scale = max(0.35, min(0.5 * out.shape[0] / 360, (out.shape[1] - 16) / max(widest, 1)))
        step = int(26 * scale) + 6
        band = out[: 8 + step * len(lines)]
        band[:] = band // 3  # a view: darkens the top of ``out`` in place
        for i, line in enumerate(lines):
            cv2.putText(out, line, (8, step * (i + 1)), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return out

    def _show_message(self, text: str) -> None:
        self._message = text
        self._message_until = time.monotonic() + _MESSAGE_SECONDS


def _require_display() -> None:
    """Raise StylizeError where Qt would abort the process: Linux without a reachable X display."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        return
    display = os.environ.get("DISPLAY")
    if not display:
        raise StylizeError(
            "cannot open a window: no display (DISPLAY is not set); "
            "run on a desktop session or write to a file or virtual camera instead"
        )
    path = ctypes.util.find_library("xcb")
    if path is None:
        raise StylizeError("cannot open a window: libxcb is missing (install libxcb1 / an X11 desktop)")
    xcb = ctypes.CDLL(path)
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    failed = xcb.xcb_connection_has_error(conn)
    xcb.xcb_disconnect(conn)
    if failed:
        raise StylizeError(f"cannot open a window: cannot connect to the X display {display!r}")


def _ema(old: float | None, new: float) -> float:
    return new if old is None else _SMOOTHING * old + (1 - _SMOOTHING) * new


def _last_line(error: Exception) -> str:
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
