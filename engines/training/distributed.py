"""One process per GPU under ``torchrun``: which process this is, its device, and agreeing to stop.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address; their presence is what makes a
run distributed, even with one process, so the DistributedDataParallel path is the same on one CPU
process (gloo backend, how the tests run it) as on eight GPUs (NCCL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import distributed as dist

from engines.device import resolve_device
from engines.errors import StylizeError


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    distributed: bool = False
    #: the process group's backend when distributed: nccl (GPUs) or gloo (CPU)
    backend: str = ""

    def describe(self) -> str:
        """'1 process', or 'N processes (DDP over nccl)'."""
        alone = f"{self.world} process" + ("es" if self.world > 1 else "")
        return f"{alone} (DDP over {self.backend})" if self.distributed else alone

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, samples, the CSV and the progress bar."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def start(device: str = "auto") -> Processes:
    """This process's place: alone on ``device``, or one of torchrun's (on cuda:LOCAL_RANK when on CUDA)."""
    if not launched_by_torchrun():
        return Processes(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device not in ("auto", "cpu", "cuda"):
        raise StylizeError(
            f"--device {device}: under torchrun each process uses cuda:LOCAL_RANK; use auto or cuda"
        )
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device == "cuda" and not use_cuda:
        resolve_device("cuda")  # raises the usual one-line error
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise StylizeError(
                f"process {rank} wants cuda:{local}, but this machine has {torch.cuda.device_count()} GPU(s)"
            )
        torch.cuda.set_device(local)
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as e:
            raise StylizeError(f"cannot join the torchrun group: {str(e).splitlines()[0]}") from None
    return Processes(rank=rank, world=world, device=dev, distributed=True, backend=dist.get_backend())


def stop(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_process(processes: Processes, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (so all stop at the same step, none hangs)."""
    if not processes.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=processes.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()
