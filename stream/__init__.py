"""Everything that moves frames: sources -> pipeline -> sinks.

Frames travel as :class:`stream.frames.Frame` objects whose pixels are H×W×3 uint8 **BGR**
(OpenCV's order, which PyAV can decode to and encode from directly). Conversion to the
networks' RGB float happens in the engine, on its device.
"""
