"""The live processing stage: applies the viewer's current controls, then stylizes.

Every style is preloaded as cached statistics, so switching styles, α, colour preservation or
smoothing between two frames costs nothing: the stage reads one :class:`ControlState` snapshot per
batch and assigns plain attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.flicker import StatsSmoother
from engines.styles import Style
from engines.stylizer import Stylizer
from stream.controls import LiveControls
from stream.frames import Frame
from stream.gpu_stage import GpuStage


class LiveProcess:
    """A pipeline ``process`` callable driven by :class:`LiveControls`.

    ``smoother`` is installed as the engine's content hook while smoothing is on (torch backend); the
    exported engines have no hook, so for them smoothing is disabled in the controls.
    """

    def __init__(
        self,
        stylizer: Stylizer,
        styles: Sequence[Style],
        controls: LiveControls,
        smoother: StatsSmoother | None = None,
        depth: int | None = None,
    ):
        if not styles:
            raise ValueError("LiveProcess needs at least one style")
        self.stylizer = stylizer
        self.styles = list(styles)
        self.controls = controls
        self.smoother = smoother or StatsSmoother()
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
        if self.smoothing_supported:
            hook = self.smoother if state.smoothing else None
            if hook is not None and self.stylizer.engine.content_hook is None:
                self.smoother.reset()  # switched on: start from the current picture
            self.stylizer.engine.content_hook = hook
