"""``stylize train``: the paper's losses, a real (short) run, resume, signals, bad input, DDP on gloo.

Runs are tiny (64 px crops, a few generated images) so the module stays well under a minute on two
cores; the CD-16x encoder comes from ../shared, plumbing tests use a random-weights AdaINNet. They run
on one thread: batches this small gain nothing from a second, and on a shared, oversubscribed machine
OpenMP's spinning barrier made a 50 ms step take 2.7 s with two.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.adain import mean_std
from engines.device import BF16_ENV, cpu_bf16_native, training_precision
from engines.errors import StylizeError
from engines.models.adain_vgg import ENCODER_CONVS, AdaINNet, mirror_widths
from engines.training import checkpoint
from engines.training.data import PairBatches, resize_and_crop, to_tensor
from engines.training.distributed import Processes
from engines.training.loop import TrainConfig, Trainer, build_network, train
from engines.training.losses import LAYER_ENDS, DecoderLoss, content_loss, encode_layers, style_loss
from engines.weights import load_encoder, load_model
from stream.cli import main
from stream.images import read_image

REPO = Path(__file__).resolve().parents[1]
PAPER_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512)
TINY_WIDTHS = (4, 4, 8, 8, 8, 8, 8, 8, 16)
#: the short run every CLI test shares: 64 px crops, batch 2, images read in the main process (a spawned
#: worker costs seconds of imports; the tests about workers ask for one)
RUN = ["--batch", "2", "--load-size", "72", "--crop", "64", "--workers", "0", "--log-every", "1"]


def _images(folder: Path, n: int, noisy: bool, seed: int) -> Path:
    """Smooth random colour fields (content) or the same with grain (style), small and varied in size."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        image = cv2.resize(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), (96 + 8 * i, 80), cv2.INTER_CUBIC)
        if noisy:
            image = (image + rng.integers(-60, 60, image.shape)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train-data")
    return _images(root / "content", 4, False, 0), _images(root / "style", 4, True, 1)


def _args(data, out: Path, *extra: str, weights: Path | None = None) -> list[str]:
    content, style = data
    args = ["train", "--content", str(content), "--style", str(style), "--out", str(out), *RUN, *extra]
    if weights is not None:
        args += ["--model", "adain-cd16x", "--weights", str(weights)]
    return args


@pytest.fixture(scope="module")
def trained(data, shared_weights, tmp_path_factory) -> Path:
    """30 steps of the CD-16x decoder from scratch, through the command (checkpoint every 10 steps)."""
    out = tmp_path_factory.mktemp("run") / "decoder"
    every = ("--save-every", "10", "--sample-every", "10")
    code = main(
        _args(data, out, "--steps", "30", "--lr", "2e-3", *every, "--workers", "1", weights=shared_weights)
    )
    assert code == 0
    return out


def _rows(out: Path) -> list[dict]:
    with open(out / checkpoint.CSV_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def _tiny(seed: int = 0) -> AdaINNet:
    torch.manual_seed(seed)
    return AdaINNet(TINY_WIDTHS, mirror_widths(TINY_WIDTHS), name="adain")


def _same(a, b) -> bool:
    """Nested state dicts equal, tensors exactly."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# --- losses -----------------------------------------------------------------------------------------


def test_style_layers_are_the_relus_after_the_papers_convs():
    net = _tiny()
    for end, conv in zip(
        LAYER_ENDS, (ENCODER_CONVS[0], ENCODER_CONVS[2], ENCODER_CONVS[4], ENCODER_CONVS[8]), strict=True
    ):
        assert isinstance(net.encoder[end - 1], torch.nn.ReLU) and end - 2 == conv
    x = torch.rand(2, 3, 32, 32)
    feats = encode_layers(net.encoder, x)
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert torch.equal(feats[-1], net.encoder(x))


def test_losses_measure_what_the_paper_says():
    feats = [torch.rand(2, c, s, s) * 3 for c, s in ((4, 16), (8, 8), (8, 4), (16, 2))]
    assert style_loss(feats, feats).item() == 0
    shifted = [f + 1 for f in feats]  # same σ, every μ + 1: the loss is 1 per layer
    assert style_loss(shifted, feats).item() == pytest.approx(4.0, rel=1e-5)
    assert content_loss(feats[0], feats[0] + 2).item() == pytest.approx(4.0)
    half = [f.to(torch.bfloat16) for f in feats]
    assert (
        style_loss(half, feats).dtype == torch.float32
        and content_loss(half[0], feats[0]).dtype == torch.float32
    )
    assert mean_std(half[0])[0].dtype == torch.float32


def test_a_fresh_decoder_mirrors_the_encoder(shared_weights):
    assert mirror_widths(PAPER_WIDTHS) == (512, 256, 256, 256, 256, 128, 128, 64, 64, 3)
    fresh = load_encoder("adain-cd16x", shared_weights)
    published = load_model("adain-cd16x", shared_weights)
    assert {k: v.shape for k, v in fresh.decoder.state_dict().items()} == {
        k: v.shape for k, v in published.decoder.state_dict().items()
    }
    assert _same(fresh.encoder.state_dict(), published.encoder.state_dict())


def test_init_model_starts_from_the_published_decoder(shared_weights, tmp_path):
    config = TrainConfig(model="adain-cd16x", init="model")
    net = build_network(config, tmp_path, shared_weights, None)
    assert _same(net.decoder.state_dict(), load_model("adain-cd16x", shared_weights).decoder.state_dict())


# --- data -------------------------------------------------------------------------------------------


def test_batches_resume_where_they_stopped_and_processes_never_share_a_sample():
    plain = iter(PairBatches(5, 3, 4, seed=7))
    first = [next(plain) for _ in range(6)]
    resumed = iter(PairBatches(5, 3, 4, seed=7, start_step=4))
    assert next(resumed) == first[4]
    keys = [
        key
        for rank in (0, 1)
        for _, b in zip(range(3), PairBatches(5, 3, 4, 7, 0, rank, 2), strict=False)
        for key in b
    ]
    assert sorted(k for _, _, k in keys) == list(range(24))
    epoch = [c for c, _, _ in first[0] + first[1]][:5]
    assert sorted(epoch) == [0, 1, 2, 3, 4]  # every content image once per epoch


# --- a real run ------------------------------------------------------------------------------------


def _fixed_batch_loss(net: AdaINNet, data) -> float:
    """The paper's total loss on all the images at once, centre crops: the same batch before and after."""

    def batch(folder: Path) -> torch.Tensor:
        crops = [to_tensor(resize_and_crop(read_image(p), 72, 64, None)) for p in sorted(folder.iterdir())]
        return torch.stack(crops).float() / 255

    with torch.no_grad():
        loss_c, loss_s = DecoderLoss(net)(batch(data[0]), batch(data[1]))
    return (loss_c + 10 * loss_s).item()


def test_thirty_steps_lower_the_loss_and_log_every_step(trained, data, shared_weights):
    torch.manual_seed(0)  # the run's --seed: the same fresh decoder it started from
    before = _fixed_batch_loss(load_encoder("adain-cd16x", shared_weights), data)
    after = _fixed_batch_loss(load_model("adain-cd16x", weights=trained), data)
    assert after < 0.93 * before
    rows = _rows(trained)
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert all(float(r["total"]) > 0 for r in rows)
    assert float(rows[-1]["lr"]) == pytest.approx(2e-3 / (1 + 5e-5 * 29), rel=1e-5)
    grids = sorted(p.name for p in (trained / checkpoint.SAMPLES_DIR).iterdir())
    assert grids == ["step_0000010.png", "step_0000020.png", "step_0000030.png"]
    assert read_image(trained / checkpoint.SAMPLES_DIR / grids[-1]).shape == (5 * 64, 5 * 64, 3)


def test_the_output_folder_is_a_model_folder(trained, data, tmp_path, capsys):
    model = load_model("adain-cd16x", weights=trained)  # the registry's checks, as for downloaded weights
    state = torch.load(trained / checkpoint.STATE_FILE, map_location="cpu", weights_only=True)
    assert state["step"] == 30 and state["model"] == "adain-cd16x"
    assert _same(model.decoder.state_dict(), state["decoder"])
    content, style = data
    out = tmp_path / "stylized.png"
    code = main(
        ["image", str(content / "img0.png"), "-o", str(out), "--style", str(style / "img1.png"),
         "--model", "adain-cd16x", "--weights", str(trained)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert read_image(out).shape == (80, 96, 3)


def test_resume_continues_at_the_step_with_the_same_optimizer_state(trained, data, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(trained, out)
    state = checkpoint.check_output(out, "adain-cd16x", resume=True, overwrite=False)
    config = TrainConfig.from_dict(state["config"])
    net = build_network(config, out, None, state)  # the encoder from --out itself
    trainer = Trainer(net, config, [], [], out, read_image, Processes(), state)
    assert trainer.step == 30
    assert _same(trainer.optimizer.state_dict(), state["optimizer"])
    assert _same(net.decoder.state_dict(), state["decoder"])

    assert main(["train", "--out", str(out), "--resume", "--steps", "33", "--workers", "0"]) == 0
    assert "step 33/33" in capsys.readouterr().out
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 34))
    assert rows[:30] == _rows(trained)
    assert torch.load(out / checkpoint.STATE_FILE, weights_only=True)["step"] == 33


def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    content = sorted(data[0].iterdir())
    style = sorted(data[1].iterdir())
    config = TrainConfig(steps=6, batch_size=2, load_size=40, crop_size=32, workers=0, log_every=1, samples=0)
    start = _tiny()
    whole = train(config, content, style, tmp_path / "whole", read_image, net=copy.deepcopy(start))
    assert whole.step == 6
    half = TrainConfig(**{**config.to_dict(), "steps": 3})
    train(half, content, style, tmp_path / "halves", read_image, net=copy.deepcopy(start))
    state = checkpoint.check_output(tmp_path / "halves", "adain", resume=True, overwrite=False)
    resumed = train(
        config, content, style, tmp_path / "halves", read_image, net=copy.deepcopy(start), state=state
    )
    assert (resumed.start_step, resumed.step) == (3, 6)
    a = torch.load(tmp_path / "whole" / checkpoint.STATE_FILE, weights_only=True)
    b = torch.load(tmp_path / "halves" / checkpoint.STATE_FILE, weights_only=True)
    for key in a["decoder"]:
        torch.testing.assert_close(a["decoder"][key], b["decoder"][key], rtol=1e-5, atol=1e-7)
    assert _rows(tmp_path / "whole")[-1]["total"] == _rows(tmp_path / "halves")[-1]["total"]
    written = load_model("adain", weights=tmp_path / "whole")  # the paper's layout: vgg_normalised + decoder
    assert _same(written.decoder.state_dict(), a["decoder"])


def test_bf16_autocast_on_the_cpu_trains(data, tmp_path):
    config = TrainConfig(steps=2, batch_size=2, load_size=40, crop_size=32, workers=0, log_every=1,
                         samples=0, precision="bf16")  # fmt: skip
    result = train(
        config, sorted(data[0].iterdir()), sorted(data[1].iterdir()), tmp_path, read_image, net=_tiny()
    )
    assert result.precision == "bf16" and np.isfinite(result.last_loss)


def test_training_precision_follows_the_device_rules(monkeypatch):
    cpu = torch.device("cpu")
    with monkeypatch.context() as env:
        for forced, expected in (("0", "fp32"), ("1", "bf16")):
            env.setenv(BF16_ENV, forced)
            cpu_bf16_native.cache_clear()
            assert training_precision("auto", cpu) == expected
    cpu_bf16_native.cache_clear()  # the rest of the suite sees its own setting again
    assert training_precision("bf16", cpu) == "bf16"
    with pytest.raises(StylizeError, match="fp16 needs a CUDA device"):
        training_precision("fp16", cpu)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_autocast_trains_and_saves_its_scaler(data, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = TrainConfig(steps=3, batch_size=2, load_size=40, crop_size=32, workers=1, log_every=1,
                         samples=2, sample_every=3, precision=precision, device="cuda")  # fmt: skip
    result = train(
        config, sorted(data[0].iterdir()), sorted(data[1].iterdir()), tmp_path, read_image, net=_tiny()
    )
    assert (
        result.precision == precision and result.device.startswith("cuda") and np.isfinite(result.last_loss)
    )
    state = torch.load(tmp_path / checkpoint.STATE_FILE, weights_only=True)
    assert bool(state["scaler"]) == (precision == "fp16")
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in state["decoder"].values())


# --- signals, processes ----------------------------------------------------------------------------


def _python(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_sigterm_saves_a_loadable_checkpoint_and_exits_143(data, shared_weights, tmp_path):
    out = tmp_path / "decoder"
    endless = ("--steps", "100000", "--save-every", "100000", "--workers", "1", "-v")
    proc = _python("-m", "stream", *_args(data, out, *endless, weights=shared_weights))
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "step 2/" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(90), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
    reader.join(60)  # the reader owns stderr to its end: communicate() must not take lines from it
    stdout = proc.stdout.read()
    proc.wait(60)
    err = "".join(lines)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    step = torch.load(out / checkpoint.STATE_FILE, weights_only=True)["step"]
    assert step >= 2 and f"step {step}/100000" in stdout
    load_model("adain-cd16x", weights=out)
    assert not list(out.glob(".*partial*"))


def test_ddp_with_one_gloo_process_trains_like_one_plain_process(data, shared_weights, tmp_path):
    small = ("--steps", "3", "--batch", "2", "--load-size", "40", "--crop", "32", "--samples", "0")
    proc = _python(
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
        "-m", "stream", *_args(data, tmp_path / "ddp", *small, weights=shared_weights),
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "1 process (DDP over gloo)" in stdout
    assert main(_args(data, tmp_path / "plain", *small, weights=shared_weights)) == 0
    ddp = torch.load(tmp_path / "ddp" / checkpoint.STATE_FILE, weights_only=True)
    plain = torch.load(tmp_path / "plain" / checkpoint.STATE_FILE, weights_only=True)
    assert ddp["step"] == plain["step"] == 3
    for key in plain["decoder"]:
        torch.testing.assert_close(ddp["decoder"][key], plain["decoder"][key], rtol=1e-5, atol=1e-7)
    load_model("adain-cd16x", weights=tmp_path / "ddp")


# --- bad input -------------------------------------------------------------------------------------


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _unreadable(tmp: Path) -> Path:
    (tmp / "bad").mkdir()
    (tmp / "bad" / "a.jpg").write_bytes(b"not a picture")
    (tmp / "bad" / "b.png").write_bytes(b"\x89PNG broken")
    return tmp / "bad"


@pytest.mark.parametrize(
    "content, out, extra, message",
    [
        (_empty, None, [], "no images in folder"),
        (_unreadable, None, [], "none of the 2 content images"),
        (lambda tmp: tmp / "missing", None, [], "--content"),
        (None, "trained", ["--model", "adain"], "holds a training checkpoint of model 'adain-cd16x'"),
        (None, "trained", [], "already holds a checkpoint"),
        (None, "foreign", [], "holds files of model 'microast'"),
        (None, None, ["--crop", "60"], "--crop must be a multiple of 8"),
        (None, "trained", ["--resume", "--lr", "0.5"], "differs from the checkpoint's"),
    ],
)
def test_bad_input_is_one_line(content, out, extra, message, data, trained, shared_weights, tmp_path, capsys):
    target = {"trained": trained, None: tmp_path / "new"}.get(out)
    if out == "foreign":
        target = tmp_path / "foreign"
        target.mkdir()
        (target / "decoder_iter_160000.pth.tar").write_bytes(b"x")
    folders = (content(tmp_path) if content else data[0], data[1])
    args = _args(folders, target, "--steps", "2", weights=shared_weights)
    if "--model" in extra:
        args = args[: args.index("--model")] + extra
    else:
        args += extra
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    if out is None:
        assert not target.exists()


def test_a_corrupt_image_in_a_folder_is_skipped_and_counted(data, shared_weights, tmp_path, capsys):
    content = tmp_path / "content"
    shutil.copytree(data[0], content)
    (content / "zz_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    assert main(_args((content, data[1]), tmp_path / "out", "--steps", "3", weights=shared_weights)) == 0
    err = capsys.readouterr().err
    assert "skipped an unreadable image" in err and "zz_broken.jpg" in err
    assert "1 unreadable image(s) were skipped" in err


def test_resuming_needs_a_checkpoint_and_keeps_the_run_defining_values(tmp_path):
    with pytest.raises(Exception, match="no checkpoint"):
        checkpoint.check_output(tmp_path, "adain", resume=True, overwrite=False)
    saved = TrainConfig(lr=1e-4, steps=10)
    assert saved.resumed({"steps": 20, "workers": 0, "lr": 1e-4}).steps == 20
    with pytest.raises(Exception, match="--batch 4 differs"):
        saved.resumed({"batch_size": 4})


def test_the_training_benchmark_counts_and_times_an_iteration():
    from benchmarks.training import flops_per_iteration, iterations_per_second

    paper = AdaINNet(PAPER_WIDTHS, mirror_widths(PAPER_WIDTHS))
    assert flops_per_iteration(paper, 8, 256) == pytest.approx(1.752e12, rel=1e-3)
    rates = iterations_per_second(_tiny(), batch=2, size=32, warmup=1, runs=2, steps=1)
    assert len(rates) == 2 and all(r > 0 for r in rates)
