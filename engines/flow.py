"""Dense optical flow as tensor ops: the flow ``--temporal`` computes on a GPU, next to the network.

OpenCV's DIS (what :mod:`engines.temporal` runs on the host) has no GPU form in the pip wheels, and a
learned estimator (RAFT, ...) needs weights we cannot ship, so this is a classical method: combined
local–global flow (Bruhn, Weickert & Schnörr, IJCV 2005) coarse to fine. Per level a few Gauss–Newton
steps; each sums the linearised brightness constancy over a small Gaussian window (the local,
Lucas–Kanade term) and solves it with a Horn–Schunck smoothness term (the global term, which fills
flat areas from their textured neighbours) by Jacobi iterations. Fixed shapes, a fixed number of ops,
nothing read back to the host and no host data copied in: a CUDA graph captures it whole.

Chosen on Big Buck Bunny 480p with microast and starry_night by the warping error of the temporal
filter driven by it, as a ratio to per-frame, judged by DIS-medium / Farneback flow, on the first 4 s
(a fade from black, slow motion) and on frames 120–215 (steady motion):

- host DIS "fast" (the reference): 0.32× / 0.33× and 0.115× / 0.26×;
- this flow: 0.34× / 0.24× and 0.13× / 0.27×;
- without the global translation (below): 0.24× / 0.09× and 0.17× / 0.17×, but a texture with 10 grey
  levels of contrast moved by 5.5 px was found to move 3 px: where gradients are weak the smoothness
  term holds the flow at the coarser level's guess, and Jacobi iterations move a uniform offset only by
  ``J / (J + smoothness)`` per sweep;
- ζ relative to the picture's mean gradient (contrast-invariant) instead of absolute: 0.65× on the
  first 4 s — in the fade, compression noise then reads as motion;
- Lucas–Kanade alone (no smoothness): 0.84–1.25× on the first 4 s.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: Gauss–Newton steps per pyramid level, and Jacobi iterations per step: on a GPU the cost is the
#: number of kernels (≈ 1200 a 480p frame with these), not the pixels. Two steps gave the same warping
#: errors (±0.01×) for twice the kernels; 10 iterations too, but a small object moving on a still
#: background was found to move 2.7 of its 4 px with 2×10, 2.8 with 1×20, 3.4 with 2×20 (DIS: 3.8).
DEFAULT_ITERATIONS = 1
DEFAULT_INNER = 20
#: Gauss–Newton steps per level of the global translation that initialises the dense flow.
DEFAULT_GLOBAL_ITERATIONS = 2
#: σ (pixels of the level) of the window the linearised constancy is summed over.
DEFAULT_WINDOW_SIGMA = 1.0
#: ζ (grey levels per pixel) of the gradient normalisation: a gradient weaker than this is mostly noise
#: and counts in proportion to its square.
DEFAULT_ZETA = 20.0
#: Weight of the smoothness term, relative to the normalised data term.
DEFAULT_SMOOTHNESS = 3.0
#: Added to the diagonal of the 2×2 systems: keeps them solvable where the picture is flat.
DEFAULT_DAMPING = 0.01
#: σ of the blur before each halving of the pyramid: a box average alone aliases fine texture into
#: false motion at the coarse levels (a texture blurred by σ = 1 was found 5 px off, 0.3 px with it).
PYRAMID_SIGMA = 0.6
#: The coarsest level is the first whose shorter side is below this many pixels.
COARSEST_SIDE = 16
#: The largest step, in pixels of a level, one iteration may take: a wrong minimum cannot throw the
#: estimate across the image (the coarser level has already found the large motion).
MAX_STEP = 1.0


@functools.cache
def _gaussian(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The 1-D kernel, made once per device: a copy from the host cannot be captured in a CUDA graph."""
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(device=device, dtype=dtype)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel of N×C×H×W, edges replicated."""
    k = _gaussian(float(sigma), x.device, x.dtype)
    r, c = k.numel() // 2, x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c
    )


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of N×1×H×W along x and y (one-sided at the edges, by replication)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) * 0.5, (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) * 0.5


@functools.cache
def _sampling_grid(
    h: int, w: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``grid_sample``'s coordinates of the pixel centres of an h×w image (1×h×w×2, align_corners=False:
    (2i+1)/w − 1) and the scale from pixels to them, made once per size and device."""
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    scale = torch.tensor([2 / w, 2 / h], dtype=torch.float64)
    return grid.to(device=device, dtype=dtype), scale.to(device=device, dtype=dtype)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp: out(x) = image(x + flow(x)); N×C×H×W and N×2×H×W (pixels), edges replicated."""
    grid, scale = _sampling_grid(*image.shape[-2:], flow.device, flow.dtype)
    grid = torch.addcmul(grid, flow.permute(0, 2, 3, 1), scale)  # one kernel: it runs ~20 times a frame
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)


def scale_flow(flow: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """N×2×… flow with its x and y components scaled (Python numbers: nothing copied to the device)."""
    return torch.cat((flow[:, :1] * sx, flow[:, 1:] * sy), dim=1)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N×2×h×w flow in pixels of h×w → N×2×H×W in pixels of ``size`` (H, W), bilinear."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    up = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    return scale_flow(up, size[1] / w, size[0] / h)


class PyramidFlow:
    """Backward flow between two grey images on any device: ``flow(current, previous)`` → N×2×H×W in
    pixels, where each pixel of ``current`` was in ``previous`` (``previous(x + flow(x)) ≈ current(x)``),
    the convention of ``cv2.DISOpticalFlow.calc(current, previous)``.

    Inputs are N×1×H×W float grey in 0–255 (a few hundred pixels a side: the pyramid goes down to
    :data:`COARSEST_SIDE`). The previous image is first scaled to the current one's mean (a fade is no
    motion), and the best single translation of the whole picture starts the dense flow, so a weakly
    textured picture that moves as one is found as a whole.
    """

    def __init__(
        self,
        iterations: int = DEFAULT_ITERATIONS,
        inner: int = DEFAULT_INNER,
        global_iterations: int = DEFAULT_GLOBAL_ITERATIONS,
        window_sigma: float = DEFAULT_WINDOW_SIGMA,
        zeta: float = DEFAULT_ZETA,
        smoothness: float = DEFAULT_SMOOTHNESS,
        damping: float = DEFAULT_DAMPING,
    ) -> None:
        if iterations < 1 or inner < 1 or global_iterations < 0:
            raise ValueError("iterations and inner must be at least 1, global_iterations at least 0")
        if zeta <= 0 or smoothness <= 0 or damping < 0:
            raise ValueError("zeta and smoothness must be positive, damping not negative")
        self.iterations = iterations
        self.inner = inner
        self.global_iterations = global_iterations
        self.window_sigma = window_sigma
        self.zeta = zeta
        self.smoothness = smoothness
        self.damping = damping

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        if current.shape != previous.shape or current.dim() != 4 or current.shape[1] != 1:
            raise ValueError(
                f"expected two N×1×H×W grey images, got {tuple(current.shape)} and {tuple(previous.shape)}"
            )
        current, previous = current.float(), previous.float()
        gain = (current.mean(dim=(2, 3), keepdim=True) + 1) / (previous.mean(dim=(2, 3), keepdim=True) + 1)
        cur, prev = [current], [previous * gain]
        while min(cur[-1].shape[-2:]) >= 2 * COARSEST_SIDE:
            cur.append(F.avg_pool2d(blur(cur[-1], PYRAMID_SIGMA), 2, ceil_mode=True))
            prev.append(F.avg_pool2d(blur(prev[-1], PYRAMID_SIGMA), 2, ceil_mode=True))
        (h, w), (H, W) = cur[-1].shape[-2:], cur[0].shape[-2:]
        shift = self._translation(cur, prev)
        flow = scale_flow(shift, w / W, h / H).expand(-1, -1, h, w).contiguous()
        for c, p in zip(reversed(cur), reversed(prev), strict=True):
            flow = self._refine(c, p, resize_flow(flow, tuple(c.shape[-2:])))
        return flow

    def _linearise(self, cur, prev, flow, cx, cy) -> torch.Tensor:
        """The products (Ix², IxIy, Iy², IxIt, IyIt) per pixel, normalised by |∇I|² + ζ², where the
        gradient is that of the mean of the warped previous and the current image (steadier than
        either alone) and It the difference after warping."""
        warped = warp(prev, flow)
        wx, wy = gradients(warped)
        ix, iy, it = (cx + wx) * 0.5, (cy + wy) * 0.5, warped - cur
        products = torch.cat((ix * ix, ix * iy, iy * iy, ix * it, iy * it), dim=1)
        return products / (products[:, 0:1] + products[:, 2:3] + self.zeta**2)

    def _translation(self, cur: list[torch.Tensor], prev: list[torch.Tensor]) -> torch.Tensor:
        """The best single translation (N×2×1×1, pixels of the finest level), coarse to fine: one
        Lucas–Kanade system summed over the whole picture per step."""
        shift = cur[0].new_zeros(cur[0].shape[0], 2, 1, 1)
        size = cur[-1].shape[-2:]
        for c, p in zip(reversed(cur), reversed(prev), strict=True):
            h, w = c.shape[-2:]
            shift = scale_flow(shift, w / size[1], h / size[0])
            size = (h, w)
            cx, cy = gradients(c)
            for _ in range(self.global_iterations):
                m = self._linearise(c, p, shift.expand(-1, -1, h, w), cx, cy).mean(dim=(2, 3), keepdim=True)
                j11, j12, j22, b1, b2 = m.unbind(dim=1)
                det = j11 * j22 - j12 * j12 + 1e-9
                step = torch.stack(((j12 * b2 - j22 * b1) / det, (j12 * b1 - j11 * b2) / det), dim=1)
                shift = shift + step.clamp(-MAX_STEP, MAX_STEP)
        return shift

    def _refine(self, cur: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Gauss–Newton steps at one level. Each solves, per pixel, for the step s:
        (J + (damping + a)·I)·s = a·(mean of the neighbours' flow + step − flow) − j, with J, j the
        windowed products of :meth:`_linearise`, by Jacobi iterations."""
        a = self.smoothness
        cx, cy = gradients(cur)
        for _ in range(self.iterations):
            m = blur(self._linearise(cur, prev, flow, cx, cy), self.window_sigma)
            # (J22, J11) + ...: the inverse's diagonal (slices: an index list would be copied from the host)
            diagonal = torch.cat((m[:, 2:3], m[:, 0:1]), dim=1) + (self.damping + a)
            det = diagonal[:, 0:1] * diagonal[:, 1:2] - m[:, 1:2].square()
            p, q = diagonal / det, -m[:, 1:2] / det  # the inverse: [[p0, q], [q, p1]]
            # neighbours' mean over those that exist (the border replicates itself)
            c = a * (F.avg_pool2d(flow, 3, 1, 1, count_include_pad=False) - flow) - m[:, 3:5]
            step = torch.zeros_like(flow)
            for _ in range(self.inner):
                r = torch.add(c, F.avg_pool2d(step, 3, 1, 1, count_include_pad=False), alpha=a)
                step = torch.addcmul(p * r, q, r.flip(1))
            flow = flow + step.clamp(-MAX_STEP, MAX_STEP)
        return flow
