"""The pipeline's GPU stage, double-buffered: upload of frame k+1 and download of frame k−1 overlap
the compute of frame k.

On CUDA each in-flight slot owns page-locked host buffers (allocated once, reused) and a device input
buffer. Uploads, the network and downloads run on three streams ordered by CUDA events, so the copy
engines and the SMs work at the same time. Uploads and downloads need streams of their own: on one
shared copy stream the upload of frame k+1 would queue behind the download of frame k, which waits
for compute k, and no copy would ever overlap compute. Conversion uint8 ↔ float and BGR ↔ RGB
happens on the GPU inside :meth:`engines.stylizer.Stylizer.stylize_tensor`.

With the stylizer's temporal filter (``--temporal``) and its flow on the host, the optical flow of each
frame is computed here from the uint8 frame being uploaded (DIS on the CPU at ≤ 480 px, while the GPU
runs the previous batch), and only the flow and its confidence travel to the device, where the blend
runs after the network on the compute stream; with its flow on the device (a GPU's default) both run
there, after the network (see :mod:`engines.temporal`).

A frame's result therefore comes out one call later: ``__call__`` returns the frames finished by now
and :meth:`flush` the rest at the end of the stream. On the CPU the same stage runs the same slots in
order, synchronously, so the tests exercise its bookkeeping and its output equals a serial loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.stylizer import Stylizer
from stream.frames import Frame


@dataclass
class _Slot:
    frames: list[Frame]
    host_in: torch.Tensor  # pinned on CUDA
    device_in: torch.Tensor
    guides: list | None = None  # the temporal filter's flow and confidence per frame (host side)
    host_out: torch.Tensor | None = None  # pinned; shaped by the first result (the stylizer may resize)
    uploaded: object = None  # torch.cuda.Event, on CUDA
    computed: object = None
    downloaded: object = None


class GpuStage:
    """A :data:`stream.pipeline.Process` callable that keeps ``depth`` batches in flight.

    ``depth=1`` is a plain synchronous stage (lowest latency); ``depth=2`` is double buffering. The
    default is 2 on CUDA and 1 on the CPU, where there is no copy engine to overlap with.
    """

    def __init__(self, stylizer: Stylizer, depth: int | None = None):
        if depth is None:
            depth = 2 if stylizer.engine.device.type == "cuda" else 1
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.stylizer = stylizer
        self.device = stylizer.engine.device
        self.cuda = self.device.type == "cuda"
        self.depth = depth
        if self.cuda:
            self.upload_stream = torch.cuda.Stream(self.device)
            self.compute_stream = torch.cuda.Stream(self.device)
            self.download_stream = torch.cuda.Stream(self.device)
        self._buffers: dict[tuple, list[_Slot]] = {}  # per batch shape: depth reusable slots
        self._next: dict[tuple, int] = {}
        self._in_flight: list[_Slot] = []

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self.launch(frames)
        return self.ready()

    def launch(self, frames: list[Frame]) -> None:
        """Start a batch. If this raises, nothing was put in flight and the batches there are untouched
        (on CUDA, what the failed launch had queued only feeds its own result, which nobody collects)."""
        shape = (len(frames), *frames[0].image.shape)
        slot = self._take_slot(frames)
        self._launch(slot)
        # the ring moves on only now: a failed launch's slot is reused, never one still in flight
        self._next[shape] = (self._next[shape] + 1) % len(self._buffers[shape])
        self._in_flight.append(slot)

    def ready(self) -> list[Frame]:
        """The results of the oldest batches, leaving ``depth - 1`` in flight."""
        done = []
        while len(self._in_flight) >= self.depth:
            done += self._finish(self._in_flight.pop(0))
        return done

    def flush(self) -> list[Frame]:
        """Results of the batches still in flight (call once the source has ended)."""
        done = []
        while self._in_flight:
            done += self._finish(self._in_flight.pop(0))
        return done

    # --- slots -----------------------------------------------------------------------------------

    def _take_slot(self, frames: list[Frame]) -> _Slot:
        shape = (len(frames), *frames[0].image.shape)
        if shape not in self._buffers:
            pin = self.cuda
            self._buffers[shape] = [
                _Slot(
                    frames=[],
                    host_in=torch.empty(shape, dtype=torch.uint8, pin_memory=pin),
                    device_in=torch.empty(shape, dtype=torch.uint8, device=self.device),
                )
                for _ in range(self.depth + 1)  # +1: the slot being filled never aliases one in flight
            ]
            self._next[shape] = 0
        slot = self._buffers[shape][self._next[shape]]
        if slot.uploaded is not None:
            slot.uploaded.synchronize()  # its previous upload has left host_in
        for k, f in enumerate(frames):
            slot.host_in[k].numpy()[...] = f.image
        slot.frames = frames
        temporal = self.stylizer.temporal
        host_flow = temporal is not None and temporal.host_flow
        slot.guides = [temporal.prepare(f.image) for f in frames] if host_flow else None
        return slot

    def _launch(self, slot: _Slot) -> None:
        if not self.cuda:
            slot.host_out = self.stylizer.stylize_tensor(slot.host_in, slot.guides)
            return
        with torch.cuda.device(self.device):
            with torch.cuda.stream(self.upload_stream):
                if slot.computed is not None:
                    self.upload_stream.wait_event(slot.computed)  # the last compute read device_in
                slot.device_in.copy_(slot.host_in, non_blocking=True)
                slot.uploaded = torch.cuda.Event()
                slot.uploaded.record(self.upload_stream)
            self.compute_stream.wait_event(slot.uploaded)
            with torch.cuda.stream(self.compute_stream):
                out = self.stylizer.stylize_tensor(slot.device_in, slot.guides)
                slot.computed = torch.cuda.Event()
                slot.computed.record(self.compute_stream)
            self.download_stream.wait_event(slot.computed)
            with torch.cuda.stream(self.download_stream):
                out.record_stream(self.download_stream)  # the allocator must not reuse it before the download
                if slot.host_out is None or slot.host_out.shape != out.shape:
                    slot.host_out = torch.empty(out.shape, dtype=torch.uint8, pin_memory=True)
                slot.host_out.copy_(out, non_blocking=True)
                slot.downloaded = torch.cuda.Event()
                slot.downloaded.record(self.download_stream)

    def _finish(self, slot: _Slot) -> list[Frame]:
        if slot.downloaded is not None:
            slot.downloaded.synchronize()
        out = slot.host_out.numpy()
        if not self.cuda:  # a fresh result tensor per batch: hand it on as is
            return [f.with_image(out[k]) for k, f in enumerate(slot.frames)]
        # copies: pinned host_out is reused by a later batch while these frames travel on to the sinks
        return [f.with_image(np.array(out[k])) for k, f in enumerate(slot.frames)]
