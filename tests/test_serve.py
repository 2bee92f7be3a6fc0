"""``stylize serve`` without a browser: the guard (token, Host, origin), uploads, clients coming and going.

Most tests run the server in-process on port 0 with a stub network (the output is the input blended
towards the style image's mean colour), so they need neither weights nor a GPU; an aiortc client
stands in for the browser. The last ones run the real command and the real model (../shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

aiortc = pytest.importorskip("aiortc", reason='needs aiortc: pip install -e ".[dev]"')
aiohttp = pytest.importorskip("aiohttp", reason='needs aiohttp: pip install -e ".[dev]"')

from benchmarks.serve_load import connect, server_stats, start_server  # noqa: E402
from engines.errors import StylizeError  # noqa: E402
from engines.models.base import StyleModel  # noqa: E402
from engines.styles import StyleBank  # noqa: E402
from engines.stylizer import Stylizer  # noqa: E402
from stream.cli import main  # noqa: E402
from stream.serve.app import STATIC_FILES, ServeOptions, StyleServer  # noqa: E402
from stream.serve.gallery import Gallery  # noqa: E402
from stream.serve.security import (  # noqa: E402
    MAX_UPLOAD_BYTES,
    Refused,
    check_upload,
    host_header_allowed,
    is_loopback,
    resolve_token,
)
from stream.serve.session import ClientSession, ClientSettings  # noqa: E402
from stream.serve.shared_stage import SharedStage  # noqa: E402

TOKEN = "a-test-token-of-24-chars"
RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


class StubModel(StyleModel):
    """A style is its mean colour."""

    name, multiple, stats_names, fingerprint = "stub", 8, ("mean",), "stub"

    def style_stats(self, style: torch.Tensor) -> dict:
        return {"mean": style.mean(dim=(2, 3), keepdim=True)}


class StubEngine:
    backend, model_name, precision, multiple = "stub", "stub", "fp32", 8

    def __init__(self, hook: bool = False) -> None:
        self.supports_content_hook = hook
        self.content_hook = None
        self.device = torch.device("cpu")

    def run(self, content: torch.Tensor, stats: dict, alpha: float) -> torch.Tensor:
        return content * (1 - alpha) + alpha * stats["mean"].to(content)


def png(colour, size=(48, 64)) -> bytes:
    image = np.zeros((*size, 3), np.uint8)
    image[:] = colour
    return cv2.imencode(".png", image)[1].tobytes()


def stub_gallery() -> Gallery:
    gallery = Gallery(StyleBank(StubModel(), style_size=32, cache_dir=False))
    for name, colour in (("red", RED), ("blue", BLUE)):
        data = png(colour)
        gallery.add_image(name, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), data, False)
    return gallery


@contextlib.asynccontextmanager
async def serving(token: str | None = None, hook: bool = False, **options):
    gallery = stub_gallery()
    stage = SharedStage(Stylizer(StubEngine(hook), gallery.first().stats))
    server = StyleServer(stage, gallery, ServeOptions(port=0, token=token, **options))
    await server.start()
    try:
        yield server
    finally:
        await server.close()
        stage.close()


async def request(server, method: str, path: str, **kwargs) -> tuple[int, dict | str, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"http://127.0.0.1:{server.port}{path}", **kwargs) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body, dict(r.headers)


def client_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("pipeline-", "client-"))]


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


# -- binding and tokens -----------------------------------------------------------------------------


def test_loopback_needs_no_token_and_anything_else_does():
    assert resolve_token("127.0.0.1", None) == (None, False)
    assert resolve_token("::1", None) == (None, False)
    assert resolve_token("localhost", None) == (None, False)
    for host in ("0.0.0.0", "192.168.1.10", "::", "gpu-box.example"):
        with pytest.raises(StylizeError, match="--token"):
            resolve_token(host, None)
    token, generated = resolve_token("0.0.0.0", "")  # --token alone
    assert generated and len(token) >= 32
    assert resolve_token("0.0.0.0", "x" * 20) == ("x" * 20, False)
    with pytest.raises(StylizeError, match="at least 16"):
        resolve_token("0.0.0.0", "short")


def test_binding_to_the_network_without_a_token_is_one_line_before_any_loading(tmp_path, capsys):
    code = main(["serve", "--host", "0.0.0.0", "--style", "missing.jpg", "--weights", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "binding to 0.0.0.0" in err and "--token" in err


def test_host_names_that_count_as_local():
    assert is_loopback("127.0.0.5") and is_loopback("[::1]") and not is_loopback("10.0.0.1")
    assert host_header_allowed("localhost:8080") and host_header_allowed("127.0.0.1:1")
    assert host_header_allowed("[::1]:8080") and host_header_allowed("localhost")
    assert not host_header_allowed("evil.example:8080") and not host_header_allowed(None)
    assert not host_header_allowed("127.0.0.1.evil.example")


def test_every_http_request_needs_the_token():
    async def scenario():
        async with serving(token=TOKEN) as server:
            for path in ("/", "/static/app.js", "/api/config", "/api/styles", "/api/clients"):
                status, body, _ = await request(server, "GET", path)
                assert status == 401, path
                status, _, _ = await request(server, "GET", path, headers={"Authorization": "Bearer wrong"})
                assert status == 401, path
            _, body, _ = await request(server, "GET", "/api/styles")
            assert body == {"error": "this server needs its token: open the address it printed at start"}
            status, body, _ = await request(
                server, "GET", "/api/styles", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert status == 200 and [s["name"] for s in body] == ["red", "blue"]
            status, page, headers = await request(server, "GET", f"/?token={TOKEN}")
            assert status == 200 and "adain-stream" in page
            cookie = headers["Set-Cookie"]
            assert f"stylize_token_{server.port}={TOKEN}" in cookie
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert headers["Referrer-Policy"] == "no-referrer"
            cookies = {"Cookie": f"stylize_token_{server.port}={TOKEN}"}
            status, _, _ = await request(server, "GET", "/static/app.js", headers=cookies)
            assert status == 200

    asyncio.run(scenario())


def test_signalling_needs_the_token_and_admits_nobody_without_it():
    async def scenario():
        async with serving(token=TOKEN) as server:
            offer = {"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}
            status, body, _ = await request(server, "POST", "/api/offer", json=offer)
            assert status == 401 and "token" in body["error"]
            with pytest.raises(RuntimeError, match="401"):
                await connect(server.url, np.zeros((48, 64, 3), np.uint8), token="wrong-token-xxxxxxxx")
            assert server.clients == {}
            client = await connect(server.url, np.zeros((48, 64, 3), np.uint8), token=TOKEN)
            await client.wait_frames(3)
            await client.close()

    asyncio.run(scenario())


def test_without_a_token_only_local_names_and_same_origin_posts_get_in():
    async def scenario():
        async with serving() as server:
            status, _, _ = await request(server, "GET", "/api/config")
            assert status == 200
            status, body, _ = await request(server, "GET", "/api/config", headers={"Host": "evil.example"})
            assert status == 403 and "localhost" in body["error"]  # DNS rebinding
            status, body, _ = await request(
                server, "POST", "/api/styles", data=png(RED), headers={"Origin": "http://evil.example"}
            )
            assert status == 403 and "cross-origin" in body["error"]
            status, _, _ = await request(server, "POST", "/api/styles", data=png((0, 255, 0)),
                                         headers={"Origin": f"http://127.0.0.1:{server.port}"})  # fmt: skip
            assert status == 201

    asyncio.run(scenario())


# -- uploads ----------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG claiming width×height (what a decompression bomb looks like)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0" * 4 + b"\0" * 100


def test_uploads_are_checked_on_their_bytes():
    image = check_upload(png(RED), "image/png", "red")
    assert image.shape == (48, 64, 3) and tuple(image[0, 0]) == RED
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    assert check_upload(jpeg, "application/octet-stream", "x").shape == (48, 64, 3)
    cases = [
        (b"x" * (MAX_UPLOAD_BYTES + 1), "image/png", 413, "at most 20 MB"),
        (b"", "image/png", 400, "empty"),
        (b"hello", "text/plain", 415, "text/plain"),
        (b"GIF89a" + b"\0" * 100, "image/gif", 415, "not a JPEG, PNG, WebP or BMP"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", 415, "not a JPEG"),
        (png_header(100_000, 100_000), "image/png", 413, "100000x100000 pixels"),
        (png(RED)[:60], "image/png", 400, "cannot read image"),  # the header is fine, the data is cut
    ]
    for data, content_type, status, message in cases:
        with pytest.raises(Refused, match=message) as refused:
            check_upload(data, content_type, "upload")
        assert refused.value.status == status and "\n" not in str(refused.value)


def test_upload_over_http_is_encoded_once_and_refusals_are_one_line():
    async def scenario():
        async with serving() as server:
            bank = server.gallery.bank
            calls = bank.encoder_calls
            green = png((0, 255, 0))
            path = "/api/styles?name=../../green.png"
            status, body, _ = await request(
                server, "POST", path, data=green, headers={"Content-Type": "image/png"}
            )
            assert (
                status == 201 and body["name"] == "green" and body["thumbnail"].startswith("data:image/jpeg")
            )
            again, body2, _ = await request(
                server, "POST", "/api/styles?name=other.png", data=png((0, 255, 0))
            )
            assert again == 201 and body2["id"] == body["id"]  # the same picture: the same style
            assert bank.encoder_calls == calls + 1 and len(server.gallery) == 3

            status, body, _ = await request(server, "POST", "/api/styles", data=b"not an image",
                                            headers={"Content-Type": "text/plain"})  # fmt: skip
            assert status == 415 and body["error"].count("\n") == 0
            status, body, _ = await request(server, "POST", "/api/styles", data=png_header(60_000, 60_000))
            assert status == 413 and "pixels" in body["error"]
            big = b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD_BYTES + 10)
            status, body, _ = await request(server, "POST", "/api/styles", data=big)
            assert status == 413 and "20 MB" in body["error"]

            async def chunks():  # no Content-Length: refused once the body passes the limit
                for _ in range(21):
                    yield b"\0" * 2**20

            status, body, _ = await request(server, "POST", "/api/styles", data=chunks())
            assert status == 413 and "20 MB" in body["error"]
            assert len(server.gallery) == 3

    asyncio.run(scenario())


# -- clients ----------------------------------------------------------------------------------------


def test_each_client_gets_its_own_settings_from_one_shared_stage():
    async def scenario():
        async with serving() as server:
            grey = np.full((48, 64, 3), 128, np.uint8)
            red_id, blue_id = (s.id for s in server.gallery.list())
            a = await connect(server.url, grey, moving=False)
            b = await connect(server.url, grey, settings={"style": blue_id, "alpha": 0.5}, moving=False)
            await a.wait_frames(10)
            await b.wait_frames(10)
            assert tuple(np.round(a.last_frame.reshape(-1, 3).mean(0))) == pytest.approx(RED, abs=6)
            half_blue = (128 + 255) / 2, 128 / 2, 128 / 2
            assert tuple(b.last_frame.reshape(-1, 3).mean(0)) == pytest.approx(half_blue, abs=6)

            reply = await a.send_settings(style=blue_id, alpha=1.0, preserve_color=False)
            assert reply == {"type": "settings", "style": blue_id, "alpha": 1.0,
                             "preserve_color": False, "smoothing": False}  # fmt: skip
            await a.wait_frames(15)
            assert tuple(a.last_frame.reshape(-1, 3).mean(0)) == pytest.approx(BLUE, abs=6)

            for bad, message in (({"alpha": 2}, "alpha"), ({"style": "nope"}, "no such style"),
                                 ({"colour": 1}, "unknown setting")):  # fmt: skip
                reply = await a.send_settings(**bad)
                assert reply["type"] == "error" and message in reply["message"]
                assert reply["style"] == blue_id  # unchanged
            reply = await a.send_settings(smoothing=True)
            assert reply["smoothing"] is False  # no content hook on this engine: never on
            status, config, _ = await request(server, "GET", "/api/config")
            assert config["smoothing_supported"] is False
            stats = await server_stats(server.url)
            assert set(stats) == {a.client_id, b.client_id} and stats[a.client_id]["frames_out"] > 0
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_smoothing_is_offered_where_the_engine_has_a_hook():
    async def scenario():
        async with serving(hook=True) as server:
            _, config, _ = await request(server, "GET", "/api/config")
            assert config["smoothing_supported"] is True
            client = await connect(server.url, np.full((48, 64, 3), 90, np.uint8))
            assert (await client.send_settings(smoothing=True))["smoothing"] is True
            await client.wait_frames(5)
            assert server.stage.engine.content_hook is not None  # the client's smoother, on the shared engine
            await client.close()

    asyncio.run(scenario())


def test_a_client_that_closes_frees_everything_at_once():
    async def scenario():
        async with serving() as server:
            client = await connect(server.url, np.full((48, 64, 3), 60, np.uint8))
            await client.wait_frames(5)
            assert len(server.clients) == 1 and client_threads()
            await client.close()  # the browser's pc.close() on pagehide
            await wait_until(lambda: not server.clients, timeout=10)
            assert client_threads() == [] and server.stage.pending() == 0

    asyncio.run(scenario())


def test_a_client_that_vanishes_is_dropped_after_the_idle_timeout():
    async def scenario():
        async with serving(idle_timeout=1.0) as server:
            client = await connect(server.url, np.full((48, 64, 3), 60, np.uint8))
            await client.wait_frames(5)
            session = next(iter(server.clients.values())).session
            client.camera.stop()  # no more frames and no goodbye: a tab frozen or a network gone
            await wait_until(lambda: not server.clients, timeout=10)
            assert session.ended and client_threads() == [] and server.stage.pending() == 0
            await client.close()

    asyncio.run(scenario())


def test_only_the_frames_that_reach_the_stage_are_converted():
    gallery = stub_gallery()
    engine = StubEngine()
    run = engine.run

    def slow_run(*args):
        time.sleep(0.03)  # slower than the camera below: the live pipeline drops stale frames
        return run(*args)

    engine.run = slow_run
    stage = SharedStage(Stylizer(engine, gallery.first().stats))
    submitted, converted = [], []
    submit = stage.submit

    def counting_submit(settings, frames, cancelled):
        submitted.extend(frames)
        return submit(settings, frames, cancelled)

    def convert(raw):
        converted.append(raw)
        return raw, None, None

    stage.submit = counting_submit
    settings = ClientSettings(gallery.first().id, alpha=1.0, preserve_color=False, smoothing=False)
    session = ClientSession("client", stage, gallery, settings, convert)
    session.start()
    for _ in range(40):
        session.mailbox.put(np.zeros((48, 64, 3), np.uint8))
        time.sleep(0.005)
    time.sleep(0.2)
    session.close()
    stage.close()
    assert session.pipeline.stats().dropped > 0  # the live pipeline dropped stale frames on the way...
    assert len(converted) == len(submitted) > 0  # ...and converted none of them
    assert session.output.written > 0 and session.error is None


def test_clients_beyond_the_limit_are_refused():
    async def scenario():
        async with serving(max_clients=1) as server:
            first = await connect(server.url, np.zeros((48, 64, 3), np.uint8))
            with pytest.raises(RuntimeError, match="503.*busy"):
                await connect(server.url, np.zeros((48, 64, 3), np.uint8))
            await first.close()

    asyncio.run(scenario())


def test_a_bad_offer_is_one_line_and_leaves_nothing_behind():
    async def scenario():
        async with serving() as server:
            for body in (
                {"sdp": "v=0", "type": "answer"},
                {"nope": 1},
                {"sdp": "garbage m=video", "type": "offer"},
            ):
                status, reply, _ = await request(server, "POST", "/api/offer", json=body)
                assert status == 400 and "\n" not in reply["error"]
            status, reply, _ = await request(
                server, "POST", "/api/offer", data="{", headers={"Content-Type": "application/json"}
            )
            assert status == 400
            assert server.clients == {} and client_threads() == []

    asyncio.run(scenario())


# -- the real command ---------------------------------------------------------------------------------


@pytest.mark.shared
def test_the_command_prints_a_generated_token_once_and_stylizes_with_the_real_model(
    shared_weights, shared_media
):
    from engines.runtimes import make_engine
    from engines.weights import load_model
    from stream.images import read_image, read_image_bytes

    style = shared_media / "style" / "la_muse.jpg"
    process, url, token = start_server(
        "--model", "microast", "--weights", str(shared_weights), "--device", "cpu", "--token",
        "--style", str(style),
    )  # fmt: skip
    photo = cv2.resize(cv2.imread(str(shared_media / "content" / "sailboat.jpg")), (160, 120))

    async def scenario():
        status, _, _ = await request_url(url + "api/styles")
        assert status == 401
        client = await connect(url, photo, token=token, moving=False)
        await client.wait_frames(15, timeout=60)
        frame = client.last_frame
        await client.close()
        return frame

    try:
        frame = asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(20)
    model = load_model("microast", shared_weights, download=False)
    stats = StyleBank(model, cache_dir=False).add("la_muse", read_image(style), read_image_bytes(style)).stats
    expected = Stylizer(make_engine("torch", model, device="cpu", precision="fp32"), stats)([photo])[0]
    small = [
        cv2.resize(x, (8, 6), interpolation=cv2.INTER_AREA).astype(float) for x in (frame, expected, photo)
    ]
    assert np.abs(small[0] - small[1]).mean() < 0.3 * np.abs(small[0] - small[2]).mean()
    output = "".join(process.output)
    assert output.count(token) == 1 and "Traceback" not in output


async def request_url(url: str) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            return r.status, await r.text(), dict(r.headers)


def test_the_page_ships_with_the_package():
    """Every file of the page matches pyproject's package-data, so an installed server has its page."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+")
    repo = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    static = repo / "stream" / "serve" / "static"
    files = sorted(p.relative_to(static.parent).as_posix() for p in static.iterdir())
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns["stream.serve"]) for f in files)
    assert {"index.html", *STATIC_FILES} == {p.name for p in static.iterdir()}


def test_a_port_in_use_is_one_line():
    async def scenario():
        async with serving() as server:
            taken = StyleServer(server.stage, server.gallery, ServeOptions(port=server.port))
            with pytest.raises(StylizeError, match=f"cannot listen on 127.0.0.1:{server.port}"):
                await taken.start()

    asyncio.run(scenario())
