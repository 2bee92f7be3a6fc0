"""The virtual camera sink's errors, with the real pyvirtualcam (a dev dependency).

No test machine has a virtual camera device (v4l2loopback needs a kernel module), so what can be
checked here is that its absence is one clear error, not a crash.
"""

import sys

import pytest

from engines.errors import StylizeError
from stream.vcam import VirtualCameraSink


def test_no_virtual_camera_device_is_a_clear_error():
    pytest.importorskip("pyvirtualcam")
    try:
        sink = VirtualCameraSink(64, 48, 30)
    except StylizeError as e:
        assert "no virtual camera device available" in str(e)
        assert "\n" not in str(e)
    else:  # a machine with a real loopback device: it must open and accept a frame
        sink.close()


def test_missing_pyvirtualcam_says_how_to_install(monkeypatch):
    # Simulates an install without the optional extra (the package itself is installed for the test above).
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(StylizeError, match=r'pip install -e "\.\[vcam\]"'):
        VirtualCameraSink(64, 48, 30)
