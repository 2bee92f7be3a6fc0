"""WebcamSource on real ``cv2.VideoCapture`` objects.

No test machine has a camera, so a capture opened on a real video file stands in for one: the
grabber thread, the newest-frame hand-off and the re-open logic are the same code a camera runs.
``PacedCapture`` slows reads to a camera's rate (a file decodes as fast as the CPU allows), and
``FlakyCapture`` makes reads fail the way an unplugged camera does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import StylizeError
from media import CLIP_SIZE
from stream.webcam import WebcamSource

CAMERA_INTERVAL = 0.005  # a 200 fps "camera": fast enough to keep tests short


@pytest.fixture(scope="module")
def video(clip: Path) -> Path:
    return clip


@pytest.fixture(scope="module")
def file_frames(video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


class PacedCapture:
    """A real VideoCapture on ``path`` whose reads come at a camera's pace; fails after ``fail_after``."""

    def __init__(self, path: Path, fail_after: int | None = None) -> None:
        self.cap = cv2.VideoCapture(str(path))
        self.fail_after = fail_after
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2's spelling
        return self.cap.isOpened()

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(CAMERA_INTERVAL)
        if self.fail_after is not None and self.reads >= self.fail_after:
            return False, None  # what cv2 returns when the camera is unplugged
        self.reads += 1
        return self.cap.read()

    def set(self, prop: int, value: float) -> bool:
        return self.cap.set(prop, value)

    def get(self, prop: int) -> float:
        return self.cap.get(prop)

    def release(self) -> None:
        self.cap.release()


class ClosedCapture:
    """What ``cv2.VideoCapture`` is when the device does not exist."""

    def isOpened(self) -> bool:  # noqa: N802
        return False

    def release(self) -> None:
        pass


def test_streams_frames_from_a_real_capture(video: Path, file_frames: list[np.ndarray]) -> None:
    width, height = CLIP_SIZE
    with WebcamSource(str(video), width=width, height=height, fps=24, mjpg=True, reconnect=False) as src:
        frame = next(iter(src))
    assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
    assert frame.pts is None and frame.time_base is None
    assert np.array_equal(frame.image, file_frames[frame.index])
    assert (src.width, src.height) == (width, height)


def test_iteration_returns_the_newest_frame_not_a_backlog(video: Path, file_frames: list[np.ndarray]) -> None:
    src = WebcamSource(0, capture_factory=lambda d: PacedCapture(video))
    try:
        frames = iter(src)
        first = next(frames)
        time.sleep(40 * CAMERA_INTERVAL)  # a slow consumer: the camera delivers ~40 frames meanwhile
        grabbed = src.frames_grabbed
        second = next(frames)
        third = next(frames)  # waits for a fresh frame; never hands out the same one twice
    finally:
        src.close()
    assert second.index >= grabbed - 1  # the newest frame at the time of asking
    assert second.index - first.index > 5  # the frames in between were skipped, not queued
    assert third.index > second.index and third.captured_at > second.captured_at
    for f in (first, second, third):
        assert np.array_equal(f.image, file_frames[f.index % len(file_frames)])


def test_reconnects_with_back_off_after_the_camera_disappears(video: Path) -> None:
    opened: list[float] = []

    def factory(device: int | str) -> PacedCapture | ClosedCapture:
        opened.append(time.monotonic())
        if len(opened) == 1:
            return PacedCapture(video, fail_after=5)  # unplugged after 5 frames
        if len(opened) < 4:
            return ClosedCapture()  # still gone for two re-open attempts
        return PacedCapture(video)  # plugged back in

    src = WebcamSource(0, capture_factory=factory, retry_delay=0.02, max_retries=5)
    try:
        indices = [f.index for f, _ in zip(src, range(12), strict=False)]
    finally:
        src.close()
    assert len(opened) == 4 and src.reconnects == 3
    assert indices == sorted(indices) and len(set(indices)) == 12  # the stream went on after the gap
    gaps = np.diff(opened)
    assert gaps[2] >= 2 * 0.02 * 0.9  # the delay doubled between attempts


def test_gives_up_after_the_retry_limit(video: Path) -> None:
    calls = 0

    def factory(device: int | str) -> PacedCapture | ClosedCapture:
        nonlocal calls
        calls += 1
        return PacedCapture(video, fail_after=3) if calls == 1 else ClosedCapture()

    src = WebcamSource(0, capture_factory=factory, retry_delay=0.01, max_retry_delay=0.02, max_retries=3)
    start = time.monotonic()
    with pytest.raises(StylizeError, match="camera 0 stopped sending frames.*3 attempts"):
        for _ in src:
            pass
    src.close()
    assert calls == 1 + 3 and time.monotonic() - start < 5


def test_without_reconnect_a_lost_camera_ends_with_an_error(video: Path) -> None:
    src = WebcamSource(0, capture_factory=lambda d: PacedCapture(video, fail_after=2), reconnect=False)
    with pytest.raises(StylizeError, match="stopped sending frames"):
        list(src)
    src.close()


def test_a_camera_that_never_opens_fails_fast_and_clearly() -> None:
    start = time.monotonic()
    with pytest.raises(StylizeError, match="could not open camera 0: "):
        WebcamSource(0, capture_factory=lambda d: ClosedCapture())

    def raising_factory(device: int | str) -> cv2.VideoCapture:
        raise PermissionError("permission denied")

    with pytest.raises(StylizeError, match="could not open camera 3: permission denied"):
        WebcamSource("3", capture_factory=raising_factory)
    with pytest.raises(StylizeError, match="could not open camera '/nonexistent/cam.mp4'"):
        WebcamSource("/nonexistent/cam.mp4")  # the real cv2.VideoCapture
    assert time.monotonic() - start < 5


def test_a_camera_that_opens_but_sends_nothing_times_out(video: Path) -> None:
    with pytest.raises(StylizeError, match="sent no frame within 0.3 s"):
        WebcamSource(0, capture_factory=lambda d: PacedCapture(video, fail_after=0), open_timeout=0.3)


def test_close_from_another_thread_ends_a_waiting_iteration(video: Path) -> None:
    """The pipeline closes a source stuck waiting (camera reconnecting) to unblock its capture thread."""
    src = WebcamSource(0, capture_factory=lambda d: PacedCapture(video, fail_after=1), retry_delay=30)
    frames = iter(src)
    next(frames)
    closer = threading.Timer(0.2, src.close)
    closer.start()
    start = time.monotonic()
    assert list(frames) == []  # waiting for a frame that will not come, until close()
    assert time.monotonic() - start < 5
    closer.join()  # close() returns once the grabber has stopped
    assert not any(t.name == "webcam-grabber" and t.is_alive() for t in threading.enumerate())


def test_a_video_file_for_a_camera_plays_once_at_its_frame_rate(short_clip: Path) -> None:
    """A file decodes far faster than 20 fps; read as a camera it must take its 1 s, then end."""
    start = time.monotonic()
    with WebcamSource(str(short_clip)) as src:
        guard = threading.Timer(5, src.close)  # a source that never ends fails the test, not hangs it
        guard.start()
        frames = list(src)  # ends by itself: no loop
        guard.cancel()
    elapsed = time.monotonic() - start
    assert src.is_file and src.fps == pytest.approx(20)
    assert 0.9 <= elapsed < 5
    assert 15 <= len(frames) <= 20 and frames[-1].index == 19
    assert frames[-1].captured_at - frames[0].captured_at >= 0.85 * (frames[-1].index - frames[0].index) / 20


def test_a_looped_video_file_starts_over_until_closed(short_clip: Path) -> None:
    src = WebcamSource(str(short_clip), loop=True)
    try:
        frames = [f for f, _ in zip(src, range(30), strict=False)]
    finally:
        src.close()
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert frames[-1].index >= 25  # past the clip's 20 frames: it started over
    assert frames[-1].captured_at - frames[0].captured_at >= 0.85 * (frames[-1].index - frames[0].index) / 20
