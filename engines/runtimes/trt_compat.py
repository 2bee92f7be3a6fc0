"""The one place that knows which TensorRT is installed and how its Python API differs by version.

Everything else imports TensorRT through :func:`import_tensorrt` (so the package imports without it)
and goes through the helpers here for anything that changed between 10.x and 11.x:

- Network creation: 10.x needs ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` to get a strongly
  typed network (``EXPLICIT_BATCH`` is ignored there and gone in 11.x); 11.x networks are always
  strongly typed and the flag is deprecated and ignored, so we pass no flags.
- Precision: ``BuilderFlag.FP16`` (weak typing) is removed in 11.x. We never use it, on either
  version: an fp16 engine comes from an fp16 ONNX graph built as a strongly typed network, so 10.x
  and 11.x build the same thing from the same file.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from engines.atomic import write_atomic
from engines.errors import StylizeError
from engines.optional import install_hint, require

log = logging.getLogger("engines.tensorrt")

MIN_MAJOR = 10
INSTALL_HINT = f"{install_hint('tensorrt')} (needs an NVIDIA GPU and driver)"


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, with a one-line StylizeError when it is missing or older than 10.x."""
    tensorrt = require("tensorrt", "the TensorRT backend (needs an NVIDIA GPU and driver)")
    major = version(tensorrt)[0]
    if major < MIN_MAJOR:
        raise StylizeError(
            f"TensorRT {tensorrt.__version__} is too old (need {MIN_MAJOR}.x or newer): {INSTALL_HINT}"
        )
    return tensorrt


def version(trt: ModuleType | None = None) -> tuple[int, ...]:
    """The installed TensorRT version as integers, e.g. ``(10, 3, 0)`` from ``"10.3.0.post1"``."""
    text = (trt or import_tensorrt()).__version__
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


@functools.cache
def logger() -> Any:
    """A process-wide ``trt.ILogger`` that forwards to :mod:`logging` and remembers recent errors.

    TensorRT wants one logger per process; routing it through ``logging`` keeps library code
    print-free, and the remembered errors let a failed build say why in its StylizeError.
    """
    trt = import_tensorrt()
    sev = trt.ILogger.Severity
    levels = {
        sev.INTERNAL_ERROR: logging.CRITICAL,
        sev.ERROR: logging.ERROR,
        sev.WARNING: logging.WARNING,
        sev.INFO: logging.DEBUG,  # TensorRT's INFO is build chatter
        sev.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: deque[str] = deque(maxlen=5)

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity, logging.DEBUG)
            if level >= logging.ERROR:
                self.errors.append(msg)
            log.log(level, "%s", msg)

    return _Logger()


def recent_errors() -> str:
    """The last few errors TensorRT logged, joined on one line (empty if none); clears them."""
    errors = logger().errors
    text = " | ".join(errors)
    errors.clear()
    return text


def create_network(builder: Any) -> Any:
    """A strongly typed network on every supported version (see the module docstring)."""
    trt = import_tensorrt()
    if version(trt)[0] >= 11:
        return builder.create_network(0)
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


def set_workspace_limit(config: Any, nbytes: int) -> None:
    """Cap the builder's scratch memory so a build does not take the whole GPU."""
    trt = import_tensorrt()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))


def load_timing_cache(config: Any, path: Path | None) -> None:
    """Attach the timing cache at ``path`` to ``config``; an unreadable or foreign one starts empty.

    The timing cache only speeds builds up, so a corrupt file or one from another device (rejected
    because ``ignore_mismatch=False``: the docs warn mixed-device caches can cause bugs) must never
    fail a build.
    """
    data = b""
    if path is not None and path.is_file():
        data = path.read_bytes()
    try:
        cache = config.create_timing_cache(data)
        if config.set_timing_cache(cache, ignore_mismatch=False):
            return
    except Exception as exc:  # TensorRT raises plain RuntimeError/TypeError on bad bytes
        log.warning("ignoring unusable TensorRT timing cache %s: %s", path, exc)
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def merge_timing_cache(config: Any, path: Path | None) -> None:
    """Add ``config``'s timings to the file at ``path`` (call under the cache's lock).

    Another process may have built in the meantime: re-read the file, ``combine`` it into ours, then
    write atomically, so parallel builds add their timings instead of the last writer's winning.
    """
    if path is None:
        return
    ours = config.get_timing_cache()
    if path.is_file():
        try:
            theirs = config.create_timing_cache(path.read_bytes())
            ours.combine(theirs, ignore_mismatch=False)  # a foreign cache is not merged, not an error
        except Exception as exc:  # bad bytes: TensorRT raises RuntimeError/TypeError
            log.warning("replacing unusable TensorRT timing cache %s: %s", path, exc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, bytes(memoryview(ours.serialize())))


def parser_errors(parser: Any) -> list[str]:
    """The ONNX parser's errors as readable lines (operator and node name where TensorRT gives them)."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = ""
        if hasattr(err, "node_name"):  # 10.x added node names and operators to parser errors
            op, name = err.node_operator(), err.node_name()
            where = f"{op} node '{name}': " if name or op else ""
        lines.append(f"{where}{err.desc()}")
    return lines


_DTYPE_NAMES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
}


@functools.cache
def _dtype_table() -> dict[Any, torch.dtype]:
    trt = import_tensorrt()
    return {getattr(trt.DataType, n): t for n, t in _DTYPE_NAMES.items() if hasattr(trt.DataType, n)}


def torch_dtype(trt_dtype: Any) -> torch.dtype:
    """The torch dtype for a ``trt.DataType``; StylizeError for types torch cannot hold (FP8, INT4…)."""
    try:
        return _dtype_table()[trt_dtype]
    except KeyError:
        raise StylizeError(f"TensorRT tensor type {trt_dtype} has no torch equivalent") from None


def trt_dtype(dtype: torch.dtype) -> Any:
    """The ``trt.DataType`` for a torch dtype."""
    for trt_type, torch_type in _dtype_table().items():
        if torch_type == dtype:
            return trt_type
    raise StylizeError(f"torch dtype {dtype} has no TensorRT equivalent")
