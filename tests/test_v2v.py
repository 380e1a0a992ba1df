"""V2V-PoseNet (hpbench.models.v2v): cost against design/baselines.md, voxelization, heatmap code, loss, steps."""

from __future__ import annotations

import copy

import pytest
import torch

import hpbench
from hpbench.models.v2v import V2VPoseNet, decode_heatmaps, encode_heatmaps, voxelize
from hpbench.profile import count_parameters, exact_macs, thop_macs, unused_parameters

# design/baselines.md, measured on the original code at 88^3: J -> (params, thop GMAC, exact conv GMAC)
PUBLISHED = {14: (3_410_222, 38.434e9), 16: (3_410_288, 38.440e9)}
EXACT_MACS_J14 = 36.380e9


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.mark.parametrize("num_joints", [14, 16])
def test_cost_matches_the_original(num_joints):
    params, macs = PUBLISHED[num_joints]
    model = hpbench.create_model("v2v", num_joints=num_joints)
    assert model.grid == 88 and model.input_size == 88
    assert count_parameters(model) == pytest.approx(params, rel=0.005)
    assert thop_macs(model, torch.zeros(1, 1, 88, 88)) == pytest.approx(macs, rel=0.02)  # real 88^3 forward, ~3 s


def test_exact_macs_and_every_parameter_used_on_meta():
    model = hpbench.create_model("v2v", num_joints=14)
    example = torch.zeros(1, 1, 88, 88)
    assert exact_macs(model, example) == pytest.approx(EXACT_MACS_J14, rel=0.005)  # thop's 8x deconv overcount gone
    assert unused_parameters(model, example) == []  # voxelization and decoding run on the meta device too


def test_voxelization_marks_foreground_pixels_only():
    depth = torch.ones(1, 1, 8, 8)  # background everywhere
    depth[0, 0, 2, 5] = -1.0  # v = 2, u = 5, nearest face of the cube
    depth[0, 0, 7, 0] = 0.99  # far face
    depth[0, 0, 0, 0] = -1.5  # in front of the cube: ignored
    volume = voxelize(depth, 16)  # 2 voxels per pixel in x, y
    assert volume.shape == (1, 1, 16, 16, 16) and volume.sum().item() == 2
    assert volume[0, 0, 0, 5, 11] == 1 and volume[0, 0, 15, 15, 1] == 1  # (z, y, x): voxel floor((px + 0.5) G / S)


@pytest.mark.parametrize("refine", [False, True])
def test_gaussian_targets_decode_to_their_ground_truth(refine):
    torch.manual_seed(0)
    size, cells = 88, 44
    joints = torch.rand(3, 5, 3) * torch.tensor([size - 1.0, size - 1.0, 1.9]) - torch.tensor([0.0, 0.0, 0.95])
    decoded = decode_heatmaps(encode_heatmaps(joints, cells, size, sigma=1.7), size, refine=refine)
    half_voxel = torch.tensor([size / cells / 2, size / cells / 2, 1 / cells])  # px, px, normalized depth
    error = (decoded - joints).abs()
    assert (error <= half_voxel + 1e-5).all()
    if refine:  # the log-parabola step recovers a Gaussian's centre
        assert error.max() < 1e-3


def test_loss_needs_its_forward_and_respects_the_mask():
    model = V2VPoseNet(num_joints=2, input_size=32, grid=16)
    depth = torch.rand(2, 1, 32, 32) * 2 - 1
    target = torch.tensor([[16.0, 16.0, 0.0], [3.0, 28.0, 0.5]]).expand(2, 2, 3)
    with torch.no_grad():
        output = model(depth)
    with pytest.raises(RuntimeError, match="heatmaps"):
        model.loss(output, target)
    output = model(depth)
    full = model.loss(output, target)
    only_first = model.loss(output, target, torch.tensor([[True, False], [True, False]]))
    per_joint = (model.last_heatmaps - encode_heatmaps(target, 8, 32)).pow(2).flatten(2).mean(-1)
    assert full.item() == pytest.approx(per_joint.mean().item(), rel=1e-5)
    assert only_first.item() == pytest.approx(per_joint[:, 0].mean().item(), rel=1e-5)
    copy.deepcopy(model)  # the kept heatmaps (a graph) do not travel with copies


def test_a_few_steps_reduce_the_loss(gradient_reach):
    torch.manual_seed(0)
    model = V2VPoseNet(num_joints=3, input_size=32, grid=32)  # 32^3 grid for speed; same layers
    depth = torch.rand(4, 1, 32, 32) * 2 - 1
    target = torch.rand(1, 3, 3) * torch.tensor([24.0, 24.0, 1.0]) + torch.tensor([4.0, 4.0, -0.5])
    target = target + torch.randn(4, 3, 3) * torch.tensor([1.0, 1.0, 0.02])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    reach = gradient_reach(model)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = model.loss(model(depth), target)
        loss.backward()
        reach.record()
        optimizer.step()
        losses.append(loss.item())
    assert reach.unreached == []
    assert losses[-1] < 0.7 * losses[0]
