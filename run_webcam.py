#!/usr/bin/env python3
"""Live webcam stylization: ``python run_webcam.py --style a.jpg,b.jpg``, the same as ``stylize live``.

Opens the default camera and a window; every given style is preloaded, and keys switch between them
live. Optional outputs: a virtual camera (for video calls and streaming software) and a recording.
``--help`` lists the options and keys.
"""

import sys

from stream.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="run_webcam.py", command="live"))
