"""Shared fixtures: the handpose-eval folder (skip when absent) and small synthetic labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hpbench.data.specs import get_dataset
from hpbench.scoring import GroundTruth, find_eval_dir

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`-n 2`, see pyproject) each worker gets one of the cores: torch's default of
    # one thread per core would put two threads on each core, which stalls both (the suite took
    # longer on 2 workers x 2 threads than serially).
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    """The real ICVL/NYU test labels and published predictions; tests needing them skip without."""
    path = find_eval_dir()
    if path is None:
        pytest.skip("handpose-eval folder not found (set HPBENCH_EVAL_DIR)")
    return path


@pytest.fixture()
def one_thread():
    """One intra-op thread for the test: on the shared 2-core machine two threads of one training
    step stall each other (measured 5-25x slower for the baselines' small-crop training tests)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def small_icvl() -> GroundTruth:
    """A 40-frame ICVL-like test set with two named ranges of the real layout's shape."""
    rng = np.random.default_rng(0)
    spec = get_dataset("icvl")
    uvd = np.empty((40, spec.num_joints, 3))
    uvd[..., 0] = rng.uniform(100, 220, uvd.shape[:2])
    uvd[..., 1] = rng.uniform(60, 180, uvd.shape[:2])
    uvd[..., 2] = rng.uniform(300, 500, uvd.shape[:2])
    names = tuple(f"test_seq_1/image_{i:04d}.png" if i < 17 else f"test_seq_2/image_{i - 17:04d}.png" for i in range(40))
    return GroundTruth(dataset=spec, uvd=uvd, names=names, source=Path("synthetic"))


class GradientReach:
    """Which parameters a training loop's gradients reached, over all of its steps.

    A parameter counts once any step gives it a non-zero gradient. One step's gradient can be exactly zero
    for a connected parameter: an L1 loss gives a shared bias the sum of the residuals' signs, which is 0
    whenever as many residuals are positive as negative, and which side of zero a residual falls on depends
    on float rounding (thread count, instruction set). "Zero at the last step" is therefore a host-dependent
    assertion; "never reached in any step" is not.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.reached: set[str] = set()

    def record(self) -> None:
        """Call after each backward."""
        for name, p in self.model.named_parameters():
            if p.grad is not None and bool(p.grad.abs().sum() > 0):
                self.reached.add(name)

    @property
    def unreached(self) -> list[str]:
        return [name for name, _ in self.model.named_parameters() if name not in self.reached]


@pytest.fixture()
def gradient_reach():
    """``gradient_reach(model)`` -> a GradientReach recorder (see its docstring)."""
    return GradientReach


def small_synth_fixtures():
    """(synth_root, cache_dir, autouse crop-cache env) fixtures for a test module: a 48 + 16-frame synthetic
    set and a crop cache folder, both made once per module (assign them to module names to use them)."""
    from hpbench.data.synth import ensure_synthetic

    @pytest.fixture(scope="module")
    def synth_root(tmp_path_factory) -> Path:
        return ensure_synthetic("synth", tmp_path_factory.mktemp("synth"), frames=48, test_frames=16, seed=3)

    @pytest.fixture(scope="module")
    def cache_dir(tmp_path_factory) -> Path:
        return tmp_path_factory.mktemp("crops")

    @pytest.fixture(autouse=True)
    def _crop_cache(cache_dir, monkeypatch):
        monkeypatch.setenv("HPBENCH_CACHE_DIR", str(cache_dir))

    return synth_root, cache_dir, _crop_cache
