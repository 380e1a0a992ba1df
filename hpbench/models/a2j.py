"""A2J: anchor-to-joint regression on a dilated ResNet-50.

Xiong et al., "A2J: Anchor-to-Joint Regression Network for 3D Articulated Pose
Estimation from a Single Depth Image", ICCV 2019; original code
https://github.com/zhangboshen/A2J. Built from the paper and design/baselines.md.

Anchors sit on the stride-16 feature grid, 16 per cell. Every anchor votes for
every joint with a weight (softmax over anchors, per joint), an in-plane offset
and a depth; a joint is the weighted sum of the votes. The head is registered
both as the model ``a2j`` (ResNet-50, the paper's network) and as the head ``a2j``
that ``a2j@<backbone>`` puts on any registered or timm backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hpbench.models._registry import register_combination, register_head, register_model
from hpbench.models.backbones import create_backbone
from hpbench.models.base import HandPoseModel, masked_joint_mean
from hpbench.protocol import BoxCrop, Crop, CubeCrop

__all__ = ["A2J", "A2JOutput", "LossUnits", "a2j_loss", "anchor_grid", "decode"]

ANCHORS_PER_AXIS = 4
"""4 x 4 anchors per feature cell: at {2, 6, 10, 14} px inside each 16-px cell."""
HEAD_WIDTH = 256
HEAD_DEPTH = 4


@dataclass(frozen=True)
class LossUnits:
    """How the crop coordinates a model sees become the units of A2J's loss (design/protocols.md
    section 2: u, v in 176-crop px, d in mm from the centre). u, v are crop px already; d (normalized)
    x ``depth_half_mm`` is mm. With the augmentation's depth scale s in the normalized d (the crop
    keeps ``depth_half_mm``), this is the original's (d - c_d) s."""

    depth_half_mm: float

    def __post_init__(self) -> None:
        if not self.depth_half_mm > 0:
            raise ValueError(f"depth_half_mm must be positive, got {self.depth_half_mm}")

    @classmethod
    def of(cls, crop: Crop) -> LossUnits:
        """The units of a protocol's crop: a box's ``depth_half_mm``, a cube's half z edge."""
        if isinstance(crop, BoxCrop):
            return cls(float(crop.depth_half_mm))
        if isinstance(crop, CubeCrop):
            return cls(float(crop.size_mm[2]) / 2.0)
        raise ValueError(f"A2J's loss needs a box or cube crop, got a {crop.kind} crop")


A2J_UNITS = LossUnits(150.0)
"""A2J's own depth range, +-150 mm, in both its protocols (ICVL and NYU: protocols.md section 2)."""


class A2JOutput(NamedTuple):
    """What the training loss needs: the joints and the anchor-only estimate of u, v.

    ``joints`` (B, J, 3): u, v in crop px, d normalized. ``anchor_uv`` (B, J, 2):
    sum over anchors of weight x anchor position (no offsets), px.
    """

    joints: Tensor
    anchor_uv: Tensor


def anchor_grid(grid_size: int, stride: int) -> Tensor:
    """(grid_size^2 x 16, 2) anchor positions (u, v) in input px, cell-major, then row-major in a cell.

    Anchor (cell (i, j), index (a, b)) sits at u = stride j + (b + 1/2) stride / 4,
    v = stride i + (a + 1/2) stride / 4: 2, 6, 10, 14 px in a 16-px cell as in the paper.
    """
    inner = (torch.arange(ANCHORS_PER_AXIS, dtype=torch.float32) + 0.5) * (stride / ANCHORS_PER_AXIS)
    cells = torch.arange(grid_size, dtype=torch.float32) * stride
    # indices (cell row i, cell column j, anchor row a, anchor column b)
    v = cells.view(-1, 1, 1, 1) + inner.view(1, 1, -1, 1)
    u = cells.view(1, -1, 1, 1) + inner.view(1, 1, 1, -1)
    u, v = torch.broadcast_tensors(u, v)
    return torch.stack((u, v), dim=-1).reshape(-1, 2)


def decode(logits: Tensor, offsets: Tensor, depths: Tensor, anchors: Tensor) -> A2JOutput:
    """Anchor votes -> joints. logits, depths (B, A, J); offsets (B, A, J, 2) px; anchors (A, 2) px.

    Per joint, w = softmax over the A anchors; u, v = sum w (anchor + offset); d = sum w depth.
    """
    weights = logits.softmax(dim=1)  # (B, A, J)
    anchor_uv = torch.einsum("baj,ac->bjc", weights, anchors)
    uv = anchor_uv + torch.einsum("baj,bajc->bjc", weights, offsets)
    d = (weights * depths).sum(dim=1, keepdim=False).unsqueeze(-1)
    return A2JOutput(joints=torch.cat((uv, d), dim=-1), anchor_uv=anchor_uv)


def _head(in_channels: int, out_channels: int) -> nn.Sequential:
    """4 x (3x3 conv 256 + BN + ReLU) + 3x3 output conv (the paper's three heads)."""
    layers: list[nn.Module] = []
    for index in range(HEAD_DEPTH):
        layers += [
            nn.Conv2d(in_channels if index == 0 else HEAD_WIDTH, HEAD_WIDTH, 3, padding=1),
            nn.BatchNorm2d(HEAD_WIDTH),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.Conv2d(HEAD_WIDTH, out_channels, 3, padding=1))
    return nn.Sequential(*layers)


class A2J(HandPoseModel):
    """Backbone -> anchor classification (penultimate feature), offsets and depths (last feature).

    The backbone's last two feature maps must share one stride (A2J dilates
    ResNet's layer4: both at 16 px, 11 x 11 at 176 input); the anchor grid is that
    feature grid, 16 anchors per cell. ``loss_units``: how the loss converts d to mm; the training
    harness sets it from the protocol's crop (``LossUnits.of(protocol.crop)``); default A2J's +-150 mm.
    """

    def __init__(
        self,
        *,
        num_joints: int,
        backbone: nn.Module,
        input_size: int = 176,
    ) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        strides = tuple(backbone.strides[-2:])
        if len(strides) != 2 or strides[0] != strides[1] or input_size % strides[1]:
            raise ValueError(
                f"A2J needs the backbone's last two features at one stride dividing {input_size}, got strides {strides}"
            )
        cls_channels, reg_channels = backbone.channels[-2:]
        self.stride = strides[1]
        self.backbone = backbone
        anchors_per_cell = ANCHORS_PER_AXIS**2
        self.classification = _head(cls_channels, anchors_per_cell * num_joints)
        self.offset = _head(reg_channels, anchors_per_cell * num_joints * 2)
        self.depth = _head(reg_channels, anchors_per_cell * num_joints)
        self.register_buffer("anchors", anchor_grid(input_size // self.stride, self.stride), persistent=False)
        self.loss_units = A2J_UNITS

    def _votes(self, out: Tensor, values: int) -> Tensor:
        # (B, 16 J values, h, w) -> (B, h w 16, J, values): channel = (anchor in cell, joint, value)
        batch = out.shape[0]
        return out.permute(0, 2, 3, 1).reshape(batch, -1, self.num_joints, values)

    def forward_train(self, depth: Tensor) -> A2JOutput:
        """(B, 1, S, S) depth -> joints and the anchor-only u, v that the loss needs."""
        self.check_input(depth)
        features = self.backbone(depth)
        logits = self._votes(self.classification(features[-2]), 1).squeeze(-1)
        offsets = self._votes(self.offset(features[-1]), 2)
        depths = self._votes(self.depth(features[-1]), 1).squeeze(-1)
        return decode(logits, offsets, depths, self.anchors)

    def forward(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, 3): u, v in crop px, d normalized."""
        return self.forward_train(depth).joints

    def loss(self, output: A2JOutput | Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The paper's loss (:func:`a2j_loss`, d in mm by ``loss_units``) of :meth:`forward_train`'s
        output; see there for a plain tensor."""
        return a2j_loss(output, target, mask, units=self.loss_units)


def a2j_loss(output: A2JOutput | Tensor, target: Tensor, mask: Tensor | None = None, *,
             units: LossUnits = A2J_UNITS) -> Tensor:
    """L_anchor + 3 L_reg per joint, mean over counted joints (src_train/anchor.py, nyu.py L36-37):
    L_anchor = SmoothL1(beta 1) of the anchor-weighted u, v (mean over u, v); L_reg = 0.5 SmoothL1(beta 1)
    of u, v (mean over u, v) + L1 of d in mm.

    u, v in crop px; d normalized in ``output`` and ``target``, x ``units.depth_half_mm`` to mm; mask
    (B, J) bool. A plain joints tensor (``forward``'s output) has no anchor-only estimate: that term is
    then left out and only the regression terms remain.
    """
    joints, anchor_uv = (output.joints, output.anchor_uv) if isinstance(output, A2JOutput) else (output, None)
    per_joint = 3.0 * (
        0.5 * F.smooth_l1_loss(joints[..., :2], target[..., :2], reduction="none", beta=1.0).mean(-1)
        + (joints[..., 2] - target[..., 2]).abs() * units.depth_half_mm
    )
    if anchor_uv is not None:
        per_joint = per_joint + F.smooth_l1_loss(anchor_uv, target[..., :2], reduction="none", beta=1.0).mean(-1)
    return masked_joint_mean(per_joint, mask)


@register_head("a2j")
def a2j_head(
    *,
    backbone: str,
    num_joints: int = 14,
    input_size: int = 176,
    in_chans: int = 1,
    pretrained_path: str | Path | None = None,
) -> A2J:
    """A2J head on backbone ``backbone`` at output stride 16 (random init unless ``pretrained_path``)."""
    features = create_backbone(backbone, in_chans=in_chans, output_stride=16, pretrained_path=pretrained_path)
    return A2J(num_joints=num_joints, backbone=features, input_size=input_size)


@register_model("a2j")
def a2j(*, num_joints: int = 14, input_size: int = 176, pretrained_path: str | Path | None = None) -> A2J:
    """A2J as published: ResNet-50 (layer4 dilated), depth replicated to 3 channels, 176 px input."""
    return a2j_head(
        backbone="resnet50", num_joints=num_joints, input_size=input_size, in_chans=3, pretrained_path=pretrained_path
    )


register_combination("a2j", "resnet18")
