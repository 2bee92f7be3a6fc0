"""A recorder of what a CUDA graph cannot capture, and what makes the host wait for a GPU: data copied
in from the host (a tensor made from Python data, ``lift_fresh``, is one on a GPU: ``x[:, (2, 0)]`` makes
one), values read back (``.item()``, ``bool(t)``), and ops whose output size depends on the data, which
wait for the GPU there (``nonzero``, a boolean mask as an index, ``unique``...). No GPU is needed: run
the code on the CPU or the meta device under it, after a warm-up call (constants made once on the
device are allowed)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ops whose CUDA kernels read a count back before they can allocate their output
DATA_DEPENDENT = (
    "aten.nonzero",
    "aten.masked_select",
    "aten._unique",
    "aten.unique",
    "aten.repeat_interleave.Tensor",
)


class HostTraffic(TorchDispatchMode):
    """``with HostTraffic() as t: ...`` then ``t.found``: the offending ops, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if "_local_scalar_dense" in name or "lift_fresh" in name or name.startswith(DATA_DEPENDENT):
            self.found.append(name)
        if name.startswith(("aten.index.Tensor", "aten.index_put")) and any(  # x[mask], x[mask] = v
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            self.found.append(name)
        if name.startswith(("aten._to_copy", "aten.copy_")) and any(t.device.type == "cpu" for t in tensors):
            self.found.append(name)
        return func(*args, **(kwargs or {}))
