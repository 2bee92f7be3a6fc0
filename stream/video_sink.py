"""Encode BGR frames to a video file, keeping the source's timing and (copied, not re-encoded) audio.

Safety policy: the output is written to a hidden temporary file next to the target
(``.name.<random>.partial.ext``) and renamed onto the target only when it has been finalized, so a
reader never sees a half-written file and an existing file is replaced only with ``overwrite=True``.

Interruption policy (Ctrl-C or an error inside ``with VideoFileSink(...)``): if at least one frame was
written, the frames so far are finalized into a playable file (encoder flushed, trailer written,
renamed) and ``partial`` is True; with no frames, nothing is left behind. The exception then
propagates, so the caller still reports it. If finalizing itself fails (or a second Ctrl-C lands in
it), the temporary file is deleted: a playable file or no file, never a corrupt one. A Ctrl-C that
lands inside ``write()`` is held until the frame's packets are muxed, so none is lost in between.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engines.errors import StylizeError
from stream.frames import Frame

_CRF_OPTION = {"libx264": "crf", "libx265": "crf", "h264_nvenc": "cq", "hevc_nvenc": "cq", "av1_nvenc": "cq"}


class VideoFileSink:
    """Writes frames to ``path``; use as a context manager, or call ``close()`` / ``abort()`` yourself.

    ``time_base`` should be the source's (``VideoFileSource.time_base``) so frame pts pass through
    unchanged; it defaults to 1/fps. Frames without pts (webcams) are timed by their index at ``fps``.
    ``crf`` sets constant quality (``cq`` for NVENC), ``bitrate`` (bits/s) a target rate instead.
    ``audio_from``: a media file whose first audio stream is copied packet by packet (no re-encode),
    limited to the time span of the frames written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction | float | int,
        time_base: Fraction | None = None,
        codec: str = "libx264",
        crf: int | None = None,
        bitrate: int | None = None,
        audio_from: str | Path | None = None,
        overwrite: bool = False,
        pix_fmt: str = "yuv420p",
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self.frames_written = 0
        self.finalized = False  # a playable file is at ``path``
        self.aborted = False  # discarded: ``path`` was left as it was
        self.partial = False  # finalized early because of an exception or Ctrl-C
        self._container: av.container.OutputContainer | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_out: av.audio.AudioStream | None = None
        self._pending_audio: av.Packet | None = None
        self._start_time: float | None = None
        self._end_time = 0.0
        self._last_pts: int | None = None

        check_target(self.path, overwrite, audio_from)
        _check_encoder_exists(codec)
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial{self.path.suffix}")
        try:
            self._open_output(codec, crf, bitrate, pix_fmt)
            if audio_from is not None:
                self._open_audio(Path(audio_from))
            self._open_encoder(codec, pix_fmt)
        except BaseException:
            self._discard()
            self.aborted = True
            raise

    # --- setup ---------------------------------------------------------------------------------

    def _open_output(self, codec: str, crf: int | None, bitrate: int | None, pix_fmt: str) -> None:
        try:
            self._container = av.open(str(self._tmp), "w")
        except (av.FFmpegError, ValueError) as e:
            raise StylizeError(f"cannot write {self.path.suffix} video files: {e}") from None
        stream = self._container.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, pix_fmt
        stream.time_base = self.time_base  # muxer hint: keep the source's tick so pts need no rounding
        stream.codec_context.time_base = self.time_base
        if crf is not None:
            stream.codec_context.options[_CRF_OPTION.get(codec, "crf")] = str(crf)
        if bitrate is not None:
            stream.codec_context.bit_rate = int(bitrate)
        self._video = stream

    def _open_audio(self, source: Path) -> None:
        try:
            self._audio_in = av.open(str(source))
        except (av.FFmpegError, ValueError) as e:
            raise StylizeError(f"cannot read the audio of {source.name} ({e})") from None
        if not self._audio_in.streams.audio:  # a silent source: the output is silent too
            self._audio_in.close()
            self._audio_in = None
            return
        template = self._audio_in.streams.audio[0]
        assert self._container is not None
        if hasattr(self._container, "add_stream_from_template"):  # PyAV >= 13
            self._audio_out = self._container.add_stream_from_template(template)
        else:
            self._audio_out = self._container.add_stream(template=template)
        self._audio_packets = self._demux_audio(template)
        self._pending_audio = next(self._audio_packets, None)

    def _open_encoder(self, codec: str, pix_fmt: str) -> None:
        """Open the encoder now: an unusable codec/size fails here, before any frame is computed."""
        try:
            self._video.codec_context.open()
        except av.FFmpegError as e:
            hint = " (needs an NVIDIA GPU with a recent driver)" if "nvenc" in codec else ""
            if pix_fmt.startswith(("yuv420", "nv12")) and (self.width % 2 or self.height % 2):
                hint += f" ({pix_fmt} needs an even width and height)"
            raise StylizeError(
                f"cannot start the {codec} encoder for {self.width}×{self.height} {pix_fmt}{hint}: {e}"
            ) from None

    def _demux_audio(self, stream: av.audio.AudioStream) -> Iterator[av.Packet]:
        assert self._audio_in is not None
        for packet in self._audio_in.demux(stream):
            if packet.size and packet.pts is not None:  # skip the demuxer's empty end-of-file packet
                yield packet

    # --- writing -------------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        if self.finalized or self.aborted or self._container is None:
            raise RuntimeError("write() on a closed VideoFileSink")
        image = frame.image
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise StylizeError(
                f"frame {frame.index} is {image.shape[1]}×{image.shape[0]} {image.dtype}, but the output "
                f"was opened for {self.width}×{self.height} uint8 BGR"
            )
        pts = self._pts_for(frame)
        time = float(pts * self.time_base)
        if self._start_time is None:
            self._start_time = time
        self._end_time = time + float(1 / self.fps)
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        av_frame.pts, av_frame.time_base = pts, self.time_base
        with _ctrl_c_deferred():  # a packet dropped between encode and mux would corrupt the stream
            try:
                self._mux_audio_until(time)
                for packet in self._video.encode(av_frame):
                    self._container.mux(packet)
            except av.FFmpegError as e:
                raise StylizeError(f"encoding frame {frame.index} to {self.path.name} failed: {e}") from None
            self.frames_written += 1

    def _pts_for(self, frame: Frame) -> int:
        """The frame's own pts in the output time base; index at ``fps`` when it has none (cameras)."""
        if frame.pts is not None:
            pts = round(frame.pts * (frame.time_base or self.time_base) / self.time_base)
        else:
            pts = round(frame.index / (self.fps * self.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject repeated/backward pts (rounding, camera hiccups)
        self._last_pts = pts
        return pts

    def _mux_audio_until(self, end: float) -> None:
        """Copy the audio packets that start before ``end`` seconds (and not before the first frame)."""
        assert self._container is not None
        while self._pending_audio is not None and _start(self._pending_audio) < end:
            packet = self._pending_audio
            if _start(packet) + _duration(packet) >= (self._start_time or 0.0):
                packet.stream = self._audio_out
                self._container.mux(packet)
            self._pending_audio = next(self._audio_packets, None)

    # --- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        """Finalize: flush the encoder, copy the remaining audio, write the trailer, rename onto ``path``.

        With no frames written there is nothing worth a file: the output is discarded and
        StylizeError raised, so the caller never believes an empty video was made.
        """
        if self.finalized or self.aborted:
            return
        if self.frames_written == 0:
            self.abort()
            raise StylizeError(f"no frames were written, so {self.path.name} was not created")
        assert self._container is not None
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            self._mux_audio_until(self._end_time)
            self._container.close()
            self._container = None
            self._close_audio()
            if self.path.exists() and not self.overwrite:  # appeared while we were encoding
                raise StylizeError(f"output file already exists: {self.path} (it appeared during encoding)")
            os.replace(self._tmp, self.path)
        except BaseException as e:
            self._discard()
            self.aborted = True
            if isinstance(e, (av.FFmpegError, OSError)):
                raise StylizeError(f"could not finish writing {self.path.name}: {e}") from None
            raise
        self.finalized = True

    def abort(self) -> None:
        """Stop and delete everything written so far; ``path`` is left as it was."""
        if self.finalized or self.aborted:
            return
        self._discard()
        self.aborted = True

    def _discard(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._close_audio()
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            with contextlib.suppress(Exception):
                self._audio_in.close()
            self._audio_in = None
        self._pending_audio = None

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self.frames_written:
            self.partial = True
            with contextlib.suppress(BaseException):  # the original exception is the one to report
                self.close()
            self.partial = self.finalized
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_tmp", None) is not None and not (self.finalized or self.aborted):
            self._discard()


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block and raise it at the end, when the file is consistent.

    Only where Python's default handler would raise KeyboardInterrupt here (the main thread); other
    threads never receive it, and an application's own SIGINT handler is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def check_target(path: Path, overwrite: bool, input_path: str | Path | None = None) -> None:
    """Refuse, before any work, every target that would clobber something or cannot be written.

    Public so callers can check the output before slow setup (loading a model).
    """
    path = Path(path)
    if not path.suffix:
        raise StylizeError(f"output file needs an extension such as .mp4: {path}")
    if path.is_dir():
        raise StylizeError(f"output path is a folder: {path}")
    if not path.parent.is_dir():
        raise StylizeError(f"output folder does not exist: {path.parent}")
    if input_path is not None and _same_file(path, Path(input_path)):
        raise StylizeError(f"output {path} is the input file; choose another output name")
    if path.exists() and not overwrite:
        raise StylizeError(f"output file already exists: {path} (allow overwriting to replace it)")


def _check_encoder_exists(codec: str) -> None:
    try:
        found = av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise StylizeError(f"video encoder {codec!r} is not available in this FFmpeg build") from None
    if found.type != "video":
        raise StylizeError(f"{codec!r} is not a video encoder")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _start(packet: av.Packet) -> float:
    return float(packet.pts * packet.time_base)


def _duration(packet: av.Packet) -> float:
    return float((packet.duration or 0) * packet.time_base)
