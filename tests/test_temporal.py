"""Temporal consistency: the warping-error metric on motion with a known answer, the flow-guided method
on synthetic and real frames, scene cuts, every CPU backend through the pipeline stage, and the
``stylize eval`` / ``convert --temporal`` commands end to end on tiny clips.

Sizes are tiny (≤ 128 px) so the module stays well under a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import re

import av
import cv2
import numpy as np
import pytest
import torch

from engines.runtimes import make_engine
from engines.styles import StyleBank
from engines.stylizer import Stylizer
from engines.temporal import (
    FLOW_PLACES,
    DeviceFlowGuide,
    FlowGuide,
    TemporalFilter,
    resolve_flow_place,
    stabilize_cv,
    stabilize_torch,
)
from engines.warping import WarpingError, warping_error
from engines.weights import load_model
from host_traffic import HostTraffic
from stream.cli import main
from stream.cli.options import TEMPORAL_FLOW_CHOICES
from stream.frames import Frame
from stream.gpu_stage import GpuStage
from stream.images import read_image
from stream.video_source import VideoFileSource

H, W = 72, 96
STEP = (2, 1)  # pixels per frame (x, y) of the synthetic pan


def texture(seed: int, h: int = 160, w: int = 200) -> np.ndarray:
    """A smooth random colour texture (uint8 BGR): DIS finds its motion exactly."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    t = (t - t.min()) / (t.max() - t.min()) * 255
    return t.astype(np.uint8)


def pan(image: np.ndarray, n: int, size=(H, W), step=STEP) -> list[np.ndarray]:
    """``n`` windows of ``image`` moving by ``step`` pixels a frame (integer shifts: no resampling)."""
    h, w = size
    y, x = [10 + i * step[1] for i in range(n)], [10 + i * step[0] for i in range(n)]
    return [np.ascontiguousarray(image[y[i] : y[i] + h, x[i] : x[i] + w]) for i in range(n)]


def noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)[None].float() / 255


def to_u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).flip(-1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def filtered(inputs, outputs, temporal: TemporalFilter) -> list[np.ndarray]:
    """The method applied to given per-frame outputs (what the Stylizer does after its engine), its flow
    on the host (from the uint8 frame) or on the device (from the frame as a tensor: here the CPU's)."""

    def step(image, output):
        if temporal.host_flow:
            return temporal.apply(to_tensor(output), temporal.prepare(image))
        return temporal.apply(to_tensor(output), content=to_tensor(image))

    return [to_u8(step(i, o)) for i, o in zip(inputs, outputs, strict=True)]


# --- the metric -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["dis", "farneback"])
def test_warping_error_is_zero_for_true_motion_and_large_for_flicker(flow):
    frames = pan(texture(0), 6)
    clean = warping_error(frames, frames, flow=flow)
    flicker = warping_error(frames, noisy(frames, 10), flow=flow)
    # two frames of independent noise of σ = 10 grey levels: 2·3·(10/255)² ≈ 0.0092 per pixel
    assert clean < 2e-4, clean
    assert 0.005 < flicker < 0.02, flicker
    assert flicker > 50 * clean


def test_warping_error_skips_what_the_flow_cannot_see():
    frames = pan(texture(0), 4, step=(6, 0))
    meter = WarpingError()
    for f in frames:
        meter.add(f, f, noisy([f], 10)[0])
    result = meter.result()
    assert result.pairs == 3
    assert 0.8 < result.coverage < 0.97  # the 6 columns entering on the right each frame are not scored
    assert result.errors[0] < 2e-4 < result.errors[1]


def test_warping_error_needs_two_frames():
    with pytest.raises(ValueError, match="two frames"):
        WarpingError().result()


# --- the method on synthetic frames -----------------------------------------------------------------


@pytest.mark.parametrize("flow", FLOW_PLACES)
def test_blending_steadies_a_flickering_texture_without_washing_it_out(flow):
    inputs = pan(texture(1), 10)
    per_frame = noisy(inputs, 12, seed=3)  # a "stylizer" whose strokes change every frame
    out = filtered(inputs, per_frame, TemporalFilter(flow=flow))
    before, after = warping_error(inputs, per_frame), warping_error(inputs, out)
    assert after < 0.25 * before, (before, after)

    def detail(im):  # contrast of the finest band, where flicker and washing-out both live
        f = im.astype(np.float32)
        return float((f - cv2.GaussianBlur(f, (0, 0), 1.5)).std())

    assert np.mean([detail(o) for o in out[3:]]) > 0.8 * np.mean([detail(o) for o in per_frame[3:]])


@pytest.mark.parametrize("flow", FLOW_PLACES)
def test_a_scene_cut_starts_afresh_with_no_ghost(flow):
    a, b = pan(texture(1), 5), pan(texture(2), 4)
    inputs = a + b
    per_frame = noisy(inputs, 12, seed=4)
    temporal = TemporalFilter(flow=flow)
    out = filtered(inputs, per_frame, temporal)
    assert temporal.cuts == 1
    assert np.array_equal(out[0], per_frame[0])  # the first frame has no past
    assert not np.array_equal(out[4], per_frame[4])  # inside a shot the past is blended in
    assert np.array_equal(out[5], per_frame[5])  # the cut: exactly the new frame, nothing of the old scene
    assert not np.array_equal(out[6], per_frame[6])  # and the new shot is steadied again


def test_fade_is_not_a_cut():
    frames = pan(texture(1), 8)
    faded = [
        np.clip(f.astype(np.float32) * (0.4 + 0.08 * i), 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]
    host, device = FlowGuide(), DeviceFlowGuide()
    for f in faded:
        host(f)
        device(to_tensor(f))
    assert host.cuts == 0 and device.cuts == 0


@pytest.mark.parametrize("flow", FLOW_PLACES)
def test_reset_and_new_sizes_start_afresh(flow):
    temporal = TemporalFilter(flow=flow)
    small, large = pan(texture(1), 2), pan(texture(1), 2, size=(H + 8, W + 8))
    outs = [to_tensor(f) for f in small + large]
    results = filtered(small + large, [to_u8(o) for o in outs], temporal)
    assert np.array_equal(results[2], to_u8(outs[2])) and not np.array_equal(results[1], to_u8(outs[1]))
    temporal.reset()  # a new size is a new shot; so is a reset
    assert np.array_equal(filtered(large[1:], [to_u8(outs[3])], temporal)[0], to_u8(outs[3]))
    with pytest.raises(ValueError, match="strength"):
        TemporalFilter(strength=1.0)


def test_where_the_flow_runs():
    assert resolve_flow_place("auto", "cpu") == "host" and resolve_flow_place("auto", "cuda:1") == "device"
    assert resolve_flow_place("device", "cpu") == "device"
    assert TemporalFilter().host_flow and not TemporalFilter(flow="device").host_flow
    assert TEMPORAL_FLOW_CHOICES == ("auto", *FLOW_PLACES)  # the CLI's choices, spelled out there
    with pytest.raises(ValueError, match="flow must be one of"):
        TemporalFilter(flow="gpu")
    with pytest.raises(ValueError, match="needs the input frame"):
        TemporalFilter(flow="device").apply(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="runs on the device"):
        TemporalFilter(flow="device").prepare(np.zeros((8, 8, 3), np.uint8))


def test_opencv_and_torch_implementations_agree():
    """The CPU runs OpenCV's operators, CUDA torch's: the same method, up to edge rounding."""
    rng = np.random.default_rng(0)
    frames = pan(texture(5), 2)
    guide = FlowGuide()
    guide(frames[0])
    g = guide(frames[1])
    stylized = to_tensor(noisy([frames[1]], 10)[0])
    previous = to_tensor(noisy([frames[0]], 10, seed=1)[0])
    flow, conf = (
        g.flow[None],
        g.confidence[None]
        * torch.from_numpy(rng.uniform(0.5, 1, (1, 1) + g.confidence.shape[-2:]).astype(np.float32)),
    )
    a, b = stabilize_cv(stylized, previous, flow, conf), stabilize_torch(stylized, previous, flow, conf)
    assert float((a - b).abs().mean()) < 2e-3
    a, b = (
        stabilize_cv(stylized, previous, flow, conf, contrast=False),
        stabilize_torch(stylized, previous, flow, conf, contrast=False),
    )
    assert float((a - b).abs().max()) < 1 / 255  # OpenCV samples at 1/32 px: under one grey level


def test_the_gpu_blend_never_waits_for_the_device():
    """The torch blend (what CUDA runs after the network, every frame) neither copies from the host nor
    reads a value back, either of which would make the host wait for the GPU; checked on the CPU."""
    stylized, previous = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)
    flow, confidence = torch.randn(1, 2, 20, 28), torch.rand(1, 1, 20, 28)
    stabilize_torch(stylized, previous, flow, confidence)  # warm-up: cached grids and kernels
    with HostTraffic() as traffic:
        stabilize_torch(stylized, previous, flow, confidence)
    assert traffic.found == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_blends_like_the_cpu():
    inputs = pan(texture(1), 6)
    per_frame = noisy(inputs, 12, seed=3)
    cpu, cuda = TemporalFilter(), TemporalFilter()
    for image, output in zip(inputs, per_frame, strict=True):
        a = cpu.apply(to_tensor(output), cpu.prepare(image))
        b = cuda.apply(to_tensor(output).cuda(), cuda.prepare(image))
        assert b.device.type == "cuda" and float((a - b.cpu()).abs().mean()) < 1e-2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_device_flow_on_cuda_runs_in_a_graph_and_matches_the_cpu():
    """The CUDA graph of the flow is captured (not silently eager) and gives the CPU's result; a cut is
    still found on the device, with no ghost."""
    inputs = pan(texture(1), 5) + pan(texture(2), 3)
    per_frame = noisy(inputs, 12, seed=3)
    cpu, cuda = TemporalFilter(flow="device"), TemporalFilter(flow="device")
    outs = []
    for image, output in zip(inputs, per_frame, strict=True):
        with torch.inference_mode():  # as the Stylizer runs it
            a = cpu.apply(to_tensor(output), content=to_tensor(image))
            b = cuda.apply(to_tensor(output).cuda(), content=to_tensor(image).cuda())
        assert b.device.type == "cuda" and float((a - b.cpu()).abs().mean()) < 1e-2
        outs.append(b.cpu())
    assert cuda.cuts == cpu.cuts == 1
    assert torch.equal(outs[5], to_tensor(per_frame[5])) and not torch.equal(outs[4], to_tensor(per_frame[4]))
    graphs = list(cuda.guide._graphs.values())
    assert len(graphs) == 1 and graphs[0] is not None  # captured, replayed for every later frame


# --- real models, every CPU backend, the pipeline stage ------------------------------------------------


@pytest.fixture(scope="module")
def microast(shared_weights):
    return load_model("microast", weights=shared_weights)


@pytest.fixture(scope="module")
def starry(microast, shared_media):
    bank = StyleBank(microast, style_size=128, cache_dir=False)
    return bank.add("starry", read_image(shared_media / "style" / "starry_night.jpg")).stats


@pytest.fixture(scope="module")
def photo_pan(shared_media):
    """A slow pan over a real photo, then a hard cut to another one."""
    a = cv2.resize(
        read_image(shared_media / "content" / "cornell.jpg"), (160, 120), interpolation=cv2.INTER_AREA
    )
    b = cv2.resize(
        read_image(shared_media / "content" / "sailboat.jpg"), (160, 120), interpolation=cv2.INTER_AREA
    )
    return pan(a, 5, step=(3, 1)), pan(b, 2, step=(3, 1))


def _backends() -> list:
    params = []
    for name, module in (("torch", None), ("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        missing = module is not None and importlib.util.find_spec(module) is None
        params.append(
            pytest.param(name, marks=pytest.mark.skipif(missing, reason=f"{module} is not installed"))
        )
    return params


@pytest.mark.parametrize("backend", _backends())
def test_every_backend_blends_through_the_pipeline_stage(backend, microast, starry, photo_pan):
    shot, cut = photo_pan
    frames = [Frame(image, i) for i, image in enumerate(shot + cut)]
    engine = make_engine(backend, microast, device="cpu", precision="fp32")
    per_frame = Stylizer(engine, starry)([f.image for f in frames])
    stylizer = Stylizer(engine, starry, temporal=True)
    stage = GpuStage(stylizer)
    out = [r.image for f in frames for r in stage([f])] + [r.image for r in stage.flush()]

    assert np.array_equal(out[0], per_frame[0])
    assert all(not np.array_equal(o, p) for o, p in zip(out[1:5], per_frame[1:5], strict=True))
    assert np.array_equal(out[5], per_frame[5]) and stylizer.temporal.cuts == 1  # the cut: no ghost
    assert warping_error(shot, out[:5]) < 0.5 * warping_error(shot, per_frame[:5])


def test_the_device_flow_needs_no_host_frames(device, microast, starry, photo_pan, monkeypatch):
    """``flow="device"`` through the pipeline stage (on CUDA: its streams, depth 2, the flow's CUDA
    graph): no host guide is computed, the result is steadied, and the cut is found on the device."""
    shot, cut = photo_pan
    frames = [Frame(image, i) for i, image in enumerate(shot + cut)]
    engine = make_engine("torch", microast, device=device, precision="fp32")
    plain = Stylizer(engine, starry)
    per_frame = [plain([f.image])[0] for f in frames]  # batches of one, as the stage runs them
    temporal = TemporalFilter(flow="device")
    monkeypatch.setattr(temporal, "prepare", lambda image: pytest.fail("a host guide was computed"))
    stylizer = Stylizer(engine, starry, temporal=temporal)
    stage = GpuStage(stylizer)
    out = [r.image for f in frames for r in stage([f])] + [r.image for r in stage.flush()]
    tolerance = 0 if device.type == "cpu" else 1  # CUDA: another stream, maybe another kernel choice

    def same(a, b) -> bool:
        return int(np.abs(a.astype(np.int16) - b).max()) <= tolerance

    assert same(out[0], per_frame[0]) and same(out[5], per_frame[5])  # first frame; the cut: no ghost
    assert temporal.cuts == 1 and not same(out[4], per_frame[4])
    assert warping_error(shot, out[:5]) < 0.5 * warping_error(shot, per_frame[:5])
    if device.type == "cuda":
        assert [g is not None for g in temporal.guide._graphs.values()] == [True]  # captured once, replayed


def test_the_python_api_takes_frames_in_order(microast, starry, photo_pan):
    shot, _ = photo_pan
    engine = make_engine("torch", microast, device="cpu", precision="fp32")
    one_call = Stylizer(engine, starry, temporal=True)(shot)
    stylizer = Stylizer(engine, starry, temporal=TemporalFilter())
    frame_by_frame = [stylizer([f])[0] for f in shot]
    assert all(np.array_equal(a, b) for a, b in zip(one_call, frame_by_frame, strict=True))


@pytest.mark.parametrize("flow", FLOW_PLACES)
def test_live_toggle_and_a_new_style_start_afresh(flow, microast, shared_media, photo_pan):
    from stream.controls import LiveControls, keys_help
    from stream.live import LiveProcess

    bank = StyleBank(microast, style_size=128, cache_dir=False)
    styles = [
        bank.add(n, read_image(shared_media / "style" / f"{n}.jpg")) for n in ("starry_night", "la_muse")
    ]
    engine = make_engine("torch", microast, device="cpu", precision="fp32")
    shot, _ = photo_pan
    plain = [Stylizer(engine, s.stats)(shot) for s in styles]
    controls = LiveControls([s.name for s in styles])
    live = LiveProcess(Stylizer(engine, styles[0].stats), styles, controls, depth=1, temporal_flow=flow)

    def step(i: int) -> np.ndarray:
        return live([Frame(shot[i], i)])[0].image

    assert np.array_equal(step(0), plain[0][0]) and live.stylizer.temporal is None
    controls.toggle_temporal()
    assert np.array_equal(step(1), plain[0][1])  # switched on: starts from the current picture
    assert not np.array_equal(step(2), plain[0][2]) and live.stylizer.temporal.host_flow == (flow == "host")
    controls.next_style()
    assert np.array_equal(step(3), plain[1][3])  # the new style at once, not blended in
    assert not np.array_equal(step(4), plain[1][4])
    controls.toggle_temporal()
    assert np.array_equal(step(4), plain[1][4]) and live.stylizer.temporal is None
    assert " t " in f" {keys_help()} ".replace("\n", " ")


# --- the commands ------------------------------------------------------------------------------------


def write_clip(path, frames: list[np.ndarray], fps: int = 12) -> None:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"crf": "0"}  # lossless: the test sees the pixels it wrote
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("temporal")
    frames = pan(texture(7), 8)
    write_clip(folder / "in.mp4", frames)
    write_clip(folder / "flicker.mp4", noisy(frames, 10))
    return folder


def _numbers(text: str, label: str) -> list[float]:
    line = next(x for x in text.splitlines() if x.strip().startswith(label))
    return [float(x) for x in re.findall(r"\d+\.\d+(?:e[+-]\d+)?", line)]


def test_eval_reports_the_error_its_floor_and_the_style_distance(clips, shared_weights, shared_media, capsys):
    style = str(shared_media / "style" / "starry_night.jpg")
    metric = str(shared_weights / "vgg16-imagenet")
    code = main(
        [
            "eval",
            str(clips / "in.mp4"),
            str(clips / "flicker.mp4"),
            "--style",
            style,
            "--metric-weights",
            metric,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    error, times, floor = _numbers(out, "warping error")[:3]
    assert floor < 2e-4 and 0.004 < error < 0.02 and times > 20
    assert "8 frames" in out and "style distance" in out
    assert main(["eval", str(clips / "in.mp4"), str(clips / "in.mp4"), "--flow", "farneback"]) == 0


def test_eval_refuses_bad_input_in_one_line(clips, tmp_path, capsys):
    assert main(["eval", str(clips / "in.mp4"), str(tmp_path / "missing.mp4")]) == 1
    assert main(["eval", str(clips / "in.mp4"), str(clips / "in.mp4"), "--frames", "1"]) == 1
    assert main(["eval", str(clips / "in.mp4"), str(clips / "in.mp4"), "--style", str(clips / "in.mp4"),
                 "--metric-weights", str(tmp_path)]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("stylize: error: ") for line in err), err


def test_convert_temporal_end_to_end(clips, tmp_path, shared_weights, shared_media, capsys):
    style = str(shared_media / "style" / "starry_night.jpg")
    common = ["--style", style, "--weights", str(shared_weights / "microast"), "--precision", "fp32", "-q"]
    src = str(clips / "in.mp4")
    assert main(["convert", src, str(tmp_path / "plain.mp4"), "--no-temporal", *common]) == 0
    assert main(["convert", src, str(tmp_path / "steady.mp4"), *common]) == 0  # --temporal is the default
    device = ["--temporal-flow", "device"]  # a GPU's default, here on the CPU
    assert main(["convert", src, str(tmp_path / "device.mp4"), *device, *common]) == 0
    outputs = {}
    for name in ("plain", "steady", "device"):
        with VideoFileSource(tmp_path / f"{name}.mp4") as v:
            outputs[name] = [f.image for f in v]
    assert [len(v) for v in outputs.values()] == [8, 8, 8]
    inputs = pan(texture(7), 8)
    plain = warping_error(inputs, outputs["plain"])
    assert warping_error(inputs, outputs["steady"]) < plain
    assert warping_error(inputs, outputs["device"]) < plain


def test_bench_temporal_writes_its_rows(clips, tmp_path, shared_weights, shared_media):
    import json

    out = tmp_path / "cpu.json"
    args = ["bench", "--temporal", "--models", "microast", "--device", "cpu"]
    args += ["--video", str(clips / "in.mp4")]
    args += ["--e2e-frames", "6", "--repeats", "1", "--weights", str(shared_weights), "--out", str(out), "-q"]
    args += ["--style", str(shared_media / "style" / "starry_night.jpg"), "--temporal-flow", "host,device"]
    assert main([*args, "--metric-weights", str(shared_weights / "vgg16-imagenet")]) == 0
    doc = json.loads(out.read_text())
    assert [r["temporal_flow"] for r in doc["results"]] == ["host", "device"]  # one row each
    for row in doc["results"]:
        assert row["kind"] == "temporal" and row["status"] == "ok" and row["frames"] == 6
        errors = row["warping_error"]
        assert errors["input"] < errors["temporal"] < errors["per_frame"]
        assert 0 < row["warping_ratio"] < 1 and 0 < row["warping_ratio_farneback"] < 1
        assert row["style_ratio"] > 0 and row["fps_ratio"] > 0 and len(row["fps_runs"]["temporal"]) == 1
        assert row["cut"]["equal_to_per_frame"] and row["cut"]["first_frame_of_new_shot"] == 235
    assert doc["temporal_settings"]["temporal_frames"] == 6


def test_bench_temporal_on_frames_without_error_reports_no_ratio(
    clips, tmp_path, shared_weights, shared_media
):
    """A black clip (Big Buck Bunny opens with a fade from black) has no warping error to reduce: the
    row says so (ratios None, printed "-") instead of failing on a division by zero."""
    import json

    black = tmp_path / "black.mp4"
    with av.open(str(black), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for _ in range(4):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")))
        c.mux(s.encode())
    out = tmp_path / "cpu.json"
    args = ["bench", "--temporal", "--models", "microast", "--device", "cpu", "--video", str(black)]
    args += ["--e2e-frames", "4", "--repeats", "1", "--weights", str(shared_weights), "--out", str(out), "-q"]
    args += ["--style", str(shared_media / "style" / "starry_night.jpg")]
    args += ["--metric-weights", str(shared_weights / "vgg16-imagenet")]
    assert main(args) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["status"] == "ok" and row["warping_error"]["per_frame"] == 0
    assert row["warping_ratio"] is None and row["warping_ratio_farneback"] is None
