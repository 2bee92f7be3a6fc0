"""Results files: one JSON per machine, merged cell by cell, charted together, printed as a table.

A file is ``<machine>.json`` (the GPU name, or the CPU model and core count, as a slug: no hostname).
Re-running replaces the rows of the cells measured again and keeps the others, so a partial run (a
few sizes, one backend) adds to a machine's file instead of discarding it. :func:`plot_results`
draws every file of a folder in one chart so devices compare side by side.

``COMMITTED_DIR`` holds the results committed with the project; ``stylize bench`` never writes there
unless told to (``--out``), so an installed package is never modified.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from engines.atomic import write_atomic
from engines.errors import StylizeError
from engines.optional import require

#: Bumped when a field changes meaning, so old files can be told apart.
SCHEMA = 1
COMMITTED_DIR = Path(__file__).resolve().parent / "results"
PLOT_NAME = "fps.png"


def now() -> str:
    """The timestamp format of results files: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def row_key(row: dict) -> tuple:
    """Rows with the same key measure the same thing; a new run replaces them. Temporal rows differ by
    where the flow ran too (rows from before ``temporal_flow`` existed ran it on the host)."""
    flow = row.get("temporal_flow", "host") if row["kind"] == "temporal" else None
    return row["kind"], row["model"], row["backend"], row["width"], row["height"], flow


def merge_results(old: dict | None, new: dict) -> dict:
    """``new`` with the rows of ``old`` whose cells it did not measure (same machine id only)."""
    if not old or old.get("machine", {}).get("id") != new["machine"]["id"]:
        return new
    measured = {row_key(r) for r in new["results"]}
    kept = [r for r in old.get("results", []) if row_key(r) not in measured]
    rows = sorted(kept + new["results"], key=lambda r: (r["kind"], r["model"], r["backend"], r["megapixels"]))
    return {**new, "results": rows}


def write_results(path: Path, doc: dict) -> dict:
    """Merge ``doc`` into ``path`` and write it atomically (a killed run leaves the previous file whole);
    returns what was written."""
    old = None
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None  # an unreadable file is replaced, not merged
    doc = merge_results(old, doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(doc, indent=1, default=str) + "\n").encode())
    return doc


def _read_lines(results_dir: Path) -> dict[tuple, list[tuple[float, float]]]:
    """(machine, backend, model, kind) → [(megapixels, fps), ...] of the ok rows of every results file."""
    lines: dict[tuple, list] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            machine = doc["machine"]["gpu"] or doc["machine"]["id"]
            for r in doc["results"]:
                if r.get("status") == "ok" and r["kind"] in ("model", "e2e"):  # not the temporal rows
                    lines.setdefault((machine, r["backend"], r["model"], r["kind"]), []).append(
                        (r["megapixels"], r["fps"])
                    )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a results file
    return lines


def plot_results(results_dir: Path, png: Path) -> int:
    """FPS vs megapixels (both log) of every results file: one line per device × backend × model, model
    timings solid, end-to-end dashed. Returns the number of lines drawn."""
    require("matplotlib", "--plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    lines = _read_lines(results_dir)
    if not lines:
        raise StylizeError(f"no results to plot in {results_dir}")
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors: dict[tuple, str] = {}
    palette = itertools.cycle(f"C{i}" for i in range(10))
    for (machine, backend, model, kind), points in sorted(lines.items()):
        color = colors.setdefault((machine, backend, model), next(palette))
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            "-o" if kind == "model" else "--x",
            color=color,
            markersize=4,
            label=f"{machine} · {backend} · {model}" + (" (end-to-end)" if kind == "e2e" else ""),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers; minor ticks labelled at 2 and 5 only
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel("megapixels per frame")
    ax.set_ylabel("frames per second (median; end-to-end: frames / wall time)")
    ax.set_title("AdaIN stylization throughput")
    ax.grid(True, which="both", alpha=0.3)
    for fps in (30, 60):
        ax.axhline(fps, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"{fps} fps",
            (1, fps),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    return len(lines)


_COLUMNS = (
    ("kind", 5),
    ("model", 12),
    ("backend", 17),
    ("size", 10),
    ("FPS", 9),
    ("p50 ms", 8),
    ("p95 ms", 8),
    ("% peak", 7),
)


def summary(rows: Sequence[dict]) -> str:
    """A plain-text table of the rows (also what the CLI prints)."""

    def line(values: Sequence) -> str:
        return " ".join(
            f"{v:<{w}}" if i < 3 else f"{v:>{w}}"
            for i, (v, (_, w)) in enumerate(zip(values, _COLUMNS, strict=False))
        )

    out = [line([name for name, _ in _COLUMNS])]
    for r in rows:
        if r["kind"] == "temporal":
            continue  # printed by benchmarks.temporal.summary
        values = [r["kind"], r["model"], r["backend"], f"{r['width']}x{r['height']}"]
        if r["status"] != "ok":
            out.append(line(values) + f"  {r['status']}: {r.get('note', '')}")
            continue
        frac = r.get("peak_fraction")
        values += [f"{r['fps']:.2f}", *(f"{r[k]:.2f}" if k in r else "-" for k in ("p50_ms", "p95_ms"))]
        out.append(line([*values, f"{100 * frac:.3f}" if frac is not None else "-"]))
    return "\n".join(out)
