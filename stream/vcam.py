"""A sink that feeds a virtual camera, so Zoom/Meet/OBS can use the stylized stream as a webcam.

pyvirtualcam is an optional extra (``pip install -e ".[vcam]"``) and needs a virtual camera device:
v4l2loopback on Linux, OBS's virtual camera (or Unity Capture) on Windows and macOS.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from engines.errors import StylizeError
from engines.optional import require
from stream.frames import Frame

_NO_DEVICE_HELP = {
    "linux": "load v4l2loopback: sudo modprobe v4l2loopback devices=1 exclusive_caps=1",
    "darwin": "install OBS Studio and start its virtual camera once",
    "win32": "install OBS Studio (or Unity Capture) and start its virtual camera once",
}


class VirtualCameraSink:
    """Sends BGR frames to a virtual camera of ``width``×``height`` at ``fps``.

    Frames of another size are resized to the camera's (a virtual camera's format is fixed when it
    opens, and the stylizer may round sizes to its network's multiple). ``device`` picks one device
    where several exist (e.g. ``/dev/video2``).
    """

    def __init__(self, width: int, height: int, fps: float, device: str | None = None) -> None:
        pyvirtualcam = require("pyvirtualcam", "virtual camera output")
        self.size = (width, height)
        try:
            self._cam = pyvirtualcam.Camera(
                width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR, device=device
            )
        except RuntimeError as e:  # pyvirtualcam's way of saying "no usable device"
            help_ = _NO_DEVICE_HELP.get(sys.platform, "install a virtual camera driver")
            raise StylizeError(f"no virtual camera device available ({e}); {help_}") from None
        self.device: str = self._cam.device
        self._closed = False

    def write(self, frame: Frame) -> None:
        image = frame.image
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._cam.send(np.ascontiguousarray(image))  # no sleep_until_next_frame(): the pipeline paces

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cam.close()
