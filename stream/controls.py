"""What a viewer can change while the stream runs, and the keys that change it.

The window (UI thread) writes this state and the processing stage (GPU thread) reads it once per
frame, so :class:`LiveControls` guards it with a lock and hands out immutable snapshots: a frame is
always stylized with one consistent set of settings. The window does not know the engine and the
engine does not know the window; both only know this object.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyBinding:
    keys: tuple[str, ...]
    action: str
    description: str
    short: str  # for the one-line overlay


#: Every key the live window understands. ``action`` names a :meth:`LiveControls.apply` action, or one
#: the window handles itself (``snapshot``, ``fullscreen``, ``quit``). Reused by ``--help``.
KEYMAP: tuple[KeyBinding, ...] = (
    KeyBinding(("n", "]"), "next_style", "next style", "next"),
    KeyBinding(("p", "["), "previous_style", "previous style", "prev"),
    KeyBinding(("+", "="), "alpha_up", "more style (alpha +0.1)", "alpha+"),
    KeyBinding(("-", "_"), "alpha_down", "less style (alpha -0.1)", "alpha-"),
    KeyBinding(("c",), "toggle_preserve_color", "keep the camera's colours on/off", "colour"),
    KeyBinding(("f",), "toggle_smoothing", "flicker smoothing on/off (still scenes)", "smooth"),
    KeyBinding(("t",), "toggle_temporal", "temporal consistency on/off (optical flow)", "temporal"),
    KeyBinding(("s",), "snapshot", "save the stylized frame as PNG", "snap"),
    KeyBinding(("w",), "fullscreen", "fullscreen on/off", "full"),  # not F: Qt reports Shift+f as f
    KeyBinding(("q", "Esc"), "quit", "quit", "quit"),
)

#: Key name → action, for the window's key handler (``Esc`` is key code 27).
KEY_ACTIONS: dict[str, str] = {key: b.action for b in KEYMAP for key in b.keys}


def keys_help() -> str:
    """One line per binding, e.g. ``  n ]    next style`` (for ``--help`` and the README)."""
    return "\n".join(f"  {' '.join(b.keys):<8} {b.description}" for b in KEYMAP)


def keys_help_line() -> str:
    """The short one-line form the window overlays on the picture: ``n:next p:prev ... q:quit``."""
    return " ".join(f"{b.keys[0]}:{b.short}" for b in KEYMAP)


@dataclass(frozen=True)
class ControlState:
    """One consistent reading of the controls. ``version`` grows on every change (cheap change test)."""

    style_index: int
    style_name: str
    alpha: float
    preserve_color: bool
    smoothing: bool
    version: int
    temporal: bool = False


class LiveControls:
    """Mutable live settings: the style (index into ``styles``), α, colour preservation, smoothing and
    temporal consistency."""

    def __init__(
        self,
        styles: Sequence[str],
        model_name: str = "",
        alpha: float = 1.0,
        alpha_step: float = 0.1,
        preserve_color: bool = False,
        smoothing: bool = False,
        style_index: int = 0,
        temporal: bool = False,
    ) -> None:
        self.styles = tuple(styles)
        self.model_name = model_name
        self.alpha_step = alpha_step
        self._lock = threading.Lock()
        self._style_index = style_index % len(self.styles) if self.styles else 0
        self._alpha = _clamp(alpha)
        self._preserve_color = preserve_color
        self._smoothing = smoothing
        self._temporal = temporal
        #: False where the engine cannot smooth (onnxruntime, TensorRT); the toggle then does nothing
        self.smoothing_available = True
        self._version = 0

    def snapshot(self) -> ControlState:
        """The current settings, for the processing stage to use for one frame (thread-safe)."""
        with self._lock:
            i = self._style_index
            return ControlState(
                style_index=i,
                style_name=self.styles[i] if self.styles else "",
                alpha=self._alpha,
                preserve_color=self._preserve_color,
                smoothing=self._smoothing,
                version=self._version,
                temporal=self._temporal,
            )

    def next_style(self, step: int = 1) -> None:
        with self._lock:
            if self.styles:
                self._style_index = (self._style_index + step) % len(self.styles)
                self._version += 1

    def previous_style(self) -> None:
        self.next_style(-1)

    def set_alpha(self, alpha: float, relative: bool = False) -> None:
        with self._lock:
            self._alpha = _clamp(self._alpha + alpha if relative else alpha)
            self._version += 1

    def alpha_up(self) -> None:
        self.set_alpha(self.alpha_step, relative=True)

    def alpha_down(self) -> None:
        self.set_alpha(-self.alpha_step, relative=True)

    def toggle_preserve_color(self) -> None:
        with self._lock:
            self._preserve_color = not self._preserve_color
            self._version += 1

    def toggle_smoothing(self) -> None:
        with self._lock:
            if not self.smoothing_available:
                return  # the engine has no hook for it (exported backends): the overlay must not claim it
            self._smoothing = not self._smoothing
            self._version += 1

    def toggle_temporal(self) -> None:
        with self._lock:
            self._temporal = not self._temporal
            self._version += 1

    def disable_smoothing(self) -> None:
        """For engines without a hook for it: smoothing off, and the toggle does nothing from now on."""
        with self._lock:
            self.smoothing_available = False
            self._smoothing = False
            self._version += 1

    def apply(self, action: str) -> bool:
        """Run a :data:`KEYMAP` action by name; False for actions that are not about these settings."""
        method = getattr(self, action, None) if action in _CONTROL_ACTIONS else None
        if method is None:
            return False
        method()
        return True


_CONTROL_ACTIONS = frozenset(
    {
        "next_style",
        "previous_style",
        "alpha_up",
        "alpha_down",
        "toggle_preserve_color",
        "toggle_smoothing",
        "toggle_temporal",
    }
)


def _clamp(alpha: float) -> float:
    """α in [0, 1], rounded so repeated ±0.1 steps land on 0.3, not 0.30000000000000004."""
    return round(min(1.0, max(0.0, float(alpha))), 6)
