"""Where the project keeps what it downloads, builds and caches: one root, one sub-folder per kind."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "adain-stream"


def cache_dir(kind: str) -> Path:
    """``<user cache dir>/adain-stream/<kind>`` (``~/.cache/adain-stream/<kind>`` on Linux).

    Kinds in use: ``weights``, ``styles``, ``engines`` (TensorRT plans), ``ort-trt`` (onnxruntime's
    TensorRT provider). platformdirs honours ``XDG_CACHE_HOME``.
    """
    return Path(platformdirs.user_cache_dir(APP_NAME)) / kind
