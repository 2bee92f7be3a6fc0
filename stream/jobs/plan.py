"""What a job will do, decided before any model loads: which files, what each output is, which segments.

Inputs are files, folders (their videos, not recursive, in natural order) and glob patterns (for
shells that do not expand them, or a cluster's job script). A name that is neither an existing path
nor a pattern is kept, so it fails alone as "not found" while the other files are converted.

A long video is split into segments at its own keyframes: a worker seeks straight to a keyframe and
decodes exactly the frames a reader from the start would, so the segments together hold the same
frames with the same timestamps. Each segment is encoded apart (its encoder starts with a keyframe
and references nothing outside it) into an MP4, whose track keeps the source's time base exactly, so
the join (:mod:`stream.jobs.join`) gets every timestamp back without rounding. Containers that store
no codec header apart from the packets, or no presentation times (AVI), are not split.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from engines.errors import StylizeError
from stream.images import files_in, natural_key

log = logging.getLogger(__name__)

#: What a folder's videos are recognised by (a file named explicitly is tried whatever its name).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .m2ts .mts .flv .wmv .3gp .ogv".split()
)
#: Output containers an input's own suffix is kept for; any other input gets an .mp4 output.
OUTPUT_SUFFIXES = frozenset(".mp4 .m4v .mov .mkv .webm .avi".split())
#: Outputs whose videos may be split into segments and joined again (codec header kept apart, pts stored).
SPLIT_SUFFIXES = frozenset(".mp4 .m4v .mov .mkv .webm".split())
#: The container segments are written in: an MP4 track keeps any time base exactly.
SEGMENT_SUFFIX = ".mp4"


def expand_inputs(specs: Sequence[str]) -> list[Path]:
    """Files, folders and glob patterns → the input files, each once, in the order given."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += files_in(path, VIDEO_SUFFIXES, "videos")
        elif path.exists() or not glob.has_magic(spec):
            found.append(path)
        else:
            matches = [Path(m) for m in glob.glob(spec) if Path(m).is_file()]
            if not matches:
                raise StylizeError(f"no files match {spec}")
            found += sorted(matches, key=natural_key)
    seen: set[Path] = set()
    unique = []
    for path in found:  # a file named twice (or by a folder and a pattern) is converted once
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def output_for(source: Path, folder: Path) -> Path:
    """``folder/<stem>_stylized<suffix>``, as ``stylize image`` names its outputs (.mp4 for odd suffixes)."""
    suffix = source.suffix.lower() if source.suffix.lower() in OUTPUT_SUFFIXES else ".mp4"
    return folder / f"{source.stem}_stylized{suffix}"


@dataclass(frozen=True)
class VideoPlan:
    """One input → one output: what the sink is opened with, and how many frames to expect."""

    input: Path
    output: Path
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    codec: str
    crf: int | None
    #: frames expected (the container's count or duration, capped by ``limit``); None: unknown
    frames: int | None
    #: convert only the first ``limit`` frames (``--frames``/``--duration``)
    limit: int | None
    #: copy the input's audio (it has some, and it is not dropped)
    audio: bool
    stream_index: int
    #: what the user should hear about this file (sizes rounded, and so on)
    notes: tuple[str, ...] = ()

    @property
    def whole_audio(self) -> bool:
        return self.limit is None


def plan_video(
    source: Path,
    output: Path,
    *,
    codec: str | None = None,
    crf: int | None = None,
    size: int | None = None,
    max_side: int | None = None,
    duration: float | None = None,
    frames: int | None = None,
    audio: bool = True,
) -> VideoPlan:
    """Probe ``source`` (one frame decoded) and decide the output; StylizeError for a file that cannot be
    converted. The same decisions ``stylize convert in out`` makes for one file."""
    from engines.stylizer import target_size
    from stream.video_sink import choose_codec, even_size_needed
    from stream.video_source import VideoFileSource

    codec = choose_codec(output, codec)
    notes = []
    with VideoFileSource(source) as probe:
        if probe.still_image:
            raise StylizeError(f"{source.name} is a still image; stylize pictures with `stylize image`")
        h, w = target_size(probe.height, probe.width, size, max_side)
        if probe.rotation:
            log.info("%s: display rotation %d° applied", source, probe.rotation)
    if even_size_needed(codec, w, h):
        if (h, w) == (probe.height, probe.width):
            notes.append(f"{source} is {w}×{h}; {codec} needs even sides, so the output is "
                         f"{w - w % 2}×{h - h % 2} (--codec libvpx-vp9 keeps it)")  # fmt: skip
        h, w = max(2, h - h % 2), max(2, w - w % 2)
    limit = max(1, round(duration * probe.fps)) if duration is not None else None
    if frames is not None:
        limit = min(limit or frames, frames)
    total = probe.frame_count
    total = min(total, limit) if total and limit else (limit or total)
    return VideoPlan(
        input=source, output=output, width=w, height=h, fps=probe.fps, time_base=probe.time_base,
        codec=codec, crf=crf, frames=total, limit=limit, audio=audio and probe.has_audio,
        stream_index=probe.stream_index, notes=tuple(notes),
    )  # fmt: skip


# --- segments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """Frames ``[start_pts, end_pts)`` of a video (end None: to its end), converted as one task.

    ``decode_from_pts`` is earlier than ``start_pts`` by the warm-up frames a stateful stage needs: they
    go through the stage and their outputs are dropped, so its state is settled at the first kept frame.
    """

    index: int
    start_pts: int
    end_pts: int | None
    frames: int
    decode_from_pts: int

    @property
    def key(self) -> str:
        """Identity in the manifest: a finished segment is reused only for the same frames."""
        return f"{self.start_pts}-{'end' if self.end_pts is None else self.end_pts}"


@dataclass(frozen=True)
class FrameIndex:
    """The presentation times of a video's frames (sorted) and which of them are keyframes."""

    pts: list[int]
    keyframes: frozenset[int] = field(default_factory=frozenset)


def scan_frames(path: Path, stream_index: int) -> FrameIndex | None:
    """Every frame's pts and the keyframes', read from the packets without decoding (fast).

    None when the file cannot be split: a packet without a timestamp, or the same timestamp twice.
    """
    pts, keys = [], set()
    with av.open(str(path)) as container:
        stream = container.streams[stream_index]
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.add(packet.pts)
    pts.sort()
    if len(set(pts)) != len(pts):
        return None
    return FrameIndex(pts, frozenset(keys))


def split_segments(
    index: FrameIndex, fps: Fraction, seconds: float, warmup: int = 0, limit: int | None = None
) -> list[Segment]:
    """Segments of at least ``seconds`` each (the last one at least half that), each starting at the
    first keyframe after that length: one segment when no keyframe falls where a split may be."""
    all_pts = index.pts
    n = min(len(all_pts), limit) if limit else len(all_pts)
    per = max(1, round(seconds * fps)) if seconds > 0 else n
    starts = [0]
    for i in range(per, n):
        if all_pts[i] in index.keyframes and i - starts[-1] >= per and n - i >= max(1, per // 2):
            starts.append(i)
    ends = [*starts[1:], n]
    return [
        Segment(
            index=k,
            start_pts=all_pts[a],
            end_pts=all_pts[b] if b < len(all_pts) else None,
            frames=b - a,
            decode_from_pts=all_pts[max(0, a - warmup)],
        )
        for k, (a, b) in enumerate(zip(starts, ends, strict=True))
    ]


def can_split(plan: VideoPlan) -> bool:
    """Whether ``plan``'s output may be joined from segments (see the module notes)."""
    from stream.video_sink import choose_codec

    if plan.output.suffix.lower() not in SPLIT_SUFFIXES:
        return False
    try:
        choose_codec(Path(f"segment{SEGMENT_SUFFIX}"), plan.codec)
    except StylizeError:
        return False
    return True
