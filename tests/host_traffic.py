"""A recorder of what a CUDA graph cannot capture, and what makes the host wait for a GPU: data copied
in from the host (a tensor made from Python data, ``lift_fresh``, is one on a GPU: ``x[:, (2, 0)]`` makes
one), values read back (``.item()``, ``bool(t)``). No GPU is needed: run the code on the CPU or the
meta device under it, after a warm-up call (constants made once on the device are allowed)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class HostTraffic(TorchDispatchMode):
    """``with HostTraffic() as t: ...`` then ``t.found``: the offending ops, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if "_local_scalar_dense" in name or "lift_fresh" in name:
            self.found.append(name)
        if name.startswith(("aten._to_copy", "aten.copy_")) and any(t.device.type == "cpu" for t in tensors):
            self.found.append(name)
        return func(*args, **(kwargs or {}))
