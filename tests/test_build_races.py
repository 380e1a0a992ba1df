"""Issue 17: synthetic renders and crop caches survive kills, truncation and two builders at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpbench.data.cache import CropSettings, open_crop_cache
from hpbench.data.synth import BUILDING, MARKER, ensure_synthetic, synthesize

SIZES = {"frames": 4, "test_frames": 2, "seed": 3, "workers": 1}


def test_a_truncated_cache_is_rebuilt(tmp_path):
    root = ensure_synthetic("synth", tmp_path / "root", **SIZES)
    settings = CropSettings(size_px=32)
    fresh = open_crop_cache("synth", "test", settings, data_root=root, cache_dir=tmp_path / "fresh")
    first = open_crop_cache("synth", "test", settings, data_root=root, cache_dir=tmp_path / "cache")
    with open(first.path, "r+b") as handle:  # a kill or a full disk mid-write
        handle.truncate(first.path.stat().st_size // 2)
    del first
    again = open_crop_cache("synth", "test", settings, data_root=root, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.crops, fresh.crops)
    np.testing.assert_array_equal(again.joints, fresh.joints)
    assert not list((tmp_path / "cache").glob("*.partial-*"))


def test_an_interrupted_render_is_rebuilt_and_a_foreign_folder_refused(tmp_path):
    root = tmp_path / "root"
    synthesize("synth", root, frames=4, test_frames=2, seed=3, workers=1)
    (root / MARKER).unlink()
    (root / BUILDING).touch()  # what a render killed before its marker leaves
    assert ensure_synthetic("synth", root, **SIZES) == root
    assert (root / MARKER).is_file() and not (root / BUILDING).exists()
    (root / MARKER).unlink()  # files without either: not known to be hpbench's, kept as they are
    with pytest.raises(FileExistsError, match="not empty and holds no"):
        ensure_synthetic("synth", root, **SIZES)
    assert any(root.iterdir())


def _ensure(root: str) -> tuple[int, int]:
    path = ensure_synthetic("synth", root, frames=24, test_frames=8, seed=3, workers=1)
    stat = (path / MARKER).stat()
    return stat.st_ino, stat.st_mtime_ns


def test_two_processes_render_a_new_root_once(tmp_path):
    root = tmp_path / "shared"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_ensure, [str(root), str(root)])
    stat = (root / MARKER).stat()
    assert results == [(stat.st_ino, stat.st_mtime_ns)] * 2  # one render, the second process reused it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared", "shared.lock"]


def test_a_killed_render_leaves_nothing_that_breaks_the_next(tmp_path):
    root = tmp_path / "killed"
    script = ("import sys; from hpbench.data.synth import ensure_synthetic; "
              "ensure_synthetic('synth', sys.argv[1], frames=400, test_frames=100, seed=3, workers=1)")
    child = subprocess.Popen([sys.executable, "-c", script, str(root)])
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".killed.building-") for p in tmp_path.iterdir()):  # rendering has begun
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (root / MARKER).exists()
    assert ensure_synthetic("synth", root, **SIZES) == root  # the lock died with the child
    assert (root / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".killed.")]  # its leftovers removed
