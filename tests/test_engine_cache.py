"""EngineCache: key derivation, cross-process locking, corruption detection, list/clear."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import time
from functools import partial
from pathlib import Path

import pytest

from engines.engine_cache import EngineCache, EngineSettings


def _settings(**changes) -> EngineSettings:
    base = EngineSettings(
        onnx_sha256="ab" * 32,
        trt_version="10.3.0",
        gpu_name="NVIDIA GeForce RTX 4090",
        compute_capability=(8, 9),
        min_shape=(1, 3, 176, 320),
        opt_shape=(1, 3, 720, 1280),
        max_shape=(1, 3, 720, 1280),
        precision="fp16",
    )
    return dataclasses.replace(base, **changes)


#: one different value per field; the test below fails if a field is added without an entry here
_CHANGED = {
    "onnx_sha256": "cd" * 32,
    "trt_version": "11.0.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": (9, 0),
    "min_shape": (1, 3, 184, 320),
    "opt_shape": (1, 3, 736, 1280),
    "max_shape": (1, 3, 1088, 1920),
    "precision": "fp32",
}


def test_every_field_has_a_changed_value():
    assert set(_CHANGED) == {f.name for f in dataclasses.fields(EngineSettings)}


def test_same_settings_same_key():
    a, b = _settings(), _settings()
    assert a is not b and a.key() == b.key()
    assert len(a.key()) == 64 and set(a.key()) <= set("0123456789abcdef")


@pytest.mark.parametrize("field", sorted(_CHANGED))
def test_key_changes_with_each_field(field):
    changed = _settings(**{field: _CHANGED[field]})
    assert changed.key() != _settings().key()
    # and only that field differs, so it is this field that moved the key
    assert [f.name for f in dataclasses.fields(EngineSettings)
            if getattr(changed, f.name) != getattr(_settings(), f.name)] == [field]  # fmt: skip


def test_settings_round_trip_through_json():
    s = _settings()
    again = EngineSettings.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.key() == s.key()


def test_get_or_build_builds_once_then_reuses(tmp_path):
    cache = EngineCache(tmp_path)
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"engine-bytes"

    assert cache.get_or_build(_settings(), build) == b"engine-bytes"
    assert cache.get_or_build(_settings(), build) == b"engine-bytes"
    assert len(calls) == 1
    assert cache.path_for(_settings()).read_bytes() == b"engine-bytes"
    meta = json.loads(cache.sidecar_for(_settings()).read_text())
    assert meta["size"] == 12 and meta["sha256"] == hashlib.sha256(b"engine-bytes").hexdigest()
    assert meta["settings"] == _settings().to_dict() and meta["created"]
    assert not list(tmp_path.glob("*.tmp"))


def test_different_settings_get_different_files(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(_settings(), lambda: b"a")
    cache.get_or_build(_settings(precision="fp32"), lambda: b"b")
    assert cache.path_for(_settings()) != cache.path_for(_settings(precision="fp32"))
    assert cache.load(_settings()) == b"a" and cache.load(_settings(precision="fp32")) == b"b"


def _damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-3])


def _damage_flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_flip_byte], ids=["truncated", "corrupt-byte"])
def test_damaged_engine_is_rebuilt(tmp_path, damage):
    cache = EngineCache(tmp_path)
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"0123456789" * 10

    cache.get_or_build(_settings(), build)
    damage(cache.path_for(_settings()))
    assert cache.load(_settings()) is None
    assert cache.get_or_build(_settings(), build) == b"0123456789" * 10
    assert len(calls) == 2
    assert cache.load(_settings()) == b"0123456789" * 10


def test_missing_sidecar_is_rebuilt(tmp_path):
    cache = EngineCache(tmp_path)
    calls = []
    cache.get_or_build(_settings(), lambda: calls.append(1) or b"engine")
    cache.sidecar_for(_settings()).unlink()
    assert cache.load(_settings()) is None
    assert cache.get_or_build(_settings(), lambda: calls.append(1) or b"engine") == b"engine"
    assert len(calls) == 2


def test_garbled_sidecar_is_rebuilt(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(_settings(), lambda: b"engine")
    cache.sidecar_for(_settings()).write_text("{not json")
    assert cache.load(_settings()) is None
    assert cache.get_or_build(_settings(), lambda: b"rebuilt") == b"rebuilt"


def test_failed_build_leaves_nothing(tmp_path):
    cache = EngineCache(tmp_path)

    def boom() -> bytes:
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        cache.get_or_build(_settings(), boom)
    assert cache.load(_settings()) is None and cache.list() == []
    assert cache.get_or_build(_settings(), lambda: b"ok") == b"ok"


def test_list_and_clear(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    assert cache.list() == [] and cache.clear() == 0  # root not created yet
    cache.get_or_build(_settings(), lambda: b"one")
    cache.get_or_build(_settings(precision="fp32"), lambda: b"two!")
    cache.timing_cache_path(_settings()).write_bytes(b"timing")
    entries = cache.list()
    assert sorted(e["size"] for e in entries) == [3, 4]
    assert {e["key"] for e in entries} == {_settings().key(), _settings(precision="fp32").key()}
    assert {EngineSettings.from_dict(e["settings"]) for e in entries} == {
        _settings(),
        _settings(precision="fp32"),
    }
    assert cache.clear() == 2
    assert cache.list() == []
    assert not list((tmp_path / "engines").glob("*.engine"))
    assert not cache.timing_cache_path(_settings()).exists()


def test_timing_cache_is_per_trt_version_and_gpu_not_per_model(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.timing_cache_path(_settings())
    assert path.parent == tmp_path
    assert cache.timing_cache_path(_settings(onnx_sha256="cd" * 32, max_shape=(1, 3, 64, 64))) == path
    assert cache.timing_cache_path(_settings(gpu_name="other")) != path
    assert cache.timing_cache_path(_settings(trt_version="11.0.0")) != path


def test_default_root_is_the_user_cache_dir():
    import platformdirs

    assert EngineCache().root == Path(platformdirs.user_cache_dir("adain-stream")) / "engines"


# --- two real processes contending for one key ---------------------------------------------------


def _slow_build(counter: Path) -> bytes:
    with counter.open("a") as f:
        f.write("built\n")
    time.sleep(1.0)  # long enough that the other process arrives mid-build
    return b"engine-from-" + str(multiprocessing.current_process().pid).encode()


def _worker(root: str, counter: str, barrier, results) -> None:
    barrier.wait()
    data = EngineCache(root).get_or_build(_settings(), partial(_slow_build, Path(counter)))
    results.put(data)


def test_two_processes_build_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    counter = tmp_path / "builds.txt"
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path / "cache"), str(counter), barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert counter.read_text() == "built\n"
    assert got[0] == got[1] and got[0].startswith(b"engine-from-")
    assert EngineCache(tmp_path / "cache").load(_settings()) == got[0]
