"""The virtual camera sink's errors, with the real pyvirtualcam (a dev dependency).

No test machine has a virtual camera device (v4l2loopback needs a kernel module), so what can be
checked here is that its absence is one clear error, not a crash.
"""

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
    import builtins

    real_import = builtins.__import__

    def no_pyvirtualcam(name, *args, **kwargs):
        if name == "pyvirtualcam":
            raise ImportError("No module named 'pyvirtualcam'")
        return real_import(name, *args, **kwargs)

    # Simulates an install without the optional extra (the package itself is installed for the test above).
    monkeypatch.setattr(builtins, "__import__", no_pyvirtualcam)
    with pytest.raises(StylizeError, match=r"pip install 'adain-stream\[vcam\]'"):
        VirtualCameraSink(64, 48, 30)
