"""``stylize serve``: a web page that stylizes the visitor's camera on this machine's GPU (WebRTC)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
from pathlib import Path

from engines.errors import StylizeError
from stream.cli.options import (
    add_model_arguments,
    add_size_arguments,
    build_engine,
    check_model_arguments,
    engine_label,
    load_model_and_bank,
)

log = logging.getLogger("stylize")

NAME = "serve"
HELP = "stylize browsers' cameras live over WebRTC (serves a web page)"
DESCRIPTION = (
    "Serve a page that sends the browser's camera to this machine over WebRTC and shows it stylized, with "
    "a style gallery (upload your own), alpha, keep-colours and smoothing controls, FPS and latency. "
    "Several clients share one model. Binds to localhost; any other address needs --token."
)
EXAMPLES = """examples:
  stylize serve --style starry.jpg la_muse.jpg                      # then open http://127.0.0.1:8080/
  stylize serve --style styles/*.jpg --device cuda --max-side 960
  stylize serve --style a.jpg --host 0.0.0.0 --token               # generates a token, prints the URL once
  STYLIZE_TOKEN=... stylize serve --style a.jpg --host 0.0.0.0     # a token kept out of the process list

Browsers give the camera only to https:// pages or http://localhost: on a remote machine use an SSH
tunnel (ssh -L 8080:localhost:8080 gpu-box) or an HTTPS reverse proxy; see the README."""

TOKEN_ENV = "STYLIZE_TOKEN"


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    s.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 = any free port)")
    s.add_argument(
        "--token", nargs="?", const="", metavar="SECRET",
        help=f"required on every request (needed off localhost); alone: generate one, printed once; "
        f"${TOKEN_ENV} also sets it",
    )  # fmt: skip
    s.add_argument("--max-clients", type=int, default=4, help="clients served at once (default: %(default)s)")
    s.add_argument(
        "--idle-timeout", type=float, default=20, metavar="S",
        help="drop a client whose camera sent nothing for S seconds (default: %(default)s)",
    )  # fmt: skip
    s.add_argument(
        "--camera", default="640x480", metavar="WxH",
        help="the camera resolution the page asks browsers for (default: %(default)s)",
    )  # fmt: skip
    s.add_argument(
        "--ice-servers", metavar="FILE.json",
        help='STUN/TURN servers for clients behind NAT, as browsers write them: [{"urls": ..., '
        '"username": ..., "credential": ...}] (default: none, direct connections only)',
    )  # fmt: skip
    x = p.add_argument_group("live processing")
    x.add_argument("--smooth", action="store_true", help="new clients start with flicker smoothing on")
    x.add_argument("--depth", type=int, help="batches in flight on the GPU (default: 2 on CUDA, 1 on CPU)")
    add_model_arguments(p, style_help="styles of the gallery; a.jpg,b.jpg also works")
    add_size_arguments(p, size=False)


def run(args: argparse.Namespace) -> int:
    from engines.optional import require

    require("aiortc", "stylize serve")
    require("aiohttp", "stylize serve")
    from engines.styles import mix
    from engines.stylizer import Stylizer
    from stream.images import read_image, read_image_bytes
    from stream.serve.app import ServeOptions, run_server
    from stream.serve.gallery import Gallery
    from stream.serve.security import resolve_token
    from stream.serve.shared_stage import SharedStage

    args.style = [s for item in args.style for s in item.split(",") if s]
    check_model_arguments(args)
    token, generated = resolve_token(
        args.host, args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    )
    if not 0 <= args.port <= 65535:
        raise StylizeError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_clients < 1:
        raise StylizeError(f"--max-clients must be at least 1, got {args.max_clients}")
    if args.idle_timeout <= 0:
        raise StylizeError(f"--idle-timeout must be positive, got {args.idle_timeout:g}")
    if args.depth is not None and args.depth < 1:
        raise StylizeError(f"--depth must be at least 1, got {args.depth}")
    camera = _parse_size(args.camera)
    ice_servers = _load_ice_servers(args.ice_servers) if args.ice_servers else []
    pictures = [
        (Path(p).stem, read_image(p), read_image_bytes(p)) for p in args.style
    ]  # errors before loading

    model, bank = load_model_and_bank(args)
    gallery = Gallery(bank, max_styles=max(64, len(pictures) + 16))
    if args.style_weights:  # the mix of the given styles comes first
        styles = [bank.add(name, image, data) for name, image, data in pictures]
        key = json.dumps([[n for n, _, _ in pictures], args.style_weights]).encode()
        gallery.add_style(mix(styles, args.style_weights), None, key)
    for name, image, data in pictures:
        gallery.add_image(name, image, data, uploaded=False)
    engine = build_engine(args, model)
    if args.smooth and not engine.supports_content_hook:
        log.warning("flicker smoothing needs --backend torch; it is off with %s", engine.backend)
    stylizer = Stylizer(engine, gallery.first().stats, alpha=args.alpha, preserve_color=args.preserve_color)
    options = ServeOptions(
        host=args.host, port=args.port, token=token, max_side=args.max_side, max_clients=args.max_clients,
        idle_timeout=args.idle_timeout, camera=camera, ice_servers=ice_servers,
        engine_label=engine_label(engine), alpha=args.alpha, preserve_color=args.preserve_color,
        smoothing=args.smooth and engine.supports_content_hook,
    )  # fmt: skip

    def started(server) -> None:
        print(
            f"{engine_label(engine)}; {len(gallery)} style{'s' if len(gallery) != 1 else ''}; "
            f"up to {args.max_clients} client{'s' if args.max_clients != 1 else ''}",
            flush=True,
        )
        url = _public_url(args.host, server.port)
        if token is None:
            print(f"open {url} in a browser (Ctrl-C stops)", flush=True)
        elif generated:  # the only place this token is ever shown
            print(f"open {url}?token={token} in a browser (Ctrl-C stops)", flush=True)
        else:
            print(f"open {url}?token=YOUR_TOKEN in a browser (Ctrl-C stops)", flush=True)

    try:
        run_server(SharedStage(stylizer, depth=args.depth), gallery, options, started)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    return 0


def _public_url(host: str, port: int) -> str:
    """The address to open: the machine's name when listening on every interface."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise StylizeError(f"--camera must be WIDTHxHEIGHT, e.g. 640x480; got {text!r}") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise StylizeError(f"--camera must be between 16x16 and 7680x4320, got {text}")
    return w, h


def _load_ice_servers(path: str) -> list[dict]:
    try:
        servers = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise StylizeError(f"cannot read --ice-servers {path}: {e.strerror}") from None
    except ValueError as e:
        raise StylizeError(f"--ice-servers {path} is not JSON: {e}") from None
    if isinstance(servers, dict):
        servers = servers.get("iceServers", [servers])
    ok = isinstance(servers, list) and all(
        isinstance(s, dict)
        and isinstance(s.get("urls"), str | list)
        and set(s) <= {"urls", "username", "credential"}
        for s in servers
    )
    if not ok:
        raise StylizeError(
            f'--ice-servers {path}: expected a list like [{{"urls": "turn:host:3478", "username": "u", '
            '"credential": "p"}]'
        )
    return servers
