"""Optional dependencies: imported when a feature needs them, with the install line when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from engines.errors import StylizeError

#: module → the README's extra that installs it
EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "tensorrt": "trt",
    "pyvirtualcam": "vcam",
    "aiortc": "serve",
    "aiohttp": "serve",
    "playwright": "dev",
    "matplotlib": "dev",
    "ray": "ray",
}


def install_hint(module: str) -> str:
    """How the README installs ``module``: ``pip install -e ".[extra]"``."""
    return f'pip install -e ".[{EXTRAS.get(module, module)}]"'


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or a one-line StylizeError: '<purpose> needs <module>: <install line>'.

    Also catches a package that is installed but broken (a wheel whose native libraries fail to load).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        detail = "" if isinstance(e, ModuleNotFoundError) and e.name == module else f" ({e})"
        raise StylizeError(f"{purpose} needs {module}: {install_hint(module)}{detail}") from None
