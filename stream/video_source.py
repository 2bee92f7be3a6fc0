"""Frames from a video file, decoded by PyAV (FFmpeg) on its own threads.

Policy for damaged files:

- a missing file, a file FFmpeg cannot open (not media, or an MP4 cut before its index), a file
  without a video stream, or one whose first frame cannot be decoded raises :class:`StylizeError`
  when the source is opened, before any output is created;
- a packet the decoder rejects (the half-written last packet of a file cut short, a damaged packet
  midway) is skipped, as the ffmpeg command line does, and counted in ``damaged_packets``; a file cut
  short therefore ends cleanly after its last decodable frame, and ``ended_early`` tells the caller
  that fewer frames came out than the container announced, so it can warn;
- any other error midway (reading the file fails) raises :class:`StylizeError` naming the frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from engines.errors import StylizeError
from stream.frames import Frame


class VideoFileSource:
    """Iterates a video file's frames as BGR :class:`Frame` objects with the file's own timestamps."""

    def __init__(self, path: str | Path, threads: bool = True, max_frames: int | None = None) -> None:
        """``max_frames`` ends the iteration after that many frames (convert the first N frames)."""
        self.path = Path(path)
        self.max_frames = max_frames
        if not self.path.exists():
            raise StylizeError(f"video file not found: {self.path}")
        if self.path.is_dir():
            raise StylizeError(f"expected a video file, got a folder: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise StylizeError(
                f"cannot open {self.path.name}: not a video file, or it is damaged or incomplete ({_why(e)})"
            ) from None
        self.damaged_packets = 0
        try:
            self._init_stream(threads)
            self._first = self._decode_first()
        except BaseException:
            self._container.close()
            raise
        self.frames_decoded = 0
        self._iterated = False

    def _init_stream(self, threads: bool) -> None:
        if not self._container.streams.video:
            raise StylizeError(f"{self.path.name} has no video stream")
        self._stream = stream = self._container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"  # frame + slice threads: several frames decode in parallel
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps:
            raise StylizeError(f"cannot tell the frame rate of {self.path.name}")
        self.fps: Fraction = Fraction(fps)
        self.width: int = stream.codec_context.width
        self.height: int = stream.codec_context.height
        self.time_base: Fraction = stream.time_base or 1 / self.fps
        self.has_audio: bool = bool(self._container.streams.audio)

        if stream.duration is not None and stream.time_base is not None:
            self.duration: float | None = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            self.duration = self._container.duration / av.time_base
        else:
            self.duration = None
        if stream.frames:
            self.frame_count: int | None = stream.frames
        elif self.duration is not None:
            self.frame_count = round(self.duration * self.fps)
        else:
            self.frame_count = None
        self._announced_frames = stream.frames or None

    def _decode_first(self) -> av.VideoFrame:
        """Decode one frame now, so a file with no usable picture fails before any output exists."""
        self._frames = self._decode()
        first = next(self._frames, None)
        if first is None:
            raise StylizeError(f"{self.path.name}: the first video frame cannot be decoded (file damaged?)")
        return first

    def _decode(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            try:
                yield from packet.decode()
            except av.InvalidDataError:
                self.damaged_packets += 1

    @property
    def ended_early(self) -> bool:
        """True once iteration has ended with fewer frames than the container announced (truncated file)."""
        expected = self._announced_frames
        if expected is not None and self.max_frames is not None:
            expected = min(expected, self.max_frames)
        return expected is not None and self.frames_decoded < expected

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("a VideoFileSource can be iterated only once; open the file again")
        self._iterated = True
        return self._generate()

    def _generate(self) -> Iterator[Frame]:
        av_frame: av.VideoFrame | None = self._first
        self._first = None
        while av_frame is not None and (self.max_frames is None or self.frames_decoded < self.max_frames):
            yield Frame(
                image=av_frame.to_ndarray(format="bgr24"),
                index=self.frames_decoded,
                pts=av_frame.pts,
                time_base=av_frame.time_base or self.time_base,
            )
            self.frames_decoded += 1
            try:
                av_frame = next(self._frames, None)
            except av.FFmpegError as e:  # not a damaged packet: reading the file itself failed
                raise StylizeError(
                    f"{self.path.name}: decoding failed after frame {self.frames_decoded} ({_why(e)})"
                ) from None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoFileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _why(error: Exception) -> str:
    """FFmpeg's own reason, without the errno number and file name PyAV appends."""
    return getattr(error, "strerror", None) or str(error)
