"""One browser client: its settings, and a live pipeline from its camera through the shared stage to it.

The WebRTC side (asyncio) and the pipeline (threads) meet in two one-frame slots: the camera's
newest frame waits in a :class:`FrameMailbox` (a newer one replaces it), and the newest stylized
frame waits in an :class:`OutputSlot` for the outgoing track. Between them the pipeline's live policy
drops whatever is stale, so a client's latency stays at about one frame per stage however slow the
server is. Frames travel unconverted (the network's YUV) until :meth:`ClientSession._process` hands
one to the shared stage: a frame that will never be stylized is never converted either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from engines.flicker import StatsSmoother
from engines.stylizer import target_size
from stream.frames import Frame
from stream.pipeline import Pipeline
from stream.serve.gallery import Gallery
from stream.serve.shared_stage import SharedStage, StageClosed, StageSettings

log = logging.getLogger(__name__)

_POLL = 0.1
_WINDOW = 2.0  # seconds of history behind the FPS and latency a client sees

#: Turns what the network delivered (an av.VideoFrame) into (H×W×3 uint8 BGR, pts, time_base).
Convert = Callable[[object], tuple[np.ndarray, int | None, object]]


class FrameMailbox:
    """A :class:`stream.frames.Source` holding only the newest camera frame; :meth:`put` never blocks.

    Its frames carry the network's frame as their ``image``, unconverted (:meth:`ClientSession._process`
    converts the ones that reach the shared stage).
    """

    def __init__(self) -> None:
        self._item: tuple[object, float] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.received = 0
        self.dropped = 0  # replaced before the pipeline took them
        self.last_arrival = time.monotonic()

    def put(self, raw: object, arrived_at: float | None = None) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self.last_arrival = arrived_at or time.monotonic()
            self._item = (raw, self.last_arrival)
            self.received += 1
            self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            with self._cond:
                while self._item is None and not self._closed:
                    self._cond.wait(_POLL)
                if self._closed:
                    return
                raw, arrived_at = self._item
                self._item = None
            yield Frame(raw, index, captured_at=arrived_at)  # type: ignore[arg-type]  # see the class
            index += 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()


class OutputSlot:
    """A :class:`stream.frames.Sink` keeping the newest stylized frame for the outgoing track.

    ``on_frame`` (set by the track) is called from the pipeline's thread after each write; it must be
    thread-safe (the track schedules a wake-up on its event loop). Keeps the last seconds' output
    times and latencies for the FPS and latency a client is shown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._history: deque[tuple[float, float]] = deque()  # (written at, latency)
        self._taken: deque[float] = deque()  # when the track took a frame to send
        self.on_frame: Callable[[], None] | None = None
        self.closed = False
        self.written = 0

    def write(self, frame: Frame) -> None:
        now = time.monotonic()
        with self._lock:
            self._frame = frame
            self.written += 1
            self._history.append((now, now - frame.captured_at))
            while self._history and self._history[0][0] < now - _WINDOW:
                self._history.popleft()
        callback = self.on_frame
        if callback is not None:
            callback()

    def take(self) -> Frame | None:
        """The newest frame not taken yet, or None."""
        now = time.monotonic()
        with self._lock:
            frame, self._frame = self._frame, None
            if frame is not None:
                self._taken.append(now)
                while self._taken and self._taken[0] < now - _WINDOW:
                    self._taken.popleft()
            return frame

    def sent_fps(self) -> float:
        """Frames/s the track took to send (fewer than written when the encoder is the slower one)."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._taken if t >= now - _WINDOW]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def recent(self) -> tuple[float, float, float]:
        """(FPS, mean latency ms, p95 latency ms) over the last couple of seconds."""
        now = time.monotonic()
        with self._lock:
            items = [(t, lat) for t, lat in self._history if t >= now - _WINDOW]
        if not items:
            return 0.0, 0.0, 0.0
        latencies = sorted(lat for _, lat in items)
        span = items[-1][0] - items[0][0]
        fps = (len(items) - 1) / span if span > 0 else 0.0
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        return fps, 1000 * sum(latencies) / len(latencies), 1000 * p95

    def close(self) -> None:
        self.closed = True
        callback = self.on_frame
        if callback is not None:
            callback()


@dataclass(frozen=True)
class ClientSettings:
    """What the viewer chose on the page; ``version`` grows with every change."""

    style_id: str
    alpha: float
    preserve_color: bool
    smoothing: bool
    version: int = 0

    def describe(self) -> dict:
        return {
            "style": self.style_id, "alpha": self.alpha,
            "preserve_color": self.preserve_color, "smoothing": self.smoothing,
        }  # fmt: skip


class ClientSession:
    """One client's settings and pipeline. Start with :meth:`start`, end with :meth:`close` (idempotent)."""

    def __init__(
        self,
        client_id: str,
        stage: SharedStage,
        gallery: Gallery,
        settings: ClientSettings,
        convert: Convert,
        max_side: int | None = None,
    ) -> None:
        self.id = client_id
        self.stage = stage
        self.gallery = gallery
        self.max_side = max_side
        self.smoothing_supported = stage.engine.supports_content_hook
        if not self.smoothing_supported:
            settings = replace(settings, smoothing=False)
        self._settings = settings
        self._lock = threading.Lock()
        self._smoother = StatsSmoother()
        self._smoothing_on = False
        self._convert = convert
        self.mailbox = FrameMailbox()
        self.output = OutputSlot()
        self.pipeline = Pipeline(self.mailbox, self._process, [self.output], policy="live")
        self.size: tuple[int, int] | None = None  # (width, height) being stylized
        self.error: BaseException | None = None
        self.created_at = time.monotonic()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"client-{client_id[:8]}", daemon=True)

    # -- settings (from the page; any thread) ------------------------------------------------------

    @property
    def settings(self) -> ClientSettings:
        with self._lock:
            return self._settings

    def update(self, changes: dict) -> ClientSettings:
        """Apply the page's changes (``style``, ``alpha``, ``preserve_color``, ``smoothing``); ValueError."""
        unknown = set(changes) - {"style", "alpha", "preserve_color", "smoothing"}
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)[0]!r}")
        fields: dict = {}
        if "style" in changes:
            if not isinstance(changes["style"], str) or self.gallery.get(changes["style"]) is None:
                raise ValueError("no such style")
            fields["style_id"] = changes["style"]
        if "alpha" in changes:
            alpha = changes["alpha"]
            if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
                raise ValueError("alpha must be a number between 0 and 1")
            fields["alpha"] = float(alpha)
        for name in ("preserve_color", "smoothing"):
            if name in changes:
                if not isinstance(changes[name], bool):
                    raise ValueError(f"{name} must be true or false")
                fields[name] = changes[name]
        if not self.smoothing_supported:
            fields["smoothing"] = False  # the engine has no hook for it: never claim it is on
        with self._lock:
            self._settings = replace(self._settings, **fields, version=self._settings.version + 1)
            return self._settings

    # -- the pipeline ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except StageClosed:
            pass  # closed while a frame was at the shared stage: the normal way out
        except Exception as e:
            self.error = e
            log.warning("client %s: %s", self.id[:8], e)
        finally:
            self._closed.set()

    def _process(self, frames: list[Frame]) -> list[Frame]:
        """The pipeline's process stage: this client's settings, then the shared stage.

        The frames the live pipeline kept are converted here, not at capture: the ones it dropped as
        stale on the way cost nothing.
        """
        frames = [self._converted(f) for f in frames]
        settings = self.settings
        style = self.gallery.get(settings.style_id) or self.gallery.first()
        if settings.smoothing and not self._smoothing_on:
            self._smoother.reset()  # switched on: start from the current picture
        self._smoothing_on = settings.smoothing
        h, w = frames[0].image.shape[:2]
        size = target_size(h, w, None, self.max_side, even=True)
        self.size = (size[1], size[0])
        stage_settings = StageSettings(
            stats=style.stats,
            alpha=settings.alpha,
            preserve_color=settings.preserve_color,
            size=None if size == (h, w) else size,
            hook=self._smoother if settings.smoothing else None,
        )
        return self.stage.submit(stage_settings, frames, cancelled=self._closed.is_set)

    def _converted(self, frame: Frame) -> Frame:
        image, pts, time_base = self._convert(frame.image)
        return replace(frame, image=image, pts=pts, time_base=time_base)

    # -- state -------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """The pipeline ran and stopped (an error, the camera track ended, or :meth:`close`)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def idle_for(self) -> float:
        """Seconds since the client's last camera frame arrived (or since it connected)."""
        return time.monotonic() - max(self.mailbox.last_arrival, self.created_at)

    def stats(self) -> dict:
        fps, latency, p95 = self.output.recent()
        total = self.pipeline.stats()
        return {
            "fps": round(fps, 1),
            "sent_fps": round(self.output.sent_fps(), 1),
            "latency_ms": round(latency, 1),
            "latency_p95_ms": round(p95, 1),
            "frames_in": self.mailbox.received,
            "frames_out": self.output.written,
            "dropped": self.mailbox.dropped + total.dropped,
            "size": list(self.size) if self.size else None,
        }

    def close(self, timeout: float = 10.0) -> None:
        """Stop the pipeline and wait for its threads; afterwards the session holds nothing running."""
        self._closed.set()
        self.mailbox.close()
        self.pipeline.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.output.on_frame = None
