"""FLOPs of a model's per-frame path (content → stylized), for benchmarks and model comparisons.

Convention: convolutions and matrix products only, 2 FLOPs per multiply–accumulate (so a conv
costs 2·MACs), biases, ReLU, padding, pooling, upsampling and the AdaIN arithmetic not counted — they
are elementwise and well under 1 % of the conv work in these networks. Counted exactly at the padded
frame size by :class:`torch.utils.flop_counter.FlopCounterMode` on meta tensors, so any resolution
costs no compute and no memory.
"""

from __future__ import annotations

import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from engines.models.base import StyleModel


def count_flops(model: StyleModel, height: int, width: int) -> int:
    """FLOPs to stylize one height×width frame, counted at the size the engine runs.

    The frame is padded up to ``model.multiple`` first, as :class:`engines.stylizer.Stylizer` does.
    """
    m = model.multiple
    h, w = -(-height // m) * m, -(-width // m) * m
    with torch.no_grad():
        # Only the statistics' shapes matter; a small real style pass gives them.
        stats = model.style_stats(torch.rand(1, 3, 8 * m, 8 * m, device=_device(model)))
    meta = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict(keep_vars=True).items()}
    content = torch.empty(1, 3, h, w, device="meta")
    args = (content, 1.0, *(torch.empty_like(stats[k], device="meta") for k in model.stats_names))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        functional_call(model, meta, args)
    return int(counter.get_total_flops())


def _device(model: StyleModel) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
