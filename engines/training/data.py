"""Training images: random (content, style) pairs, resized and randomly cropped as in the paper.

Each sample is named by its global index k (step × world size + rank, times the batch, plus its slot),
and everything random about it (which images, which crop) is derived from (seed, k). So a resumed run
sees exactly the images an uninterrupted one would have, on any number of workers, and the processes
of a multi-GPU run never draw the same sample. Images are visited in a fresh random order each
epoch, content and style independently (pytorch-AdaIN's infinite samplers).

An image that cannot be read is replaced by the next one in the folder and reported with the batch,
so one bad file among thousands never stops a run; a folder none of whose images reads is an error
(raised in the main process, as one line).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from engines.errors import StylizeError

#: decodes one image file into H×W×3 uint8 BGR, raising StylizeError (or OSError) when it cannot
Reader = Callable[[Path], np.ndarray]
#: (content index, style index, global sample index)
Key = tuple[int, int, int]

_CONTENT, _STYLE, _CROP = 0, 1, 2  # independent random streams per seed


def resize_and_crop(
    image: np.ndarray, load_size: int, crop: int, rng: np.random.Generator | None
) -> np.ndarray:
    """Shorter side to ``load_size`` (aspect kept, as in the paper), then a crop×crop window.

    ``rng`` None takes the centre (fixed sample images); otherwise a random window.
    """
    h, w = image.shape[:2]
    scale = load_size / min(h, w)
    if scale != 1:
        size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        h, w = image.shape[:2]
    if rng is None:
        top, left = (h - crop) // 2, (w - crop) // 2
    else:
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return image[top : top + crop, left : left + crop]


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 BGR → 3×H×W uint8 RGB (a quarter of float32's bytes between processes)."""
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)))


class PairDataset(Dataset):
    """(content, style) crops for a sample key, plus the paths that could not be read on the way."""

    def __init__(
        self,
        content: Sequence[Path],
        style: Sequence[Path],
        reader: Reader,
        load_size: int,
        crop: int,
        seed: int,
    ):
        self.content, self.style = list(content), list(style)
        self.reader, self.load_size, self.crop, self.seed = reader, load_size, crop, seed

    def __getitem__(self, key: Key) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
        ci, si, k = key
        rng = np.random.default_rng([self.seed, _CROP, k])
        content, bad = self._load(self.content, ci, rng)
        style, bad_style = self._load(self.style, si, rng)
        return content, style, bad + bad_style

    def _load(
        self, paths: list[Path], index: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor | None, list]:
        bad = []
        for j in range(len(paths)):
            path = paths[(index + j) % len(paths)]
            try:
                image = self.reader(path)
            except (StylizeError, OSError, cv2.error, ValueError):
                bad.append(str(path))
                continue
            return to_tensor(resize_and_crop(image, self.load_size, self.crop, rng)), bad
        return None, bad


class PairBatches:
    """An endless batch sampler of sample keys, starting at ``start_step`` (see the module notes)."""

    def __init__(
        self,
        n_content: int,
        n_style: int,
        batch: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.sizes = {_CONTENT: n_content, _STYLE: n_style}
        self.batch, self.seed, self.start_step, self.rank, self.world = batch, seed, start_step, rank, world
        self._perms: dict[int, tuple[int, torch.Tensor]] = {}

    def __iter__(self) -> Iterator[list[Key]]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch
            yield [self.key(k) for k in range(first, first + self.batch)]
            step += 1

    def key(self, k: int) -> Key:
        return self._index(_CONTENT, k), self._index(_STYLE, k), k

    def _index(self, stream: int, k: int) -> int:
        epoch, position = divmod(k, self.sizes[stream])
        cached = self._perms.get(stream)
        if cached is None or cached[0] != epoch:
            state = np.random.SeedSequence([self.seed, stream, epoch]).generate_state(1)[0]
            generator = torch.Generator().manual_seed(int(state))
            cached = (epoch, torch.randperm(self.sizes[stream], generator=generator))
            self._perms[stream] = cached
        return int(cached[1][position])


def collate(items: list) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
    """Stack a batch; (None, None, bad paths) when some folder had no readable image at all."""
    bad = [path for _, _, paths in items for path in paths]
    if any(c is None or s is None for c, s, _ in items):
        return None, None, bad
    return torch.stack([c for c, _, _ in items]), torch.stack([s for _, s, _ in items]), bad


def _worker_init(_worker_id: int) -> None:
    """Workers leave Ctrl-C and SIGTERM to the main process, which stops them after its checkpoint.

    A terminal's Ctrl-C and torchrun's SIGTERM reach the whole process group; a worker that died of
    them would fail the main process's next fetch (or, through torch's SIGCHLD handler, anything it is
    doing, a checkpoint included). The main process shuts its workers down itself when the loop ends.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cv2.setNumThreads(1)


def make_loader(dataset: PairDataset, batches: PairBatches, workers: int, pin_memory: bool) -> DataLoader:
    """Workers are spawned, not forked: a fork copies the parent's locks but not its threads (OpenCV's
    pool, OpenMP's, gloo's), and a worker that touches such a lock waits forever. Spawning costs a
    few seconds once per run."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=False,
        multiprocessing_context="spawn" if workers else None,
    )
