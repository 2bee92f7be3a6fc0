"""The web server: one page, its API, and WebRTC signalling (aiohttp + aiortc).

HTTP routes (every one behind the same guard: token, loopback Host, same-origin POSTs):

- ``GET /`` the page, ``GET /static/NAME`` its script and style sheet;
- ``GET /api/config`` engine, defaults and limits; ``GET /api/styles`` the gallery;
- ``POST /api/styles?name=NAME`` upload a style image (the body is the file);
- ``POST /api/offer`` signalling: the browser's SDP offer in, the answer out (non-trickle ICE: both
  sides gather their candidates before sending, so one request sets the call up);
- ``GET /api/clients`` per-client FPS and latency (benchmarks, tests).

Settings and statistics travel on the call's data channel, which only a client admitted through
``/api/offer`` has. A client ends when its connection fails or closes, its camera track ends, or
no frame arrived for ``idle_timeout`` seconds (a tab that vanished without a goodbye); its pipeline
threads are stopped and joined, and the shared stage holds nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from engines.errors import StylizeError
from stream.serve.gallery import Gallery, GalleryFull
from stream.serve.security import (
    MAX_UPLOAD_BYTES,
    UPLOAD_TYPES,
    Refused,
    check_upload,
    host_header_allowed,
    style_name,
    token_matches,
)
from stream.serve.session import ClientSession, ClientSettings
from stream.serve.shared_stage import SharedStage
from stream.serve.tracks import StylizedTrack, convert_frame, pump

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 4096
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class ServeOptions:
    """How the server runs (the command line's options, parsed)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_side: int | None = None
    max_clients: int = 4
    idle_timeout: float = 20.0
    camera: tuple[int, int] = (640, 480)  # what the page asks the browser's camera for
    ice_servers: list[dict] = field(default_factory=list)  # browser format: {urls, username?, credential?}
    engine_label: str = ""
    alpha: float = 1.0
    preserve_color: bool = False
    smoothing: bool = False


@dataclass
class _Client:
    session: ClientSession
    pc: RTCPeerConnection
    channel: object = None
    tasks: list = field(default_factory=list)
    closing: bool = False


class StyleServer:
    """Serves the page and stylizes every connected client's camera with one :class:`SharedStage`.

    ``await start()`` binds and returns the URL; ``await close()`` ends every client and unbinds.
    """

    def __init__(self, stage: SharedStage, gallery: Gallery, options: ServeOptions) -> None:
        if not len(gallery):
            raise ValueError("the server needs at least one style")
        self.stage = stage
        self.gallery = gallery
        self.options = options
        self.clients: dict[str, _Client] = {}
        self.url = ""
        self.port = options.port
        self._runner: web.AppRunner | None = None
        self._watchdog: asyncio.Task | None = None
        self._static = resources.files("stream.serve") / "static"
        self._rtc_config = RTCConfiguration(iceServers=[_rtc_ice_server(s) for s in options.ice_servers])

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_UPLOAD_BYTES + 1)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/api/config", self._config)
        app.router.add_get("/api/styles", self._styles)
        app.router.add_post("/api/styles", self._upload)
        app.router.add_post("/api/offer", self._offer)
        app.router.add_get("/api/clients", self._clients)
        self._runner = web.AppRunner(app, access_log=None)  # an access log would record ?token=
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise StylizeError(
                f"cannot listen on {self.options.host}:{self.options.port}: {e.strerror}"
            ) from None
        sockets = site._server.sockets if site._server else []  # the real port when 0 was asked
        self.port = sockets[0].getsockname()[1] if sockets else self.options.port
        host = self.options.host
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"
        self._watchdog = asyncio.create_task(self._watch())
        return self.url

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await asyncio.gather(*(self.close_client(cid, "server shutdown") for cid in list(self.clients)))
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> StyleServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- the guard ---------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        token = self.options.token
        if token is None and not host_header_allowed(request.headers.get("Host")):
            return _refuse(request, 403, "this server answers only requests addressed to localhost")
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin and urlsplit(origin).netloc != request.host:
            return _refuse(request, 403, "cross-origin requests are refused")
        from_query = False
        if token is not None:
            given = _bearer(request) or request.cookies.get(self._cookie)
            if not token_matches(token, given):
                given, from_query = request.query.get("token"), True
            if not token_matches(token, given):
                return _refuse(
                    request, 401, "this server needs its token: open the address it printed at start"
                )
        try:
            response = await handler(request)
        except Refused as e:
            response = _refuse(request, e.status, str(e))
        if from_query:  # the page's own requests then carry it without putting it in every URL
            secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
            response.set_cookie(
                self._cookie, token, httponly=True, samesite="Strict", secure=secure, path="/"
            )
        _harden(response)
        return response

    @property
    def _cookie(self) -> str:
        return f"stylize_token_{self.port}"  # cookies ignore ports: two servers on one host keep theirs

    # -- pages and API -----------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        html = (self._static / "index.html").read_text(encoding="utf-8")
        response = web.Response(text=html, content_type="text/html")
        response.headers["Content-Security-Policy"] = _CSP
        return response

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            text=(self._static / name).read_text(encoding="utf-8"), content_type=STATIC_FILES[name]
        )

    async def _config(self, request: web.Request) -> web.Response:
        o = self.options
        return web.json_response(
            {
                "engine": o.engine_label,
                "smoothing_supported": self.stage.engine.supports_content_hook,
                "defaults": {"alpha": o.alpha, "preserve_color": o.preserve_color, "smoothing": o.smoothing},
                "camera": {"width": o.camera[0], "height": o.camera[1]},
                "ice_servers": o.ice_servers,
                "max_upload_bytes": MAX_UPLOAD_BYTES,
                "upload_types": sorted(UPLOAD_TYPES.values()),
                "max_clients": o.max_clients,
            }
        )

    async def _styles(self, request: web.Request) -> web.Response:
        return web.json_response([s.describe() for s in self.gallery.list()])

    async def _upload(self, request: web.Request) -> web.Response:
        name = style_name(request.query.get("name"))
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            raise Refused(
                413, f"{name} is {request.content_length / 2**20:.1f} MB; style images may be at most 20 MB"
            )
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, f"{name} is larger than 20 MB; style images may be at most 20 MB") from None
        image = check_upload(data, request.content_type, name)
        try:
            entry = await asyncio.to_thread(self.gallery.add_image, name, image, data)
        except GalleryFull as e:
            raise Refused(507, str(e)) from None
        log.info("style uploaded: %s (%s)", entry.name, entry.id)
        self._broadcast({"type": "gallery"})
        return web.json_response(entry.describe(), status=201)

    async def _clients(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                cid: {**c.session.stats(), "settings": c.session.settings.describe()}
                for cid, c in self.clients.items()
            }
        )

    # -- signalling --------------------------------------------------------------------------------

    async def _offer(self, request: web.Request) -> web.Response:
        if request.content_length is None or request.content_length > MAX_OFFER_BYTES:
            raise Refused(413, "an offer is a JSON body of at most 256 kB")
        try:
            body = await request.json()
            offer = RTCSessionDescription(sdp=str(body["sdp"]), type=str(body["type"]))
        except (ValueError, KeyError, TypeError):
            raise Refused(400, "an offer is JSON with 'sdp' and 'type'") from None
        if offer.type != "offer" or "m=video" not in offer.sdp:
            raise Refused(400, "the offer must be an SDP offer with a video track")
        if len(self.clients) >= self.options.max_clients:
            raise Refused(503, f"the server is busy: {len(self.clients)} clients already (--max-clients)")

        client_id = secrets.token_hex(8)
        o = self.options
        settings = ClientSettings(self.gallery.first().id, o.alpha, o.preserve_color, o.smoothing)
        session = ClientSession(client_id, self.stage, self.gallery, settings, convert_frame, o.max_side)
        wanted = body.get("settings")
        if isinstance(wanted, dict):
            try:
                session.update(wanted)
            except ValueError as e:
                raise Refused(400, f"settings: {e}") from None
        pc = RTCPeerConnection(self._rtc_config)
        client = _Client(session, pc)
        self.clients[client_id] = client

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "video" and not client.tasks:
                client.tasks.append(asyncio.create_task(pump(track, session.mailbox)))

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            client.channel = channel
            channel.on("message", lambda message: self._on_message(client, message))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close_client(client_id, f"connection {pc.connectionState}")

        try:
            await pc.setRemoteDescription(offer)
            pc.addTrack(StylizedTrack(session.output, asyncio.get_running_loop()))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:
            await self.close_client(client_id, "bad offer")
            raise Refused(400, f"cannot answer this offer: {e}") from None
        session.start()
        client.tasks.append(asyncio.create_task(self._send_stats(client)))
        log.info("client %s connected (%d now)", client_id[:8], len(self.clients))
        return web.json_response(
            {
                "sdp": pc.localDescription.sdp,
                "type": pc.localDescription.type,
                "client": client_id,
                "settings": session.settings.describe(),
            }
        )

    def _on_message(self, client: _Client, message) -> None:
        """A settings change from the page ({"type": "settings", ...}); the reply: the settings in force."""
        if not isinstance(message, str) or len(message) > MAX_MESSAGE_BYTES:
            return
        try:
            data = json.loads(message)
            if not isinstance(data, dict) or data.pop("type", None) != "settings":
                raise ValueError('expected {"type": "settings", ...}')
            settings = client.session.update(data)
            reply = {"type": "settings", **settings.describe()}
        except ValueError as e:
            reply = {"type": "error", "message": str(e), **client.session.settings.describe()}
        _send(client, reply)

    async def _send_stats(self, client: _Client) -> None:
        while not client.closing:
            await asyncio.sleep(1.0)
            _send(client, {"type": "stats", "clients": len(self.clients), **client.session.stats()})

    def _broadcast(self, message: dict) -> None:
        for client in list(self.clients.values()):
            _send(client, message)

    # -- ending clients ----------------------------------------------------------------------------

    async def close_client(self, client_id: str, reason: str) -> None:
        """End one client: its tasks, its peer connection, its pipeline threads. Idempotent."""
        client = self.clients.get(client_id)
        if client is None or client.closing:
            return
        client.closing = True
        for task in client.tasks:
            task.cancel()
        await asyncio.gather(*client.tasks, return_exceptions=True)
        await asyncio.to_thread(client.session.close)  # joins threads: not on the event loop
        with contextlib.suppress(Exception):
            await client.pc.close()
        self.clients.pop(client_id, None)
        log.info("client %s gone (%s); %d left", client_id[:8], reason, len(self.clients))

    async def _watch(self) -> None:
        """End clients that vanished without a goodbye (no frames) or whose pipeline stopped."""
        timeout = self.options.idle_timeout
        while True:
            await asyncio.sleep(min(0.5, timeout / 4))
            for cid, client in list(self.clients.items()):
                if client.closing:
                    continue
                if client.session.idle_for() > timeout:
                    asyncio.create_task(self.close_client(cid, f"no frames for {timeout:g} s"))
                elif client.session.ended:
                    asyncio.create_task(self.close_client(cid, "its stream ended"))


def _send(client: _Client, message: dict) -> None:
    channel = client.channel
    if channel is not None and channel.readyState == "open" and not client.closing:
        with contextlib.suppress(Exception):
            channel.send(json.dumps(message))


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    """One line, as JSON for the API and as text for a person's browser."""
    if request.path.startswith("/api/"):
        response = web.json_response({"error": message}, status=status)
    else:
        response = web.Response(text=message + "\n", status=status, content_type="text/plain")
    _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")  # the token must not leak in Referer
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")


def _rtc_ice_server(entry: dict) -> RTCIceServer:
    return RTCIceServer(
        urls=entry["urls"], username=entry.get("username"), credential=entry.get("credential")
    )


def run_server(stage: SharedStage, gallery: Gallery, options: ServeOptions, started=None) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt propagates) or SIGTERM, then close every client.

    ``started(server)`` is called once listening (the command prints the address there).
    """

    async def main() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with StyleServer(stage, gallery, options) as server:
            if started is not None:
                started(server)
            await stop.wait()

    try:
        asyncio.run(main())
    finally:
        stage.close()
