"""Segments encoded apart, joined into one output without re-encoding, with the input's audio once.

Each segment file starts at time 0 (:class:`stream.jobs.worker.SegmentStage`); its packets are copied
in order with the segment's start added to pts and dts, in the source's time base, which the MP4
segment kept exactly. Every segment starts with a keyframe and references nothing outside itself,
and all were encoded with the same codec settings, so their codec headers are the same and the
joined stream decodes as one. The output is written by :class:`stream.video_sink.VideoFileSink` in
copy mode: audio copied (or re-encoded) as for any file, temporary file renamed when complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from engines.errors import StylizeError
from stream.jobs.plan import Segment, VideoPlan


def join_segments(plan: VideoPlan, parts: Sequence[tuple[Segment, Path]], output: Path) -> int:
    """Write ``output`` (a file like ``plan.output``) from the segment files ``parts``, in order;
    returns the frames written."""
    from stream.video_sink import VideoFileSink

    inputs = [av.open(str(path)) for _, path in parts]
    try:
        template = inputs[0].streams.video[0]
        header = template.codec_context.extradata
        for (segment, path), container in zip(parts, inputs, strict=True):
            if container.streams.video[0].codec_context.extradata != header:
                raise StylizeError(f"segment {segment.index} of {plan.output.name} ({path.name}) was encoded "
                                   "with other settings and cannot be joined")  # fmt: skip
        sink = VideoFileSink(
            output, width=template.codec_context.width, height=template.codec_context.height,
            fps=plan.fps, time_base=plan.time_base, audio_from=plan.input if plan.audio else None,
            whole_audio=plan.whole_audio, overwrite=True, keep_partial=False, video_template=template,
        )  # fmt: skip
        with sink:
            last_dts = None
            for (segment, _), container in zip(parts, inputs, strict=True):
                stream = container.streams.video[0]
                scale = Fraction(stream.time_base) / plan.time_base
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    pts = _ticks(packet.pts * scale) + segment.start_pts
                    dts = _ticks(packet.dts * scale) + segment.start_pts if packet.dts is not None else pts
                    if last_dts is not None and dts <= last_dts:
                        raise StylizeError(f"segment {segment.index} of {plan.output.name} overlaps the one "
                                           "before it and cannot be joined")  # fmt: skip
                    last_dts = dts
                    packet.pts, packet.dts = pts, dts
                    sink.write_packet(packet)
        return sink.frames_written
    finally:
        for container in inputs:
            container.close()


def _ticks(value: Fraction) -> int:
    """A time in the source's ticks; exact for segments (their MP4 track kept that time base)."""
    return round(value)
