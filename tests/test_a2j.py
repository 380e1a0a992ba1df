"""A2J: cost matches the original code, anchors and decoding are exact, the loss is the paper's."""

from __future__ import annotations

import pytest
import torch

import hpbench
from hpbench.cards import load_card, load_protocol
from hpbench.models.backbones import FeatureExtractor
from hpbench.models.a2j import A2J, A2JOutput, LossUnits, a2j_loss, anchor_grid, decode
from hpbench.profile import count_parameters, thop_macs

# design/baselines.md, measured on the original code: parameters without the unused
# ImageNet fc (44,736,424 / 45,031,464 with it), thop MACs at 1 x 1 x 176 x 176.
ORIGINAL = {"nyu": (42_687_424, 6.184e9), "icvl": (42_982_464, 6.220e9)}


@pytest.mark.parametrize("dataset", ["nyu", "icvl"])
def test_params_and_thop_macs_match_the_original(dataset):
    model = hpbench.create_model("a2j", dataset=dataset)
    params, macs = ORIGINAL[dataset]
    assert count_parameters(model) == pytest.approx(params, rel=0.005)
    assert thop_macs(model, torch.zeros(1, 1, 176, 176)) == pytest.approx(macs, rel=0.02)
    assert model.anchors.shape == (1936, 2)


def test_card_states_the_excluded_fc_and_the_recipe():
    card = load_card("a2j")
    assert "2,049,000" in card.excluded_params and tuple(card.input_shape) == (1, 176, 176)
    assert card.recipe.lr == 3.5e-4 and card.published["nyu"].mean_error_mm == 8.61


def test_anchors_sit_at_2_6_10_14_px_in_each_16_px_cell():
    anchors = anchor_grid(11, 16)
    assert anchors.shape == (11 * 11 * 16, 2)
    # cell (row 0, col 0): u runs fastest over {2, 6, 10, 14}, then v
    assert anchors[:4].tolist() == [[2, 2], [6, 2], [10, 2], [14, 2]]
    assert anchors[4:8, 1].tolist() == [6, 6, 6, 6]
    # cell (row 1, col 2) starts at index (1 * 11 + 2) * 16
    assert anchors[(1 * 11 + 2) * 16].tolist() == [34, 18]
    assert anchors.min().item() == 2 and anchors.max().item() == 174


def _encode(target: torch.Tensor, anchors: torch.Tensor, num_anchors: int) -> tuple[torch.Tensor, ...]:
    """Ground truth (B, J, 3) -> votes: one-hot weight on the nearest anchor, exact offset and depth there."""
    batch, joints, _ = target.shape
    nearest = torch.cdist(target[..., :2].reshape(-1, 2), anchors).argmin(dim=1).view(batch, joints)
    logits = torch.full((batch, num_anchors, joints), -1e4)
    offsets = torch.randn(batch, num_anchors, joints, 2) * 50  # noise wherever the weight is 0
    depths = torch.randn(batch, num_anchors, joints)
    for b in range(batch):
        for j in range(joints):
            a = nearest[b, j]
            logits[b, a, j] = 0.0
            offsets[b, a, j] = target[b, j, :2] - anchors[a]
            depths[b, a, j] = target[b, j, 2]
    return logits, offsets, depths


def test_decode_recovers_an_encoded_ground_truth():
    torch.manual_seed(0)
    anchors = anchor_grid(11, 16)
    target = torch.rand(2, 14, 3) * torch.tensor([175.0, 175.0, 2.0]) - torch.tensor([0.0, 0.0, 1.0])
    decoded = decode(*_encode(target, anchors, len(anchors)), anchors)
    assert (decoded.joints[..., :2] - target[..., :2]).abs().max() < 0.5
    assert (decoded.joints[..., 2] - target[..., 2]).abs().max() < 1e-3
    # the anchor-only estimate is the nearest anchor: within half the anchor spacing (2 px) per axis
    assert (decoded.anchor_uv - target[..., :2]).abs().max() <= 2.0 + 1e-4
    # uniform weights give the anchors' mean, the crop centre of the anchor grid
    flat = decode(torch.zeros(1, len(anchors), 1), torch.zeros(1, len(anchors), 1, 2), torch.zeros(1, len(anchors), 1), anchors)
    assert flat.joints[0, 0, :2].tolist() == pytest.approx([88.0, 88.0])


def test_loss_is_the_papers_in_px_and_mm_and_honours_the_mask():
    # protocols.md section 2: total = L_anchor + 3 L_reg; L_anchor = SmoothL1(beta 1) on (v, u) px;
    # L_reg = 0.5 SmoothL1 on (v, u) px + L1 on d in mm; d mm = normalized d x 150 (the +-150 mm depth range)
    target = torch.tensor([[[50.0, 60.0, 0.1], [10.0, 10.0, 0.0]]])
    joints = target.clone()
    joints[0, 1] += torch.tensor([4.0, 0.0, 0.02])  # joint 1: 4 px off in u, 0.02 x 150 = 3 mm off in d
    anchor_uv = target[..., :2] + 2.0  # 2 px off on both axes: SmoothL1 = 2 - 0.5 = 1.5 each, mean 1.5
    output = A2JOutput(joints=joints, anchor_uv=anchor_uv)
    # joint 0: L_anchor 1.5, L_reg 0 -> 1.5
    # joint 1: L_anchor 1.5; L_reg = 0.5 x mean(SmoothL1(4) = 3.5, 0) + 3 mm = 0.875 + 3 = 3.875 -> 1.5 + 11.625
    units = LossUnits(150.0)
    assert a2j_loss(output, target, units=units).item() == pytest.approx((1.5 + 13.125) / 2, rel=1e-5)
    assert a2j_loss(output, target, torch.tensor([[True, False]]), units=units).item() == pytest.approx(1.5)
    # a plain joints tensor has no anchor-only estimate: only the regression terms
    assert a2j_loss(joints, target, units=units).item() == pytest.approx(11.625 / 2, rel=1e-5)
    # ICVL's box: the same 150 mm depth range; a model built without a protocol uses A2J's own 150 mm
    assert LossUnits.of(load_protocol("a2j", "icvl").crop) == LossUnits.of(load_protocol("a2j", "nyu").crop) == units
    backbone = FeatureExtractor(_TwoStride16(), channels=(4, 6), strides=(16, 16))
    model = A2J(num_joints=2, backbone=backbone, input_size=32)
    assert model.loss_units == units
    model.loss_units = LossUnits(50.0)  # d 0.02 -> 1 mm: joint 1 = 1.5 + 3 (0.875 + 1)
    assert model.loss(output, target).item() == pytest.approx((1.5 + 7.125) / 2, rel=1e-5)


class _Constant(torch.nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], *self.value.shape[1:])


class _TwoStride16(torch.nn.Module):
    """Smallest backbone A2J accepts: two feature maps at stride 16."""

    def __init__(self) -> None:
        super().__init__()
        self.down = torch.nn.Conv2d(1, 4, 16, stride=16)
        self.more = torch.nn.Conv2d(4, 6, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        low = self.down(x)
        return [low, self.more(low)]


def test_the_head_channel_layout_matches_the_anchor_order():
    """Head maps written in conv layout (channel = anchor-in-cell, joint, value) decode to the encoded truth."""
    torch.manual_seed(1)
    joints, grid = 3, 11
    model = A2J(num_joints=joints, backbone=FeatureExtractor(_TwoStride16(), channels=(4, 6), strides=(16, 16)))
    target = torch.rand(1, joints, 3) * torch.tensor([175.0, 175.0, 1.0])
    logits, offsets, depths = _encode(target, model.anchors, len(model.anchors))

    def as_map(votes: torch.Tensor) -> torch.Tensor:  # (1, A, J, V) -> (1, 16 J V, h, w)
        return votes.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)

    model.classification = _Constant(as_map(logits.unsqueeze(-1)))
    model.offset = _Constant(as_map(offsets))
    model.depth = _Constant(as_map(depths.unsqueeze(-1)))
    joints_out = model(torch.zeros(2, 1, 176, 176))
    assert joints_out.shape == (2, joints, 3)
    assert (joints_out[0] - target[0]).abs().max() < 0.5
