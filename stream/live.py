"""The live processing stage: applies the viewer's current controls, then stylizes.

Every style is preloaded as cached statistics, so switching styles, α, colour preservation,
smoothing or temporal consistency between two frames costs nothing: the stage reads one
:class:`ControlState` snapshot per batch and assigns plain attributes. :class:`CaptureTimedSink` times
a live recording by the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction

from engines.flicker import StatsSmoother
from engines.styles import Style
from engines.stylizer import Stylizer
from engines.temporal import TemporalFilter, resolve_flow_place
from stream.controls import LiveControls
from stream.frames import Frame, Sink
from stream.gpu_stage import GpuStage


class LiveProcess:
    """A pipeline ``process`` callable driven by :class:`LiveControls`.

    ``smoother`` is installed as the engine's content hook while smoothing is on (torch backend); the
    exported engines have no hook, so for them smoothing is disabled in the controls. The stylizer's
    temporal filter is kept while temporal consistency is on (every backend); it starts afresh
    when switched on and when the style changes, so a new style shows at once, not blended in. One made
    here puts its flow where ``temporal_flow`` says (default ``auto``, see
    :func:`~engines.temporal.resolve_flow_place`).
    """

    def __init__(
        self,
        stylizer: Stylizer,
        styles: Sequence[Style],
        controls: LiveControls,
        smoother: StatsSmoother | None = None,
        depth: int | None = None,
        temporal_flow: str | None = None,
    ):
        if not styles:
            raise ValueError("LiveProcess needs at least one style")
        self.stylizer = stylizer
        self.styles = list(styles)
        self.controls = controls
        self.smoother = smoother or StatsSmoother()
        self.temporal = stylizer.temporal  # else made when first switched on
        self.temporal_flow = resolve_flow_place(temporal_flow or "auto", stylizer.engine.device)
        self._style_index = -1
        self.smoothing_supported = stylizer.engine.supports_content_hook
        if not self.smoothing_supported:
            controls.disable_smoothing()  # so the window never shows a smoothing that is not happening
        self.stage = GpuStage(stylizer, depth=depth)
        self._version = -1

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self._apply(self.controls.snapshot())
        return self.stage(frames)

    def flush(self) -> list[Frame]:
        return self.stage.flush()

    def _apply(self, state) -> None:
        if state.version == self._version:
            return
        self._version = state.version
        self.stylizer.stats = self.styles[state.style_index].stats
        self.stylizer.alpha = state.alpha
        self.stylizer.preserve_color = state.preserve_color
        if state.temporal:
            if self.temporal is None:
                self.temporal = TemporalFilter(flow=self.temporal_flow)
            if self.stylizer.temporal is None or state.style_index != self._style_index:
                self.temporal.reset()  # switched on, or a new style: start from the current picture
            self.stylizer.temporal = self.temporal
        else:
            self.stylizer.temporal = None
        self._style_index = state.style_index
        if self.smoothing_supported:
            hook = self.smoother if state.smoothing else None
            if hook is not None and self.stylizer.engine.content_hook is None:
                self.smoother.reset()  # switched on: start from the current picture
            self.stylizer.engine.content_hook = hook


class CaptureTimedSink:
    """Gives live frames timestamps from their capture time, then passes them to ``sink`` (a recording).

    Camera frames carry no pts, and a sink timing them by index at the camera's nominal rate gets the
    duration wrong whenever frames are skipped (stale ones dropped, a slow stylizer) or the camera
    runs at another rate than it says. Timed by ``captured_at``, the recording lasts as the session.
    """

    TIME_BASE = Fraction(1, 1000)

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._t0: float | None = None

    def write(self, frame: Frame) -> None:
        if self._t0 is None:
            self._t0 = frame.captured_at
        pts = round((frame.captured_at - self._t0) / self.TIME_BASE)
        self.sink.write(replace(frame, pts=pts, time_base=self.TIME_BASE))

    def close(self) -> None:
        self.sink.close()
