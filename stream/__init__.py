"""Everything that moves frames: sources -> pipeline -> sinks.

Frames travel as :class:`stream.frames.Frame` objects whose pixels are H×W×3 uint8 **BGR**
(OpenCV's order, which PyAV can decode to and encode from directly). Conversion to the
networks' RGB float happens in the engine, on its device.
"""

# OpenCV before PyAV, always: both wheels bundle FFmpeg libraries, and when PyAV's are loaded first,
# OpenCV's Qt window (cv2.namedWindow) spins forever (seen with av 18.1 and opencv-python 5.0). Every
# module that imports av lives in this package, so importing cv2 here fixes the order for all of them.
import cv2  # noqa: E402, F401  (imported for its side effect: load order)
