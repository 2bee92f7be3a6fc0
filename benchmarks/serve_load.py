"""Clients for ``stylize serve`` without a browser (aiortc), and the FPS-per-client measurement.

``python benchmarks/serve_load.py`` starts ``stylize serve`` (microast, CPU, the shared weights and
styles) as a subprocess, connects 1, then 2, then 4 clients that each send a synthetic 30 fps
camera, and prints per-client received FPS and the server's latency (frame received → stylized
frame handed to the encoder). Clients and server share this machine's cores, so on a small CPU the
clients' own VP8 encoding and decoding is part of what is measured. Settings through the
environment: ``SERVE_LOAD_SECONDS`` (per client count, default 20), ``SERVE_LOAD_CLIENTS`` ("1,2,4"),
``SERVE_LOAD_SIZE`` (camera WxH, "320x240"), ``SERVE_LOAD_MODEL`` ("microast"), ``STYLIZE_SHARED``.

The tests use :class:`WebRtcClient` as a browser stand-in.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

REPO = Path(__file__).resolve().parents[1]


class SyntheticCamera(VideoStreamTrack):
    """A 30 fps camera showing ``image`` (H×W×3 uint8 BGR), with a slowly moving bar so frames differ."""

    def __init__(self, image: np.ndarray, moving: bool = True) -> None:
        super().__init__()
        self.image = image
        self.moving = moving
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self.image
        if self.moving:
            image = image.copy()
            x = (self.sent * 2) % image.shape[1]
            image[:, x : x + 4] = 255 - image[:, x : x + 4]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


@dataclass
class WebRtcClient:
    """One connected client: its peer connection, the frames that came back, its settings channel."""

    pc: RTCPeerConnection
    channel: object
    camera: SyntheticCamera
    client_id: str = ""
    settings: dict = field(default_factory=dict)
    received: int = 0
    last_frame: np.ndarray | None = None
    arrivals: list[float] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    def fps(self, since: float) -> float:
        times = [t for t in self.arrivals if t >= since]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0

    async def wait_frames(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` more frames came back."""
        target = self.received + count
        deadline = time.monotonic() + timeout
        while self.received < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.received} frames came back, waited for {target}")
            await asyncio.sleep(0.05)

    async def send_settings(self, **changes) -> dict:
        """Change settings on the data channel; returns the server's confirmation."""
        count = len(self.messages)
        self.channel.send(json.dumps({"type": "settings", **changes}))
        for _ in range(200):
            replies = [m for m in self.messages[count:] if m.get("type") in ("settings", "error")]
            if replies:
                return replies[0]
            await asyncio.sleep(0.05)
        raise TimeoutError("no reply to a settings change")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await self._reader
        await self.pc.close()


async def connect(
    url: str, image: np.ndarray, token: str | None = None, settings: dict | None = None, moving: bool = True
) -> WebRtcClient:
    """Connect a client sending ``image`` as its camera to a ``stylize serve`` at ``url``."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves this machine
    channel = pc.createDataChannel("control")
    camera = SyntheticCamera(image, moving)
    pc.addTrack(camera)
    client = WebRtcClient(pc, channel, camera)
    channel_open = asyncio.Event()
    channel.on("open", channel_open.set)
    channel.on("message", lambda m: client.messages.append(json.loads(m)))

    @pc.on("track")
    def on_track(track) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    client.last_frame = frame.to_ndarray(format="bgr24")
                    client.received += 1
                    client.arrivals.append(time.monotonic())
            except MediaStreamError:
                client.ended.set()

        client._reader = asyncio.create_task(read())

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    if settings:
        body["settings"] = settings
    async with ClientSession() as http:
        async with http.post(url.rstrip("/") + "/api/offer", json=body, headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                await pc.close()
                raise RuntimeError(f"offer refused ({response.status}): {answer.get('error')}")
    client.client_id = answer["client"]
    client.settings = answer["settings"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await asyncio.wait_for(channel_open.wait(), 20)
    return client


async def server_stats(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with ClientSession() as http:
        async with http.get(url.rstrip("/") + "/api/clients", headers=headers) as response:
            return await response.json()


def start_server(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str, str | None]:
    """``stylize serve ARGS --port 0`` as a subprocess: (it, its URL, the token it printed or None)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stream", "serve", "--port", "0", *args],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    process.output = collections.deque(maxlen=200)  # what it said: read all along, so no pipe fills up
    errors = threading.Thread(target=process.output.extend, args=(process.stderr,), daemon=True)
    errors.start()
    for line in process.stdout:
        process.output.append(line)
        found = re.search(r"open (http://\S+?)(?:\?token=(\S+))? in a browser", line)
        if found:
            threading.Thread(target=process.output.extend, args=(process.stdout,), daemon=True).start()
            return process, found.group(1), found.group(2)
    process.wait(10)
    errors.join(5)
    raise RuntimeError("stylize serve did not start:\n" + "".join(process.output))


async def measure(url: str, clients: int, seconds: float, image: np.ndarray) -> dict:
    """``clients`` clients for ``seconds`` (after a warm-up): FPS each, the server's latency each."""
    connected = [await connect(url, image) for _ in range(clients)]
    try:
        for c in connected:
            await c.wait_frames(3, timeout=60)
        await asyncio.sleep(2.0)  # warm-up: encoders settle, bitrates adapt
        start = time.monotonic()
        await asyncio.sleep(seconds)
        stats = await server_stats(url)
        rows = []
        for c in connected:
            s = stats.get(c.client_id, {})
            rows.append(
                {"fps": round(c.fps(start), 1), "server_fps": s.get("fps"),
                 "server_sent_fps": s.get("sent_fps"), "server_latency_ms": s.get("latency_ms"),
                 "server_latency_p95_ms": s.get("latency_p95_ms"), "size": s.get("size")}
            )  # fmt: skip
        return {"clients": clients, "per_client": rows}
    finally:
        for c in connected:
            await c.close()
        await asyncio.sleep(1.0)


def content_picture(shared: Path, width: int, height: int) -> np.ndarray:
    """A shared content photo at ``width``×``height`` (a gradient without ../shared)."""
    photos = sorted((shared / "media" / "content").glob("*.jpg"))
    if not photos:
        return np.tile(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    return cv2.resize(cv2.imread(str(photos[0])), (width, height), interpolation=cv2.INTER_AREA)


def model_fps(shared: Path, model_name: str, image: np.ndarray, frames: int = 30) -> float:
    """The Stylizer alone on ``image``, as the server runs it: CPU, the default precision, a worker thread.

    A worker thread, like the server's stage: on the shared 2-core machine the same network ran ~10×
    slower from the main thread than from another one (OpenMP under load), which is not the server's case.
    """
    from engines.runtimes import make_engine
    from engines.styles import StyleBank
    from engines.stylizer import Stylizer
    from engines.weights import load_model

    model = load_model(model_name, shared / "weights", download=False)
    stats = StyleBank(model, cache_dir=False).add("s", image).stats
    stylizer = Stylizer(make_engine("torch", model, device="cpu"), stats)
    seconds = []

    def run() -> None:
        stylizer([image])
        start = time.perf_counter()
        for _ in range(frames):
            stylizer([image])
        seconds.append(time.perf_counter() - start)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return frames / seconds[0]


def main() -> int:
    shared = Path(os.environ.get("STYLIZE_SHARED") or REPO.parent / "shared")
    seconds = float(os.environ.get("SERVE_LOAD_SECONDS", "20"))
    counts = [int(n) for n in os.environ.get("SERVE_LOAD_CLIENTS", "1,2,4").split(",")]
    width, height = (int(v) for v in os.environ.get("SERVE_LOAD_SIZE", "320x240").split("x"))
    model = os.environ.get("SERVE_LOAD_MODEL", "microast")
    image = content_picture(shared, width, height)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    process, url, _ = start_server(
        "--model", model, "--weights", str(shared / "weights"), "--device", "cpu", "--max-clients", "8",
        "--style", str(shared / "media" / "style" / "la_muse.jpg"),
    )  # fmt: skip
    try:
        engine = next((line.split(";")[0] for line in process.output if "client" in line), model)
        results = [asyncio.run(measure(url, n, seconds, image)) for n in counts]
    finally:
        process.terminate()
        process.wait(20)
    alone = model_fps(shared, model, image)
    summary = {
        "engine": engine, "camera": f"{width}x{height}", "seconds": seconds, "model_alone_fps": alone,
        "cpu_cores": os.cpu_count(), "load_average_at_end": os.getloadavg()[0], "runs": results,
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    print(f"{engine}, {width}x{height}: the Stylizer alone {alone:.1f} fps (same process, no video)")
    for r in results:
        fps = [row["fps"] for row in r["per_client"]]
        lat = [row["server_latency_ms"] or 0 for row in r["per_client"]]
        print(
            f"{r['clients']} client(s): {' '.join(f'{f:.1f}' for f in fps)} fps each "
            f"(total {sum(fps):.1f}); server latency {min(lat):.0f}–{max(lat):.0f} ms; "
            f"stylized {' '.join(str(row['server_fps']) for row in r['per_client'])} fps, "
            f"sent {' '.join(str(row['server_sent_fps']) for row in r['per_client'])} fps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
