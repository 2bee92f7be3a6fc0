"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, and everything here already handles that: the
pipeline stops its stages and closes its sinks, a video file keeps the frames done so far (or is
deleted), temporary files are removed. SIGTERM (a service manager, ``kill``, a container stopping) and
SIGHUP (the terminal closed) would instead kill the process on the spot and leave a hidden
``.partial`` file. :func:`signals_as_ctrl_c`, installed by the command line around each command,
makes them raise KeyboardInterrupt too, and remembers which signal came, so the exit code is the
shell's 128 + signal number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that stop a command cleanly (SIGHUP does not exist on Windows).
SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_NAMES = {"SIGINT": "interrupted", "SIGTERM": "terminated (SIGTERM)", "SIGHUP": "hung up (SIGHUP)"}

_received: int | None = None  # the first stopping signal of the current command


def _raise_interrupt(signum: int, _frame) -> None:
    global _received
    if _received is None:
        _received = signum
    raise KeyboardInterrupt


@contextlib.contextmanager
def signals_as_ctrl_c() -> Iterator[None]:
    """For the length of the block, SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (main thread only)."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code() -> int:
    """128 + the signal that stopped the command: 143 for SIGTERM, 129 for SIGHUP, else 130 (Ctrl-C)."""
    return 128 + (_received or signal.SIGINT)


def reason() -> str:
    """How the command was stopped, for its last line: ``interrupted``, ``terminated (SIGTERM)``…"""
    return _NAMES.get(signal.Signals(_received).name, "interrupted") if _received else "interrupted"


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a stopping signal that arrives inside the block and raise it at the end, when it is safe.

    Only in the main thread (Python runs signal handlers nowhere else) and only for signals whose
    handler raises KeyboardInterrupt (Python's default for SIGINT, or :func:`signals_as_ctrl_c`'s); an
    application's own handlers are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {
        sig: handler
        for sig in SIGNALS
        if (handler := signal.getsignal(sig)) in (signal.default_int_handler, _raise_interrupt)
    }
    received: list[int] = []
    for sig in held:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if received:
        held[received[0]](received[0], None)  # raises KeyboardInterrupt (and records the signal)
