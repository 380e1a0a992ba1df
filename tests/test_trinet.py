"""TriHorn-Net (hpbench.models.trinet): cost against design/baselines.md, its read-out, its loss, a few steps."""

from __future__ import annotations

import pytest
import torch

import hpbench
from hpbench.models.layers import pixel_centres, soft_argmax
from hpbench.models.trinet import PreActBottleneck, TriHornNet
from hpbench.profile import count_parameters, exact_macs, thop_macs

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# design/baselines.md, measured on the original code: J -> (params, thop GMAC)
PUBLISHED = {14: (7_808_967, 13.431e9), 16: (7_810_001, 13.435e9)}
CONV_LINEAR_MACS_J14 = 13.294e9


@pytest.mark.parametrize("num_joints", [14, 16])
def test_cost_matches_the_original(num_joints):
    params, macs = PUBLISHED[num_joints]
    model = hpbench.create_model("trinet", num_joints=num_joints).eval()
    assert count_parameters(model) == pytest.approx(params, rel=0.005)
    # Exactly the original's count less its J unused softmax temperatures (card: excluded_params).
    assert count_parameters(model) == params - num_joints
    assert thop_macs(model, torch.zeros(1, 1, 128, 128)) == pytest.approx(macs, rel=0.02)


def test_exact_macs_are_conv_linear_plus_the_depth_pooling():
    model = hpbench.create_model("trinet", num_joints=14)
    pooling = 14 * 64 * 64 * 64  # (J x hw) @ (hw x D)
    assert exact_macs(model, torch.zeros(1, 1, 128, 128)) == pytest.approx(CONV_LINEAR_MACS_J14 + pooling, rel=0.005)


def test_heads_and_blocks_have_the_original_layout():
    model = TriHornNet(num_joints=14)

    def blocks(module):
        return sum(isinstance(b, PreActBottleneck) for b in module.modules())

    assert blocks(model.trunk.hourglass) == 2 * (3 * 4 + 1)
    assert (blocks(model.uv_head), blocks(model.depth_head), blocks(model.attention_head)) == (3, 3, 1)
    assert model.beta.detach().eq(0.5).all() and model.depth_regressor.in_features == 64


@pytest.mark.parametrize("u, v", [(0.0, 0.0), (37.3, 90.8), (127.0, 64.5)])
def test_a_one_hot_heatmap_decodes_to_its_ground_truth(u, v):
    # Encode: the 64 x 64 cell holding (u, v) of the 128 crop gets a high logit; decode with the model's read-out.
    model = TriHornNet(num_joints=1)
    x, y = int((u + 0.5) / 2), int((v + 0.5) / 2)
    logits = torch.zeros(1, 1, 64, 64)
    logits[0, 0, y, x] = 50.0
    uv, probs = soft_argmax(model._sharpen(logits), 128)
    assert probs.sum().item() == pytest.approx(1.0)
    centres = pixel_centres(64, 128, like=logits)
    assert uv[0, 0].tolist() == pytest.approx([centres[x].item(), centres[y].item()], abs=1e-3)
    assert (uv[0, 0] - torch.tensor([u, v])).abs().max() <= 1.0  # half a 2-px cell


def test_fused_attention_follows_beta():
    model = TriHornNet(num_joints=2, input_size=32)
    uv, aux = torch.randn(1, 2, 16, 16), torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        model.beta.copy_(torch.tensor([1.0, 0.0]))
    fused = model.fused_attention(uv, aux)
    assert torch.allclose(fused[0, 0], aux[0, 0].flatten().softmax(0).view(16, 16), atol=1e-6)
    assert torch.allclose(fused[0, 1], uv[0, 1].flatten().softmax(0).view(16, 16), atol=1e-6)


def test_loss_is_l1_in_px_and_mm_and_ignores_masked_and_outside_joints():
    model = TriHornNet(num_joints=3, input_size=32, cube_mm=280.0)
    output = torch.zeros(1, 3, 3)
    target = torch.tensor([[[3.0, 0.0, 0.1], [5.0, 5.0, 1.0], [-4.0, 0.0, 0.0]]])  # 3rd joint outside the crop
    assert model.loss(output, target, torch.tensor([[True, False, True]])).item() == pytest.approx((3 + 14) / 3)
    assert model.loss(output, target).item() == pytest.approx(((3 + 14) / 3 + (10 + 140) / 3) / 2)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = TriHornNet(num_joints=3, input_size=32)  # same architecture at a 16 x 16 grid, for speed
    depth = torch.rand(4, 1, 32, 32) * 2 - 1
    target = torch.rand(1, 3, 3) * torch.tensor([32.0, 32.0, 0.5])
    target = target + torch.randn(4, 3, 3) * torch.tensor([1.0, 1.0, 0.02])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = model.loss(model(depth), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert min(losses[-3:]) < 0.7 * losses[0]
