"""engines.cuda_graph.capture: replays what it captured, and a failed capture leaves the caller's stream
current. CUDA only (a graph cannot exist without a GPU); run by benchmarks/device_check.sh."""

import subprocess
import sys
import textwrap

import pytest
import torch

from engines.cuda_graph import capture

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_a_replay_reads_the_refilled_inputs():
    x, scale = torch.ones(4, 8, device="cuda"), {"s": torch.full((), 2.0, device="cuda")}
    graph, out = capture(lambda x, stats: (x * stats["s"]).sum(dim=1), x, scale)
    x.copy_(torch.arange(32.0, device="cuda").view(4, 8))
    scale["s"].fill_(3.0)
    graph.replay()
    assert torch.equal(out, 3 * torch.arange(32.0, device="cuda").view(4, 8).sum(dim=1))


def test_a_failed_capture_restores_the_callers_stream_and_eager_work_goes_on():
    """A host sync inside the capture invalidates it. In a child process: should the failure leave the
    CUDA context unusable, it must not take the rest of this test session with it."""
    script = textwrap.dedent(
        """
        import torch
        from engines.cuda_graph import capture

        mine = torch.cuda.Stream()
        x = torch.arange(6.0, device="cuda")
        with torch.cuda.stream(mine):
            try:
                capture(lambda x: x * (x.sum().item() > 0), x)  # .item(): not capturable
            except RuntimeError:
                pass
            else:
                raise SystemExit("the capture did not fail")
            assert torch.cuda.current_stream() == mine, torch.cuda.current_stream()
            y = (x * 2).sum().item()  # the eager fallback on the caller's stream
        assert y == 30.0, y
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
