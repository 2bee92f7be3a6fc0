"""Frames from a video file, decoded by PyAV (FFmpeg) on its own threads.

Policy for damaged files:

- a missing file, a file FFmpeg cannot open (not media, or an MP4 cut before its index), a file
  without a video stream (a cover picture in a music file does not count), one without frames, or
  one whose first frame cannot be decoded raises :class:`StylizeError` when the source is opened,
  before any output is created;
- a packet the decoder rejects (the half-written last packet of a file cut short, a damaged packet
  midway) is skipped, as the ffmpeg command line does, and counted in ``damaged_packets``; a file cut
  short therefore ends cleanly after its last decodable frame, and ``ended_early`` tells the caller
  that fewer frames came out than the container announced (frame count, or duration), so it can warn;
- any other error midway (reading the file fails) raises :class:`StylizeError` naming the frame.

A display matrix (a phone video filmed upright is stored sideways with a 90° rotation) is applied:
frames come out as players show them, and ``width``/``height`` are the upright size.

A range of the file (``start_pts``/``end_pts``: one segment of a long video converted on its own
worker) is read by seeking to the keyframe at or before its start and dropping the frames decoded
before it. Where the demuxer's seek lands after the start (files without an index), the file is
decoded from its beginning instead: slower, never a missing frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engines.errors import StylizeError
from stream.frames import Frame


class VideoFileSource:
    """Iterates a video file's frames as BGR :class:`Frame` objects with the file's own timestamps."""

    def __init__(
        self,
        path: str | Path,
        threads: bool = True,
        max_frames: int | None = None,
        start_pts: int | None = None,
        end_pts: int | None = None,
    ) -> None:
        """``max_frames`` ends the iteration after that many frames (convert the first N frames).

        ``start_pts``/``end_pts`` (the video stream's time base) yield only the frames whose pts is in
        [start_pts, end_pts); ``ended_early`` is then not judged (the caller knows what the range holds).
        """
        self.path = Path(path)
        self.max_frames = max_frames
        self.start_pts, self.end_pts = start_pts, end_pts
        self._seek_checked = start_pts is None
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
        self._packets = 0
        try:
            self._init_stream(threads)
            self._first = self._decode_first()
            self._init_orientation(self._first)
        except BaseException:
            self._container.close()
            raise
        self.frames_decoded = 0
        self._last_time: float | None = None
        self._iterated = False

    def _init_stream(self, threads: bool) -> None:
        # A music file's cover art is a one-picture "video" stream; it is not a video to convert.
        videos = [s for s in self._container.streams.video if not s.disposition & _ATTACHED_PIC]
        if not videos:
            cover = " (only a cover picture)" if self._container.streams.video else ""
            raise StylizeError(f"{self.path.name} has no video stream{cover}")
        self._stream = stream = videos[0]
        self.stream_index: int = stream.index
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
        # read now: the stream is gone once the container is closed
        self._start_time = (
            float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        )
        # Matroska announces no frame count, but a DURATION tag that survives the file being cut short.
        self._announced_duration = (
            _tag_seconds(stream.metadata.get("DURATION")) if not stream.frames else None
        )
        if self.frame_count is None and self._announced_duration:
            self.frame_count = round(self._announced_duration * self.fps)
        #: a still picture (JPEG, PNG…) opened as a one-frame video
        self.still_image: bool = (
            self._container.format.name == "image2" or self._container.format.name.endswith("_pipe")
        )

    def _init_orientation(self, frame: av.VideoFrame) -> None:
        """Read the display matrix of the first frame; ``width``/``height`` become the upright size."""
        self.rotation, self._orient = _orientation(frame)
        if self._orient is not None:
            self.height, self.width = self._orient(np.empty((self.height, self.width, 3), np.uint8)).shape[:2]

    def _decode_first(self) -> av.VideoFrame:
        """Decode one frame now, so a file with no usable picture fails before any output exists."""
        if self.start_pts is not None:
            self._container.seek(self.start_pts, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decode()
        try:
            first = next(self._frames, None)
            if first is None and not self._seek_checked:
                raise _SeekMissed  # the seek went to the end of the file
        except _SeekMissed:  # the seek went past the start: decode from the beginning instead
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
            self._seek_checked = True
            self._frames = self._decode()
            first = next(self._frames, None)
        if first is None and not self._packets:
            raise StylizeError(f"{self.path.name} has no video frames")
        if first is None:
            raise StylizeError(f"{self.path.name}: the first video frame cannot be decoded (file damaged?)")
        return first

    def _decode(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            self._packets += bool(packet.size)
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                self.damaged_packets += 1
                continue
            for frame in frames:
                if frame.pts is not None and not self._in_range(frame.pts):
                    if self.end_pts is not None and frame.pts >= self.end_pts:
                        return  # frames leave the decoder in presentation order: the range is done
                    continue
                yield frame

    def _in_range(self, pts: int) -> bool:
        if not self._seek_checked:
            self._seek_checked = True
            if pts > self.start_pts:
                raise _SeekMissed
        after_start = self.start_pts is None or pts >= self.start_pts
        return after_start and (self.end_pts is None or pts < self.end_pts)

    @property
    def ended_early(self) -> bool:
        """True once iteration has ended with fewer frames than the container announced (truncated file).

        Announced: a frame count (MP4, MOV, AVI), else a duration (Matroska's DURATION tag), judged with
        one frame of slack (two for a duration, which is rounded).
        """
        if self.max_frames is not None and self.frames_decoded >= self.max_frames:
            return False
        if self.start_pts is not None or self.end_pts is not None:
            return False
        if self._announced_frames is not None:  # AVI counts a dropped frame's empty slot: one of slack
            return self.frames_decoded < self._announced_frames - 1
        if self._announced_duration and self._last_time is not None:
            decoded = self._last_time - self._start_time + float(1 / self.fps)
            return decoded < self._announced_duration - 2 * float(1 / self.fps)
        return False

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("a VideoFileSource can be iterated only once; open the file again")
        self._iterated = True
        return self._generate()

    def _generate(self) -> Iterator[Frame]:
        av_frame: av.VideoFrame | None = self._first
        self._first = None
        while av_frame is not None and (self.max_frames is None or self.frames_decoded < self.max_frames):
            image = av_frame.to_ndarray(format="bgr24")
            if self._orient is not None:
                image = np.ascontiguousarray(self._orient(image))
            self._last_time = av_frame.time if av_frame.time is not None else self._last_time
            yield Frame(
                image=image,
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


_ATTACHED_PIC = av.stream.Disposition.attached_pic


class _SeekMissed(Exception):
    """The first frame after a seek comes after the range's start: frames would be missing."""


def _orientation(frame: av.VideoFrame):
    """(rotation in degrees counter-clockwise, function that turns an H×W×3 array upright or None).

    The display matrix maps a stored pixel (x, y) to (a·x + c·y, b·x + d·y) on screen (FFmpeg's
    convention; y points down). Quarter turns and mirrorings are applied; another angle is left as
    stored (no camera writes one).
    """
    matrix = next((bytes(d) for d in frame.side_data if d.type.name == "DISPLAYMATRIX"), None)
    if matrix is None or len(matrix) != 36:
        return 0, None
    a, b, _, c, d, _, _, _, _ = (v / 65536 for v in np.frombuffer(matrix, "<i4"))
    if not all(round(v) == v for v in (a, b, c, d)) or abs(a * d - b * c) != 1:
        return 0, None
    if (a, b, c, d) == (1, 0, 0, 1):
        return 0, None
    transpose = a == 0

    def orient(image: np.ndarray) -> np.ndarray:
        if transpose:  # x' = c·y, y' = b·x
            image = image.transpose(1, 0, 2)
            return image[:: int(b), :: int(c)]
        return image[:: int(d), :: int(a)]  # x' = a·x, y' = d·y

    return round(frame.rotation or 0) % 360, orient


def _tag_seconds(value: str | None) -> float | None:
    """``HH:MM:SS.fraction`` (Matroska's DURATION tag) in seconds; None if absent or malformed."""
    try:
        h, m, sec = (value or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _why(error: Exception) -> str:
    """FFmpeg's own reason, without the errno number and file name PyAV appends."""
    return getattr(error, "strerror", None) or str(error)
