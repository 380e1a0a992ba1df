"""Every baseline fits a handful of synthetic hand crops: the target encoding, decoding, loss and
gradients work together (reduced widths and grids so that each fits in CPU seconds)."""

from __future__ import annotations

import pytest
import torch

import hpbench
from hpbench.data.cache import CropDataset, CropSettings, open_crop_cache
from hpbench.data.synth import ensure_synthetic
from hpbench.models.trinet import TriHornNet
from hpbench.models.v2v import V2VPoseNet

CUBE_MM = 280.0
CROPS = 4

# name -> (builder of a reduced model, crop size px, steps, peak learning rate, error bar mm). The bar is
# 12 mm for the regressors; V2V at a 24^3 grid decodes 12^3 heatmaps of 23.3 mm voxels, and its bar is the
# 3D half-voxel diagonal (sqrt(3) x 11.7 mm): what argmax decoding of a perfect heatmap may leave.
BASELINES = {
    "trinet": (lambda: TriHornNet(num_joints=16, input_size=64, width=64, hourglass_depth=3), 64, 100, 3e-3, 12.0),
    "v2v": (lambda: V2VPoseNet(num_joints=16, input_size=24, grid=24), 24, 120, 1e-2, 20.2),
    "a2j@resnet18": (lambda: hpbench.create_model("a2j@resnet18", num_joints=16, input_size=64), 64, 100, 1e-3,
                     12.0),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synthetic("synth", tmp_path_factory.mktemp("synth"), frames=CROPS, test_frames=1, seed=5)


def hand_crops(root, size_px: int, cache_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``CROPS`` synthetic training crops at ``size_px``: depth (N, 1, S, S), joints (N, 16, 3)."""
    cache = open_crop_cache("synth", "train", CropSettings(size_px=size_px, cube_mm=CUBE_MM), data_root=root,
                            cache_dir=cache_dir)
    items = [CropDataset(cache)[i] for i in range(CROPS)]
    return torch.stack([item["depth"] for item in items]), torch.stack([item["joints"] for item in items])


def error_mm(output: torch.Tensor, target: torch.Tensor, size_px: int) -> float:
    """Mean 3D distance in crop space, mm: u, v px times the cube's mm per px, d times half the cube."""
    scale = output.new_tensor([CUBE_MM / size_px, CUBE_MM / size_px, CUBE_MM / 2])
    return ((output - target) * scale).norm(dim=-1).mean().item()


def precise_eval(model: torch.nn.Module, depth: torch.Tensor) -> torch.Tensor:
    """Eval-mode output after BN statistics are set to the exact ones of ``depth`` ("precise BN")."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train()
        model(depth)
        model.eval()
        return model(depth)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_overfits_a_handful_of_synthetic_crops(name, synth_root, tmp_path):
    build, size, steps, lr, bar_mm = BASELINES[name]
    depth, target = hand_crops(synth_root, size, tmp_path)
    torch.manual_seed(0)
    model = build()
    model.eval()
    with torch.no_grad():
        before = error_mm(model(depth), target, size)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(model.forward_train(depth), target).backward()
        optimizer.step()
        schedule.step()
    after = error_mm(precise_eval(model, depth), target, size)
    assert after < 0.25 * before, f"{name}: {before:.1f} mm -> {after:.1f} mm"
    assert after < bar_mm, f"{name}: {before:.1f} mm -> {after:.1f} mm"
