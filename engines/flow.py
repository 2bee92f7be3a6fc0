"""Dense optical flow as tensor ops: the flow ``--temporal`` computes on a GPU, next to the network.

OpenCV's DIS (what :mod:`engines.temporal` runs on the host) has no GPU form in the pip wheels, and a
learned estimator (RAFT, ...) needs weights we cannot ship, so this is DIS itself, rewritten as batched
tensor ops (:class:`DenseInverseSearch`; Kroeger et al., "Fast Optical Flow using Dense Inverse
Search", ECCV 2016), coarse to fine. Per level:

1. **inverse search**: the picture is cut into overlapping 8×8 patches (stride 4), laid out side by
   side as one image, and each patch's displacement is refined by a few inverse-compositional
   Lucas–Kanade steps — its gradients and 2×2 Hessian computed once, then one ``grid_sample`` of the
   previous frame per step for every patch at once. Patches are mean-normalised, so a patch's contrast
   does not matter, only its texture; a patch that ends worse than it started keeps its start;
2. **densification**: each pixel averages the displacements of the patches over it, each weighted by
   how well it explains that pixel (``F.fold`` sums the overlaps);
3. **variational refinement**: one Gauss–Newton step of a combined local–global energy (windowed
   linearised brightness constancy + smoothness, 5 Jacobi iterations), as DIS refines its field.

Fixed shapes, a fixed number of ops (≈ 760 kernels at 480×270), nothing read back to the host and no
host data copied in: a CUDA graph captures it whole.

Chosen on Big Buck Bunny 480p with microast and starry_night by the temporal filter driven by it:
warping error as a ratio to per-frame (judged by DIS-medium / Farneback flow) and VGG-16 style
distance ratio, on the first 4 s (a fade from black, clouds drifting behind still trees) and on
frames 120–215 (steady motion):

- host DIS "fast" (OpenCV): 0.32× / 0.33× / style 1.04× and 0.115× / 0.26× / 1.20×;
- this flow: 0.28× / 0.35× / 0.96× and 0.11× / 0.28× / 0.98×. With 8 search steps and 10 Jacobi
  iterations (1040 kernels against 780 then): 0.28× / 0.37× / 0.94× and 0.11× / 0.28× / 0.99×; without
  the refinement 0.30× / 0.39× / 0.97× and 0.115× / 0.29× / 0.96×; searched down to full size instead of
  half (one more level) 0.27× / 0.38×;
- rejected: a combined local–global flow alone (Bruhn et al. 2005, started from the best global
  translation): 0.34× / 0.24× but style 1.33×. Its data term, weighted by the squared gradient, ignores
  the smooth clouds, so their motion was taken from the still trees; the strokes drawn on the clouds
  were then blended with history that had not moved with them. Smaller ζ (more weight to weak
  gradients) traded style for error: ζ 5: 0.43× / style 1.09×; ζ 2: 0.50× / 0.98×.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: Patch side and stride of the inverse search (OpenCV's "fast" preset: 8 and 4).
PATCH = 8
STRIDE = 4
#: Lucas–Kanade steps per patch and level: 4, 8 and 16 gave the same warping errors (±0.01×); on a GPU
#: the flow's cost is its number of kernels, so the fewest.
DEFAULT_ITERATIONS = 4
#: The finest pyramid level searched (0: the input's size; 1: half of it): the flow is upsampled from
#: there. Level 0 improved the error by 0.01–0.03× for a quarter more kernels, 4× the pixels.
DEFAULT_FINEST_LEVEL = 1
#: The coarsest level is the last whose shorter side is at least this (2 patches).
COARSEST_SIDE = 2 * PATCH
#: σ of the blur before each halving of the pyramid: a box average alone aliases fine texture into
#: false motion at the coarse levels.
PYRAMID_SIGMA = 0.6
#: The refinement: Jacobi iterations (5 and 10: the same errors), smoothness weight, ζ (grey levels per
#: pixel: a gradient weaker than this counts in proportion to its square, as mostly noise), σ of the
#: window the linearised constancy is summed over, and the damping that keeps the 2×2 systems solvable
#: where it is flat.
REFINE_ITERATIONS = 5
SMOOTHNESS = 3.0
ZETA = 20.0
WINDOW_SIGMA = 1.0
DAMPING = 0.01
#: The largest step, in pixels of a level, the refinement may take.
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


def _grid(
    xs: torch.Tensor, ys: torch.Tensor, h: int, w: int, device, dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``grid_sample``'s coordinates (1×len(ys)×len(xs)×2, align_corners=False: (2x+1)/w − 1) of the
    pixel positions ``xs`` × ``ys`` of an h×w image, and the scale from pixels to them, on ``device``."""
    grid = torch.stack(torch.meshgrid((xs * 2 + 1) / w - 1, (ys * 2 + 1) / h - 1, indexing="xy"), dim=-1)
    scale = torch.tensor([2 / w, 2 / h], dtype=torch.float64)
    return grid[None].to(device=device, dtype=dtype), scale.to(device=device, dtype=dtype)


# The grids below are made once per size and never dropped: a copy from the host cannot be captured in
# a CUDA graph, and a captured graph reads them by address without holding them.
@functools.cache
def _sampling_grid(
    h: int, w: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_grid` of every pixel centre of an h×w image."""
    return _grid(
        torch.arange(w, dtype=torch.float64), torch.arange(h, dtype=torch.float64), h, w, device, dtype
    )


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s grid (N×H×W×2) for x + flow(x) on an image the flow's size (N×2×H×W, pixels);
    a point is inside the image where both coordinates are within [−1, 1]."""
    grid, scale = _sampling_grid(*flow.shape[-2:], flow.device, flow.dtype)
    return torch.addcmul(grid, flow.permute(0, 2, 3, 1), scale)  # one kernel: it runs ~20 times a frame


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp: out(x) = image(x + flow(x)); N×C×H×W and N×2×H×W (pixels), edges replicated."""
    return F.grid_sample(image, flow_grid(flow), mode=mode, padding_mode="border", align_corners=False)


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


@functools.cache
def _patch_grid(
    ny: int, nx: int, h: int, w: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_grid` of every patch's pixels of an h×w image, the patches laid out as blocks of an
    (ny·PATCH)×(nx·PATCH) image (see :func:`_to_blocks`)."""
    a = torch.arange(PATCH, dtype=torch.float64)
    ys = (torch.arange(ny, dtype=torch.float64)[:, None] * STRIDE + a).reshape(-1)
    xs = (torch.arange(nx, dtype=torch.float64)[:, None] * STRIDE + a).reshape(-1)
    return _grid(xs, ys, h, w, device, dtype)


def _to_blocks(x: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """N×C×H×W, padded so the patches cover it → N×C×(ny·PATCH)×(nx·PATCH): each patch as a block, so
    per-patch sums are one ``avg_pool2d`` and per-patch values one nearest upsampling."""
    n, c = x.shape[:2]
    cols = F.unfold(x, PATCH, stride=STRIDE).view(n, c, PATCH, PATCH, ny, nx)
    return cols.permute(0, 1, 4, 2, 5, 3).reshape(n, c, ny * PATCH, nx * PATCH)


def _from_blocks(blocks: torch.Tensor, ny: int, nx: int) -> torch.Tensor:
    """The inverse layout: N×C×(ny·PATCH)×(nx·PATCH) → N×(C·PATCH²)×(ny·nx), what ``F.fold`` takes."""
    n, c = blocks.shape[:2]
    b = blocks.view(n, c, ny, PATCH, nx, PATCH).permute(0, 1, 3, 5, 2, 4)
    return b.reshape(n, c * PATCH * PATCH, ny * nx)


def _per_patch(blocks: torch.Tensor) -> torch.Tensor:
    """Each block's mean: N×C×(ny·PATCH)×(nx·PATCH) → N×C×ny×nx."""
    return F.avg_pool2d(blocks, PATCH)


def _spread(values: torch.Tensor) -> torch.Tensor:
    """Per-patch values back over their blocks: N×C×ny×nx → N×C×(ny·PATCH)×(nx·PATCH)."""
    return F.interpolate(values, scale_factor=PATCH, mode="nearest")


class DenseInverseSearch:
    """Backward flow between two grey images on any device: ``flow(current, previous)`` → N×2×H×W in
    pixels, where each pixel of ``current`` was in ``previous`` (``previous(x + flow(x)) ≈ current(x)``),
    the convention of ``cv2.DISOpticalFlow.calc(current, previous)``.

    Inputs are N×1×H×W float grey in 0–255, a few hundred pixels a side (the pyramid goes down to
    :data:`COARSEST_SIDE`). The previous image is first scaled to the current one's mean, so a fade is
    no motion. See the module docstring for the method and the numbers behind its settings.
    """

    def __init__(
        self, iterations: int = DEFAULT_ITERATIONS, finest_level: int = DEFAULT_FINEST_LEVEL
    ) -> None:
        if iterations < 1 or finest_level < 0:
            raise ValueError(f"iterations must be at least 1 and finest_level at least 0, got {iterations}, "
                             f"{finest_level}")  # fmt: skip
        self.iterations = iterations
        self.finest_level = finest_level

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        if current.shape != previous.shape or current.dim() != 4 or current.shape[1] != 1:
            raise ValueError(
                f"expected two N×1×H×W grey images, got {tuple(current.shape)} and {tuple(previous.shape)}"
            )
        current, previous = current.float(), previous.float()
        gain = (current.mean(dim=(2, 3), keepdim=True) + 1) / (previous.mean(dim=(2, 3), keepdim=True) + 1)
        cur, prev = [current], [previous * gain]
        while min(cur[-1].shape[-2:]) // 2 >= COARSEST_SIDE:
            cur.append(F.avg_pool2d(blur(cur[-1], PYRAMID_SIGMA), 2, ceil_mode=True))
            prev.append(F.avg_pool2d(blur(prev[-1], PYRAMID_SIGMA), 2, ceil_mode=True))
        flow = torch.zeros_like(cur[-1]).expand(-1, 2, -1, -1)
        for level in range(len(cur) - 1, min(self.finest_level, len(cur) - 1) - 1, -1):
            c, p = cur[level], prev[level]
            flow = resize_flow(flow, tuple(c.shape[-2:]))
            flow = self._refine(c, p, self._search(c, p, flow))
        return resize_flow(flow, tuple(current.shape[-2:]))

    def _search(self, cur: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Inverse search and densification at one level, from the coarser level's ``flow``."""
        n, _, h, w = cur.shape
        ny, nx = -(-(h - PATCH) // STRIDE) + 1, -(-(w - PATCH) // STRIDE) + 1
        pad = (0, (nx - 1) * STRIDE + PATCH - w, 0, (ny - 1) * STRIDE + PATCH - h)  # patches cover it all
        padded = F.pad(cur, pad, mode="replicate")
        template = _to_blocks(padded, ny, nx)
        g = _to_blocks(torch.cat(gradients(padded), dim=1), ny, nx)
        g = g - _spread(_per_patch(g))  # mean-normalised patches: their gradients, centred
        gxx, gxy, gyy = _per_patch(
            torch.cat((g[:, :1] * g[:, :1], g[:, :1] * g[:, 1:], g[:, 1:] * g[:, 1:]), 1)
        ).unbind(1)
        det = gxx * gyy - gxy * gxy + 1e-3  # + a little: a flat patch does not move
        inverse_diagonal, inverse_off = torch.stack((gyy / det, gxx / det), dim=1), (-gxy / det)[:, None]
        grid, scale = _patch_grid(ny, nx, h, w, cur.device, cur.dtype)

        def error(u: torch.Tensor) -> torch.Tensor:  # previous at each patch pixel + its u, − template
            where = torch.addcmul(grid, _spread(u).permute(0, 2, 3, 1), scale)
            sampled = F.grid_sample(prev, where, mode="bilinear", padding_mode="border", align_corners=False)
            return sampled - template

        def patch_ssd(e: torch.Tensor) -> torch.Tensor:  # of the mean-normalised patches
            return _per_patch((e - _spread(_per_patch(e))).square())

        # N×2×ny×nx: the coarser level's flow averaged over each patch, where its search starts
        start = F.avg_pool2d(F.pad(flow, pad, mode="replicate"), PATCH, stride=STRIDE)
        u = start
        for k in range(self.iterations):
            e = error(u)
            if k == 0:
                e_start = e
            b = _per_patch(g * e)
            u = u - torch.addcmul(inverse_diagonal * b, inverse_off, b.flip(1))  # inverse compositional
        e = error(u)
        better = patch_ssd(e) <= patch_ssd(e_start)  # a search that made a patch worse is undone
        u = torch.where(better, u, start)
        by_patch = (n, 1, ny, PATCH, nx, PATCH)  # e's blocks, so each patch's choice broadcasts over them
        chosen = better[:, :, :, None, :, None]
        e = torch.where(chosen, e.view(by_patch), e_start.view(by_patch)).view(e.shape)
        weight = 1 / e.abs().clamp_min(1)  # how well each patch explains each of its pixels
        sums = F.fold(_from_blocks(torch.cat((weight, weight * _spread(u)), dim=1), ny, nx),
                      (h + pad[3], w + pad[1]), PATCH, stride=STRIDE)  # fmt: skip
        return (sums[:, 1:] / sums[:, :1])[..., :h, :w]

    def _refine(self, cur: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """One Gauss–Newton step of the combined local–global energy: per pixel the step s solves
        (J + (DAMPING + a)·I)·s = a·(mean of the neighbours' flow + step − flow) − j, with J, j the
        products (Ix², IxIy, Iy², IxIt, IyIt) normalised by |∇I|² + ζ² and summed over a Gaussian window
        (the gradient is that of the mean of the warped previous and the current image), solved by
        Jacobi iterations."""
        a = SMOOTHNESS
        warped = warp(prev, flow)
        (cx, cy), (wx, wy) = gradients(cur), gradients(warped)
        ix, iy, it = (cx + wx) * 0.5, (cy + wy) * 0.5, warped - cur
        products = torch.cat((ix * ix, ix * iy, iy * iy, ix * it, iy * it), dim=1)
        m = blur(products / (products[:, 0:1] + products[:, 2:3] + ZETA**2), WINDOW_SIGMA)
        # (J22, J11) + ...: the inverse's diagonal (slices: an index list would be copied from the host)
        diagonal = torch.cat((m[:, 2:3], m[:, 0:1]), dim=1) + (DAMPING + a)
        det = diagonal[:, 0:1] * diagonal[:, 1:2] - m[:, 1:2].square()
        p, q = diagonal / det, -m[:, 1:2] / det  # the inverse: [[p0, q], [q, p1]]
        # neighbours' mean over those that exist (the border replicates itself)
        c = a * (F.avg_pool2d(flow, 3, 1, 1, count_include_pad=False) - flow) - m[:, 3:5]
        step = torch.zeros_like(flow)
        for _ in range(REFINE_ITERATIONS):
            r = torch.add(c, F.avg_pool2d(step, 3, 1, 1, count_include_pad=False), alpha=a)
            step = torch.addcmul(p * r, q, r.flip(1))
        return flow + step.clamp(-MAX_STEP, MAX_STEP)
