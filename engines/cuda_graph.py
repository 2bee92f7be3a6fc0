"""Capturing a function of fixed-shape CUDA tensors in a CUDA graph.

The torch runtime's per-frame graph and the temporal filter's flow graph both go through
:func:`capture`, so the two rules that make a capture safe live in one place:

- The capture runs on an explicit stream of the inputs' GPU. torch's default capture stream is made
  once, on whichever GPU was current then, so a later capture for another GPU would record nothing.
- The caller's stream is current again afterwards, also when the capture fails: ``torch.cuda.graph``
  restores it only if ``capture_end`` succeeds, and a caller that falls back to running eagerly would
  otherwise queue that work on the dead capture stream, unordered with its own events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def capture(fn: Callable[..., Any], *inputs: Any, warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Capture ``fn(*inputs)``; return the graph and ``fn``'s outputs, which each replay overwrites.

    ``inputs`` are the static tensors (or dicts of them) a replay reads: refill them in place before
    ``graph.replay()``. The first input's device is the GPU. ``fn`` runs ``warmup`` times on the side
    stream first, outside the capture: cuDNN picks its algorithms there and lazily made constants are
    allocated outside the graph's private memory pool. A failed capture raises ``RuntimeError``.
    """
    device = next(x.device for x in _tensors(inputs))
    with torch.cuda.device(device):
        caller = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(caller)  # the inputs were written on the caller's stream
        try:
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    fn(*inputs)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                outputs = fn(*inputs)
        finally:
            torch.cuda.set_stream(caller)
        caller.wait_stream(side)
    return graph, outputs


def _tensors(values):
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, dict):
            yield from _tensors(v.values())
