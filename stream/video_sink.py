"""Encode BGR frames to a video file, keeping the source's timing and audio.

Safety policy: the output is written to a hidden temporary file next to the target
(``.name.<random>.partial.ext``) and renamed onto the target only when it has been finalized, so a
reader never sees a half-written file and an existing file is replaced only with ``overwrite=True``.
Everything that can be checked before the first frame is checked when the sink opens: the folder is
writable, the container can hold the codec, the encoder starts at this size, the audio fits, the
header is written. A caller that opens the sink before loading a model therefore fails before any
slow work.

Interruption policy (Ctrl-C, SIGTERM/SIGHUP under the command line, an error inside
``with VideoFileSink(...)``, or :meth:`VideoFileSink.close_early`): if at least one frame was written,
the frames so far are finalized into a playable file (encoder flushed, trailer written, renamed) and
``partial`` is True; with no frames, nothing is left behind. The exception then propagates, so the
caller still reports it. A sink opened with ``keep_partial=False`` (a file of a batch job, which is
redone whole on the next run) leaves nothing instead. If finalizing itself fails (or a second Ctrl-C
lands in it), the temporary file is deleted: a playable file or no file, never a corrupt one. A
stopping signal that lands inside ``write()`` is held until the frame's packets are muxed, so none is
lost in between.

Audio policy: every audio stream of ``audio_from`` is copied packet by packet (the same bytes and
timestamps; a missing duration is filled in from the next packet, since muxers drop zero-length
packets), over the span of the frames written, or all of it with ``whole_audio``. A stream the
output container cannot hold (AAC in WebM, Opus in MOV: found by first muxing its opening packets
into memory) is re-encoded to the container's own audio codec and listed in ``audio_reencoded``.

Copy mode (``video_template``): the video arrives already encoded, as packets of that stream
(:meth:`VideoFileSink.write_packet`): segments of one video encoded apart and joined here. Audio,
checks and finishing are the same as for frames, so a joined file gets its audio exactly as a file
encoded in one piece.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import av.logging
import numpy as np

from engines.atomic import commit, temporary_path
from engines.errors import StylizeError
from stream import interrupt
from stream.frames import Frame

#: x264/x265 speed preset. "fast" instead of their "medium": on 640×360 cartoon content at CRF 18 it
#: encoded 1.5–2.8× faster (2-core EPYC) into a file of the same size, and the encoder shares the CPU
#: with the network in a CPU conversion.
_PRESETS = {"libx264": "fast", "libx265": "fast"}
#: encoders that log to stderr on their own, and the option that quiets them to errors (SVT-AV1 reads
#: the SVT_LOG environment variable instead: the CLI sets it)
_OWN_LOGGERS = {"libx265": ("x265-params", "log-level=error")}
_CRF_OPTION = {"libx264": "crf", "libx265": "crf", "h264_nvenc": "cq", "hevc_nvenc": "cq", "av1_nvenc": "cq"}
#: Encoders without a crf option, whose quality is a fixed quantizer (2 best … 31), in FFmpeg's lambda units.
_QSCALE_CODECS = frozenset({"mpeg4", "mpeg2video", "mpeg1video", "msmpeg4", "mjpeg"})
_QP2LAMBDA = 118
#: Containers that store no presentation times (only the decoding order): H.264 comes out mistimed
#: there, so they get their own codec (MPEG-4 Part 2 for AVI) unless one is asked for.
_NO_PTS_FORMATS = frozenset({"avi"})
#: Encoders named when a container cannot hold the one asked for (those this FFmpeg has, that fit).
_SUGGESTED_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1", "mpeg4")
#: Video codecs (FFmpeg's names) a container's own default may be for a stylized film.
_VIDEO_FORMATS = frozenset(
    "h264 hevc vp9 vp8 av1 mpeg4 mpeg2video mpeg1video h263 theora ffv1 prores dnxhd".split()
)
#: Named layouts for streams that give only a channel count (PCM in Matroska): MP4 needs a named one.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


class VideoFileSink:
    """Writes frames to ``path``; use as a context manager, or call ``close()`` / ``abort()`` yourself.

    ``time_base`` should be the source's (``VideoFileSource.time_base``) so frame pts pass through
    unchanged; it defaults to 1/fps. Frames without pts (webcams) are timed by their index at ``fps``.
    ``codec`` is the video encoder; None picks one the container holds (:func:`choose_codec`).
    ``crf`` sets constant quality (``cq`` for NVENC), ``bitrate`` (bits/s) a target rate instead.
    ``audio_from``: a media file whose audio streams are copied (see the module notes), over the
    frames' time span, or to their end with ``whole_audio`` (the caller converts the whole input).
    ``keep_partial=False`` discards the file when the stream stops early instead of keeping its frames.
    ``video_template``: a video stream whose packets are written as they are (see the module notes);
    ``codec``, ``crf``, ``bitrate`` and ``pix_fmt`` are then unused.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction | float | int,
        time_base: Fraction | None = None,
        codec: str | None = None,
        crf: int | None = None,
        bitrate: int | None = None,
        audio_from: str | Path | None = None,
        whole_audio: bool = False,
        overwrite: bool = False,
        pix_fmt: str = "yuv420p",
        keep_partial: bool = True,
        video_template: av.video.stream.VideoStream | None = None,
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.keep_partial = keep_partial
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self.whole_audio = whole_audio
        self.frames_written = 0
        self.finalized = False  # a playable file is at ``path``
        self.aborted = False  # discarded: ``path`` was left as it was
        self.partial = False  # finalized early because of an exception, Ctrl-C or close_early()
        #: (input codec, output codec) of each audio stream re-encoded because the container cannot hold it
        self.audio_reencoded: list[tuple[str, str]] = []
        self._container: av.container.OutputContainer | None = None
        self._audio: list[_CopiedAudio | _ReencodedAudio] = []
        self._end_time = 0.0
        self._last_pts: int | None = None

        check_target(self.path, overwrite, audio_from)
        self._copying = video_template is not None
        self.codec = video_template.codec_context.name if video_template else choose_codec(self.path, codec)
        self._tmp = temporary_path(self.path)
        try:
            self._open_output(crf, bitrate, pix_fmt, video_template)
            if not self._copying:
                self._open_encoder(pix_fmt)
            if audio_from is not None:
                self._open_audio(Path(audio_from))
            self._write_header()
        except BaseException:
            self._discard()
            self.aborted = True
            raise

    # --- setup ---------------------------------------------------------------------------------

    def _open_output(self, crf: int | None, bitrate: int | None, pix_fmt: str, template) -> None:
        try:
            self._container = av.open(str(self._tmp), "w")
        except (av.FFmpegError, ValueError) as e:
            raise StylizeError(f"cannot write {self.path.suffix} video files: {e}") from None
        if template is not None:
            try:
                self._video = _copy_stream(self._container, template)
            except ValueError as e:
                raise StylizeError(f"{self.path.suffix} files cannot hold {self.codec} video ({e})") from None
            self._video.time_base = self.time_base
            return
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, pix_fmt
        stream.time_base = self.time_base  # muxer hint: keep the source's tick so pts need no rounding
        stream.codec_context.time_base = self.time_base
        if crf is not None and self.codec in _QSCALE_CODECS:  # no constant-quality mode: a fixed quantizer
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = max(2, min(31, round(crf / 6))) * _QP2LAMBDA
        elif crf is not None:
            stream.codec_context.options[_CRF_OPTION.get(self.codec, "crf")] = str(crf)
        if bitrate is not None:
            stream.codec_context.bit_rate = int(bitrate)
        if self.codec in _PRESETS:
            stream.codec_context.options["preset"] = _PRESETS[self.codec]
        if self.codec in _OWN_LOGGERS and av.logging.get_level() is None:
            # these libraries print to stderr themselves, past FFmpeg's log level: quiet unless asked for
            key, value = _OWN_LOGGERS[self.codec]
            stream.codec_context.options[key] = value
        self._video = stream

    def _open_encoder(self, pix_fmt: str) -> None:
        """Open the encoder now: an unusable codec/size fails here, before any frame is computed."""
        try:
            self._video.codec_context.open()
        except av.FFmpegError as e:
            hint = " (needs an NVIDIA GPU with a recent driver)" if "nvenc" in self.codec else ""
            if pix_fmt.startswith(("yuv420", "nv12")) and (self.width % 2 or self.height % 2):
                hint += f" ({pix_fmt} needs an even width and height)"
            raise StylizeError(
                f"cannot start the {self.codec} encoder for {self.width}×{self.height} {pix_fmt}{hint}: {e}"
            ) from None

    def _open_audio(self, source: Path) -> None:
        try:
            with av.open(str(source)) as probe:
                indices = [s.index for s in probe.streams.audio if s.codec_context is not None]
        except (av.FFmpegError, ValueError) as e:
            raise StylizeError(f"cannot read the audio of {source.name} ({e})") from None
        assert self._container is not None
        for index in indices:  # none: a silent source gives a silent output
            try:
                if _copy_fits(source, index, self._container.format.name):
                    self._audio.append(_CopiedAudio(source, index, self._container))
                    continue
                track = _ReencodedAudio(source, index, self._container, self.path.suffix)
            except (av.FFmpegError, ValueError) as e:
                raise StylizeError(
                    f"cannot put the audio of {source.name} into {self.path.suffix} files ({e}); "
                    "leave it out with --no-audio"
                ) from None
            self._audio.append(track)
            self.audio_reencoded.append((track.from_codec, track.to_codec))

    def _write_header(self) -> None:
        """Create the temporary file and write the header: the muxer's own objections come now."""
        assert self._container is not None
        try:
            self._container.start_encoding()
        except OSError as e:  # PyAV's FFmpeg errors for files are OSErrors too
            raise StylizeError(
                f"cannot write {self.path.name} in {self.path.parent}: {e.strerror or e}"
            ) from None
        except (av.FFmpegError, ValueError) as e:
            raise StylizeError(f"cannot write {self.codec} video to {self.path.suffix} files: {e}") from None

    # --- writing -------------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        if self.finalized or self.aborted or self._container is None:
            raise RuntimeError("write() on a closed VideoFileSink")
        if self._copying:
            raise RuntimeError("write() on a VideoFileSink that copies packets; use write_packet()")
        image = frame.image
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise StylizeError(
                f"frame {frame.index} is {image.shape[1]}×{image.shape[0]} {image.dtype}, but the output "
                f"was opened for {self.width}×{self.height} uint8 BGR"
            )
        pts = self._pts_for(frame)
        time = float(pts * self.time_base)
        self._end_time = max(self._end_time, time + float(1 / self.fps))
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        av_frame.pts, av_frame.time_base = pts, self.time_base
        with interrupt.deferred():  # a packet dropped between encode and mux would corrupt the stream
            try:
                self._mux_audio_until(time)
                for packet in self._video.encode(av_frame):
                    self._container.mux(packet)
            except av.FFmpegError as e:
                raise StylizeError(f"encoding frame {frame.index} to {self.path.name} failed: {e}") from None
            self.frames_written += 1

    def write_packet(self, packet: av.Packet) -> None:
        """Mux one encoded packet of the ``video_template`` stream; pts and dts in ``time_base`` units.

        Packets come in decoding order (dts strictly increasing, as the muxer requires); the audio up
        to each packet's decoding time is copied before it.
        """
        if not self._copying or self.finalized or self.aborted or self._container is None:
            raise RuntimeError("write_packet() needs an open VideoFileSink made with a video_template")
        time = float(packet.pts * self.time_base)
        self._end_time = max(self._end_time, time + float(1 / self.fps))
        packet.time_base = self.time_base
        packet.stream = self._video
        with interrupt.deferred():
            try:
                self._mux_audio_until(float(packet.dts * self.time_base))
                self._container.mux(packet)
            except av.FFmpegError as e:
                raise StylizeError(
                    f"writing packet {self.frames_written} to {self.path.name} failed: {e}"
                ) from None
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

    def _mux_audio_until(self, end: float | None) -> None:
        """Copy (or re-encode) the audio that starts before ``end`` seconds; None: all that is left."""
        assert self._container is not None
        for track in self._audio:
            track.mux_until(self._container, end)

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
        self._finish(None if self.whole_audio else self._end_time)

    def close_early(self) -> None:
        """Finalize after the stream stopped before its end (Ctrl-C, a stop, an error upstream).

        The frames so far become a playable file, with the audio of their span only, and ``partial``
        is set; with no frames (or ``keep_partial=False``) nothing is left behind, and nothing is raised
        for that.
        """
        if self.finalized or self.aborted:
            return
        if self.frames_written == 0 or not self.keep_partial:
            self.abort()
            return
        self.partial = True
        try:
            self._finish(self._end_time)
        finally:
            self.partial = self.finalized

    def _finish(self, audio_end: float | None) -> None:
        assert self._container is not None
        try:
            for packet in [] if self._copying else self._video.encode(None):
                self._container.mux(packet)
            for track in self._audio:
                track.finish(self._container, audio_end)
            self._container.close()
            self._container = None
            self._close_audio()
            if self.path.exists() and not self.overwrite:  # appeared while we were encoding
                raise StylizeError(
                    f"output file already exists: {self.path} "
                    "(it appeared while encoding; --overwrite replaces it)"
                )
            commit(self._tmp, self.path)
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
        for track in self._audio:
            track.close()
        self._audio = []

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(BaseException):  # the original exception is the one to report
                self.close_early()

    def __del__(self) -> None:
        if getattr(self, "_tmp", None) is not None and not (self.finalized or self.aborted):
            self._discard()


# --- audio ---------------------------------------------------------------------------------------


class _CopiedAudio:
    """One audio stream copied packet by packet from its own reader of the source file."""

    def __init__(self, source: Path, index: int, output: av.container.OutputContainer) -> None:
        self._input = av.open(str(source))
        try:
            template = self._input.streams[index]
            self.stream = _add_template_stream(output, template)
            self._packets = _timed_packets(self._input.demux(template))
            self._pending: av.Packet | None = next(self._packets, None)
        except BaseException:
            self._input.close()
            raise

    def mux_until(self, output: av.container.OutputContainer, end: float | None) -> None:
        while self._pending is not None and (end is None or _start(self._pending) < end):
            packet = self._pending
            packet.stream = self.stream
            output.mux(packet)
            self._pending = next(self._packets, None)

    def finish(self, output: av.container.OutputContainer, end: float | None) -> None:
        self.mux_until(output, end)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._input.close()
        self._pending = None


class _ReencodedAudio:
    """One audio stream decoded and encoded again to the output container's own audio codec."""

    def __init__(self, source: Path, index: int, output: av.container.OutputContainer, suffix: str) -> None:
        self._input = av.open(str(source))
        try:
            template = self._input.streams[index]
            self.from_codec = template.codec_context.codec.canonical_name  # "mp3", not its decoder "mp3float"
            name = output.default_audio_codec
            try:
                codec = av.codec.Codec(name, "w")
            except (av.codec.codec.UnknownCodecError, ValueError):
                raise StylizeError(
                    f"{suffix} files cannot hold {self.from_codec} audio and this FFmpeg has no encoder for "
                    f"the audio they take ({name}); leave the audio out (--no-audio) or use .mkv"
                ) from None
            self.to_codec = codec.canonical_name
            rate = template.codec_context.sample_rate
            if codec.audio_rates and rate not in codec.audio_rates:
                rate = min((r for r in codec.audio_rates if r >= rate), default=max(codec.audio_rates))
            self.stream = output.add_stream(
                codec.name, rate=rate, layout=_named_layout(template.codec_context)
            )
            self._frames = self._decode(template)
            self._pending: av.AudioFrame | None = next(self._frames, None)
        except BaseException:
            self._input.close()
            raise

    def _decode(self, stream: av.audio.AudioStream) -> Iterator[av.AudioFrame]:
        for packet in self._input.demux(stream):
            try:
                yield from packet.decode()
            except av.InvalidDataError:  # a damaged packet: skipped, as the video decoder does
                continue

    def mux_until(self, output: av.container.OutputContainer, end: float | None) -> None:
        while self._pending is not None and (end is None or (self._pending.time or 0.0) < end):
            for packet in self.stream.encode(self._pending):
                output.mux(packet)
            self._pending = next(self._frames, None)

    def finish(self, output: av.container.OutputContainer, end: float | None) -> None:
        self.mux_until(output, end)
        for packet in self.stream.encode(None):
            output.mux(packet)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._input.close()
        self._pending = None


def _copy_fits(source: Path, index: int, format_name: str) -> bool:
    """Whether stream ``index`` of ``source`` can be copied into a ``format_name`` file.

    Tried for real, in memory: header, the stream's first packets, trailer. Asking FFmpeg
    (``avformat_query_codec``) is not enough: it allows Opus in MOV, whose muxer then refuses it.
    """
    try:
        with av.open(str(source)) as reader, av.open(io.BytesIO(), "w", format=format_name) as trial:
            template = reader.streams[index]
            stream = _add_template_stream(trial, template)
            trial.start_encoding()
            for packet in islice(_timed_packets(reader.demux(template)), 3):
                packet.stream = stream
                trial.mux(packet)
        return True
    except (av.FFmpegError, ValueError):
        return False


def _copy_stream(output: av.container.OutputContainer, template: av.stream.Stream):
    """An output stream copying ``template``'s codec parameters (ValueError if the format refuses it)."""
    if hasattr(output, "add_stream_from_template"):  # PyAV >= 13
        return output.add_stream_from_template(template)
    return output.add_stream(template=template)


def _add_template_stream(output: av.container.OutputContainer, template: av.audio.AudioStream):
    """An audio stream copying ``template``'s codec parameters, with a named channel layout."""
    stream = _copy_stream(output, template)
    layout = _named_layout(template.codec_context)
    if layout != template.codec_context.layout.name:
        stream.codec_context.layout = layout
    return stream


def _named_layout(context) -> str:
    """The stream's channel layout, or the usual one for its channel count when it has only a count."""
    layout = context.layout
    if all(channel.name == "NONE" for channel in layout.channels):
        return _DEFAULT_LAYOUTS.get(layout.nb_channels, layout.name)
    return layout.name


def _timed_packets(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """The non-empty packets, each with a pts and a duration.

    Some demuxers leave them out (Matroska blocks without a duration, laced frames without a
    timestamp): a packet without pts gets its dts or the previous packet's end, one without a duration
    the gap to the next packet (or the previous duration, for the last one). Muxers drop, or give no
    time to, zero-length packets, and a packet without a start cannot be placed in the span.
    """
    previous: av.Packet | None = None
    last_duration = 0
    for packet in packets:
        if not packet.size:  # the demuxer's empty end-of-file packet
            continue
        if packet.pts is None:
            if packet.dts is not None:
                packet.pts = packet.dts
            elif previous is not None:
                packet.pts = previous.pts + (previous.duration or 0)
            else:
                packet.pts = 0
        if packet.dts is None:
            packet.dts = packet.pts
        if previous is not None:
            if not previous.duration and packet.pts > previous.pts:
                previous.duration = packet.pts - previous.pts
            last_duration = previous.duration or last_duration
            yield previous
        previous = packet
    if previous is not None:
        if not previous.duration:
            previous.duration = last_duration
        yield previous


# --- checks before any work ----------------------------------------------------------------------


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
        raise StylizeError(f"output file already exists: {path} (use --overwrite to replace it)")
    _check_writable(path.parent)


def choose_codec(path: str | Path, codec: str | None = None) -> str:
    """The video encoder for ``path``, judged by its extension, before any file is created.

    ``codec`` must be an encoder this FFmpeg has and the container can hold. Without one: libx264
    where the container holds H.264 (.mp4, .mkv, .mov), else the container's own (VP9 for .webm,
    MPEG-4 for .avi).
    """
    path = Path(path)
    try:
        container = av.open(str(path), "w")  # reads the format from the name; the file is made later
    except (av.FFmpegError, ValueError) as e:
        raise StylizeError(f"cannot write {path.suffix} video files: {e}") from None
    try:
        if codec is None:
            default = container.default_video_codec
            h264 = container.format.name not in _NO_PTS_FORMATS and _has_encoder("libx264")
            codec = "libx264" if h264 and _holds(container, "libx264") else default
            if codec != "libx264" and (default not in _VIDEO_FORMATS or not _has_encoder(default)):
                # .mp3's own "video" is its cover picture, .gif's a palette image: not for a stylized film
                raise StylizeError(
                    f"cannot write video to {path.suffix} files here; use .mp4, .mkv, .mov or .webm"
                )
            return av.codec.Codec(codec, "w").name  # "vp9" → "libvpx-vp9"
        _video_encoder(codec)
        if not _holds(container, codec):
            fits = [c for c in _SUGGESTED_ENCODERS if _has_encoder(c) and _holds(container, c)]
            suggestion = f" (for example --codec {' or '.join(fits[:3])})" if fits else ""
            raise StylizeError(
                f"{path.suffix} files cannot hold {codec} video: choose another --codec{suggestion} "
                "or another output extension"
            )
        return codec
    finally:
        container.close()


def _holds(container: av.container.OutputContainer, codec: str) -> bool:
    """FFmpeg's own answer, as PyAV asks it when adding a stream: no only when the format knows it cannot.

    (``supported_codecs`` is stricter: formats without a codec list, such as MPEG-TS, hold nothing there.)
    """
    try:
        container.add_stream(codec)
    except ValueError:
        return False
    return True


def even_size_needed(codec: str, width: int, height: int, pix_fmt: str = "yuv420p") -> bool:
    """Whether ``codec`` refuses this odd size in ``pix_fmt`` but takes it rounded down to even sides.

    H.264 and HEVC code 4:2:0 chroma in whole 2×2 blocks, cropping included, so libx264 and libx265
    cannot make a 321×241 picture; VP9, AV1, MPEG-4 and FFV1 can. Asked of the encoder itself.
    """
    if width % 2 == 0 and height % 2 == 0:
        return False
    return not _encoder_opens(codec, width, height, pix_fmt) and _encoder_opens(
        codec, width - width % 2, height - height % 2, pix_fmt
    )


def _encoder_opens(codec: str, width: int, height: int, pix_fmt: str) -> bool:
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25)
    try:
        context.open()
    except (av.FFmpegError, ValueError):
        return False
    finally:
        del context  # freed now: an opened encoder holds threads and (NVENC) a GPU session
    return True


def _check_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root and read-only mounts."""
    probe = folder / f".stylize-write-test.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        raise StylizeError(f"cannot write to the output folder {folder}: {e.strerror}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def _video_encoder(codec: str) -> av.codec.Codec:
    try:
        found = av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise StylizeError(f"video encoder {codec!r} is not available in this FFmpeg build") from None
    if found.type != "video":
        raise StylizeError(f"{codec!r} is not a video encoder")
    return found


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _start(packet: av.Packet) -> float:
    return float(packet.pts * packet.time_base)
