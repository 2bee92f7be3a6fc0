"""Where weights are found, how downloads are verified, and what a user sees when they are missing."""

import dataclasses
import shutil

import pytest

from engines import weights
from engines.errors import StylizeError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """A private user cache directory (platformdirs honours XDG_CACHE_HOME) and no STYLIZE_WEIGHTS."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    return tmp_path / "xdg-cache"


def _copy_model(root, dest, name="microast"):
    shutil.copytree(root / name, dest / name)
    return dest / name


def test_weights_dir_may_be_the_model_folder_or_a_root(tiny_weights):
    by_root = weights.resolve("microast", weights=tiny_weights)
    by_folder = weights.resolve("microast", weights=tiny_weights / "microast")
    assert by_root == by_folder
    assert all(p.is_file() for p in by_root.values())


def test_explicit_weights_dir_without_the_files_is_an_error(tmp_path):
    with pytest.raises(StylizeError, match="--weights .*content_encoder_iter_160000.pth.tar"):
        weights.resolve("microast", weights=tmp_path)


def test_environment_root_then_user_cache(tiny_weights, tmp_path, monkeypatch, isolated_cache):
    env_root = tmp_path / "env"
    _copy_model(tiny_weights, env_root)
    monkeypatch.setenv(weights.ENV_VAR, str(env_root))
    assert next(iter(weights.resolve("microast").values())).parent == env_root / "microast"

    monkeypatch.delenv(weights.ENV_VAR)
    cached = _copy_model(tiny_weights, weights.cache_dir())
    assert weights.cache_dir().is_relative_to(isolated_cache)
    assert next(iter(weights.resolve("microast", download=False).values())).parent == cached


def test_missing_and_offline_names_files_and_the_three_ways(monkeypatch):
    dead = {
        name: dataclasses.replace(spec, files=tuple(
            dataclasses.replace(f, url="http://127.0.0.1:9/" + f.name) for f in spec.files))
        for name, spec in weights.REGISTRY.items()
    }  # fmt: skip
    monkeypatch.setattr(weights, "REGISTRY", dead)
    with pytest.raises(StylizeError) as err:
        weights.resolve("adain", progress=False)
    message = str(err.value)
    assert "\n" not in message
    for part in ("vgg_normalised.pth", "decoder.pth", "--weights", weights.ENV_VAR, str(weights.cache_dir())):
        assert part in message
    assert not any(weights.cache_dir().glob("**/*partial*"))


def test_download_is_verified_then_renamed(tiny_weights, monkeypatch):
    """Downloads from file:// URLs of random files: real urllib, real sha256 (theirs) and load checks."""
    spec = weights.REGISTRY["adain-cd16x"]
    folder = tiny_weights / "adain-cd16x"
    files = tuple(
        dataclasses.replace(f, url=(folder / f.name).as_uri(), sha256=weights.sha256_file(folder / f.name))
        for f in spec.files
    )
    local = dataclasses.replace(spec, files=files)
    monkeypatch.setitem(weights.REGISTRY, "adain-cd16x", local)
    model = weights.load_model("adain-cd16x", progress=False)
    assert model.name == "adain-cd16x"
    target = weights.cache_dir() / "adain-cd16x"
    assert sorted(p.name for p in target.iterdir()) == ["4SD.pth", "4SE.pth"]


def test_download_with_wrong_checksum_leaves_nothing(tiny_weights, monkeypatch):
    f = weights.REGISTRY["adain-cd16x"].files[0]
    bad = dataclasses.replace(f, url=(tiny_weights / "adain-cd16x" / "4SE.pth").as_uri())  # not the published
    dest = weights.cache_dir() / "adain-cd16x" / f.name
    with pytest.raises(StylizeError, match="sha256"):
        weights.download_file(bad, dest, progress=False)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("name", ["adain-cd16x", "microast"])  # the models ../shared holds
def test_the_real_files_pass_the_download_checks(shared_weights, name):
    """The published sha256 (and the size and load checks) accept the real files in ../shared."""
    for f in weights.REGISTRY[name].files:
        assert f.sha256, f"{f.name} has no published sha256"
        weights.check_file(f, shared_weights / name / f.name)
    assert weights.load_model(name, weights=shared_weights).name == name


def test_non_checkpoint_file_gets_a_one_line_error(tmp_path):
    path = tmp_path / "decoder.pth"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(StylizeError, match="not a loadable PyTorch checkpoint"):
        weights.load_state_dict(path)


def test_unknown_model_lists_the_choices():
    with pytest.raises(StylizeError, match="adain, adain-cd16x, microast"):
        weights.load_model("vgg")


class _CodeOnLoad:
    """Pickles as "call open(marker, 'w')": loading it with plain pickle would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["torch.save", "pickle"])
def test_pickle_that_runs_code_is_refused_in_one_line_without_running(fmt, tmp_path):
    import pickle

    import torch

    marker, path = tmp_path / "MARKER", tmp_path / "4SE.pth"
    payload = {"model": _CodeOnLoad(marker)}
    if fmt == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(StylizeError) as err:
        weights.load_state_dict(path)
    message = str(err.value)
    assert not marker.exists()
    assert "refused" in message and "io.open" in message
    assert "\n" not in message and "\x1b" not in message and "weights_only" not in message


def test_explicit_weights_dir_wins_over_the_environment_and_cache(shared_weights, tmp_path, monkeypatch):
    """An explicit folder lacking the files is an error even where STYLIZE_WEIGHTS and the cache have them."""
    monkeypatch.setenv(weights.ENV_VAR, str(shared_weights))
    _copy_model(shared_weights, weights.cache_dir(), "adain-cd16x")
    assert weights.candidate_dirs("adain-cd16x", tmp_path) == [tmp_path, tmp_path / "adain-cd16x"]
    with pytest.raises(StylizeError, match="--weights"):
        weights.resolve("adain-cd16x", weights=tmp_path)
    with pytest.raises(StylizeError, match="it holds model 'microast'; choose it with --model"):
        weights.resolve("adain-cd16x", weights=shared_weights / "microast")
