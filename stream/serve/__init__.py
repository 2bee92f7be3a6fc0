"""``stylize serve``: the browser's camera in, the server's GPU stylizes, the stream goes back (WebRTC).

One engine serves every client. Each client gets a live :class:`stream.pipeline.Pipeline` of its own
(its newest camera frame → the shared stage → its outgoing track), so a slow client drops its own
stale frames and never delays another; :class:`SharedStage` is one worker thread over one
:class:`stream.gpu_stage.GpuStage` that takes the clients' frames in turn, each with that client's
style, α, colours and smoothing.

Modules: ``shared_stage`` (the one engine), ``session`` (one client: settings, pipeline),
``gallery`` (styles encoded once, uploads), ``security`` (token, hosts, upload checks) — none of
them needs aiortc; ``tracks`` (aiortc tracks ↔ the pipeline) and ``app`` (the aiohttp server and
signalling) do. The page is ``static/``.
"""
