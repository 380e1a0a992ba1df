"""TriHorn-Net: an hourglass with three heads for uv heatmaps, depth features and attention.

Rezaei, Rastgoo & Athitsos, "TriHorn-Net: A Model for Accurate Depth-Based 3D
Hand Pose Estimation", Expert Systems with Applications (2023). Original code:
https://github.com/mrezaei92/TriHorn-Net. Rebuilt here from the paper and
design/baselines.md: one depth-4 stacked-hourglass module (Newell et al., ECCV
2016) of pre-activation bottlenecks, then three heads on the 64 x 64 grid. The UV
head's heatmap logits give u, v by soft-argmax; each joint's depth is read from a
64-d dense feature map pooled under a fused attention map that mixes the UV
logits with the attention-enhancement head's logits through a learnable beta.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from hpbench.models._registry import register_head, register_model
from hpbench.models.base import HandPoseModel, joints_in_crop, masked_joint_mean
from hpbench.models.layers import Hourglass, soft_argmax, spatial_softmax, weighted_pool
from hpbench.models.backbones import create_backbone

__all__ = ["BackboneTrunk", "PreActBottleneck", "TriHornNet"]


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck, expansion 2: (B, c_in, H, W) -> (B, 2 planes, H, W).

    BN-ReLU-conv1x1 (c_in -> planes), BN-ReLU-conv3x3 (planes), BN-ReLU-conv1x1
    (planes -> 2 planes), all convolutions with bias as in the stacked-hourglass
    code TriHorn-Net builds on; the shortcut is the identity, or a 1x1 convolution
    when the width changes.
    """

    expansion = 2

    def __init__(self, c_in: int, planes: int) -> None:
        super().__init__()
        c_out = self.expansion * planes
        self.residual = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, planes, 1),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True), nn.Conv2d(planes, planes, 3, padding=1),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True), nn.Conv2d(planes, c_out, 1),
        )  # fmt: skip
        self.shortcut: nn.Module = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        # The shortcut reads x before the residual's in-place ReLU touches its own BN output.
        return self.shortcut(x) + self.residual(x)


def _bottlenecks(c_in: int, c_out: int, count: int) -> nn.Sequential:
    """``count`` bottlenecks c_in -> c_out -> ... -> c_out (c_out even)."""
    return nn.Sequential(*(PreActBottleneck(c_in if i == 0 else c_out, c_out // 2) for i in range(count)))


class TriHornHead(nn.Module):
    """One horn: ``blocks`` bottlenecks at C, 1x1 conv-BN-ReLU C, 1x1 conv C -> c_out (with bias)."""

    def __init__(self, channels: int, c_out: int, *, blocks: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _bottlenecks(channels, channels, blocks),
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, c_out, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class TriHornNet(HandPoseModel):
    """Stem + one hourglass + three heads -> (B, J, 3): u, v in crop px, d normalized.

    Stem at S x S: 7x7 conv 1 -> 64 (+ bias) + BN + ReLU, bottleneck 64 -> 128,
    max-pool to S/2, bottlenecks 128 -> 256 -> 256. Hourglass of ``hourglass_depth``
    levels at 256 channels, 2 bottlenecks per node, nearest upsampling. Heads on
    the S/2 grid: UV (J logits, 3 bottlenecks), depth (``depth_dim`` features, 3
    bottlenecks) and attention enhancement (J logits, ``attention_blocks``).

    Two details of the original code that design/baselines.md does not state, both
    needed to match its parameter count exactly: the attention-enhancement head has
    ONE bottleneck (its block count reaches the head through a shifted positional
    argument), and the spatial softmax has a trainable per-joint temperature
    (``spread``, init 1) multiplying the logits of both the UV softmax and the fused
    attention. The stem's second and third bottlenecks are 128 -> 256 -> 256 there.

    ``trunk`` replaces stem + hourglass by any module giving (B, width, h, w)
    features (``trinet-head@<backbone>``: :class:`BackboneTrunk`); the heads' soft-argmax
    maps that grid onto the S x S crop.
    """

    def __init__(
        self,
        *,
        num_joints: int,
        input_size: int = 128,
        width: int = 256,
        depth_dim: int = 64,
        hourglass_depth: int = 4,
        blocks_per_node: int = 2,
        attention_blocks: int = 1,
        cube_mm: float = 280.0,
        trunk: nn.Module | None = None,
    ) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        self.cube_mm = cube_mm
        if trunk is None:  # the original: stem + one hourglass, width channels at S / 2
            if input_size % 2 ** (hourglass_depth + 1):
                raise ValueError(f"input_size {input_size} must be divisible by 2 ** (hourglass_depth + 1)")
            stem = nn.Sequential(
                nn.Conv2d(1, 64, 7, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                PreActBottleneck(64, 64), nn.MaxPool2d(2),
                PreActBottleneck(128, width // 2), PreActBottleneck(width, width // 2),
            )  # fmt: skip
            hourglass = Hourglass(
                depth=hourglass_depth,
                channels=width,
                make_block=lambda c_in, c_out: _bottlenecks(c_in, c_out, blocks_per_node),
            )
            trunk = nn.Sequential(OrderedDict(stem=stem, hourglass=hourglass))
        self.trunk = trunk
        self.uv_head = TriHornHead(width, num_joints)
        self.depth_head = TriHornHead(width, depth_dim)
        self.attention_head = TriHornHead(width, num_joints, blocks=attention_blocks)
        self.spread = nn.Parameter(torch.ones(num_joints))  # per-joint softmax temperature
        # beta_j mixes the attention head's logits with the UV logits (paper: learnable, init 0.5).
        self.beta = nn.Parameter(torch.full((num_joints,), 0.5))
        self.depth_regressor = nn.Linear(depth_dim, 1)  # shared by all joints

    def fused_attention(self, uv_logits: Tensor, aux_logits: Tensor) -> Tensor:
        """(B, J, h, w) UV and auxiliary logits -> spatial softmax(beta aux + (1 - beta) uv)."""
        beta = self.beta.view(1, -1, 1, 1)
        return spatial_softmax(self._sharpen(beta * aux_logits + (1 - beta) * uv_logits))

    def _sharpen(self, logits: Tensor) -> Tensor:
        return logits * self.spread.view(1, -1, 1, 1)

    def forward(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, 3): u, v in crop px, d normalized."""
        self.check_input(depth)
        features = self.trunk(depth)
        uv_logits = self.uv_head(features)
        uv, _ = soft_argmax(self._sharpen(uv_logits), self.input_size)
        attention = self.fused_attention(uv_logits, self.attention_head(features))
        pooled = weighted_pool(attention, self.depth_head(features))  # (B, J, D)
        return torch.cat((uv, self.depth_regressor(pooled)), dim=-1)

    def loss(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """L1 on (u px, v px, Z mm), averaged over the three coordinates and the counted joints.

        Z in mm is the normalized depth times half of ``cube_mm``. A joint counts when
        its target u, v lie in [0, S) and, if ``mask`` (B, J) bool is given, mask is True.
        """
        scale = output.new_tensor([1.0, 1.0, self.cube_mm / 2])
        per_joint = ((output - target).abs() * scale).mean(dim=-1)
        return masked_joint_mean(per_joint, joints_in_crop(target, self.input_size, mask))


class BackboneTrunk(nn.Module):
    """A backbone's last feature map projected to ``width`` channels (1x1 conv-BN-ReLU): the
    feature grid TriHorn-Net's heads read when they sit on another backbone."""

    def __init__(self, backbone: nn.Module, width: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.project = nn.Sequential(
            nn.Conv2d(backbone.channels[-1], width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )

    def forward(self, depth: Tensor) -> Tensor:
        return self.project(self.backbone(depth)[-1])


@register_head("trinet-head")
def trinet_head(
    *,
    backbone: str,
    num_joints: int = 14,
    input_size: int = 128,
    output_stride: int = 8,
    width: int = 256,
    cube_mm: float = 280.0,
    pretrained_path: str | Path | None = None,
) -> TriHornNet:
    """TriHorn-Net's three heads on ``backbone``'s last feature, dilated to ``output_stride`` px
    (random init unless ``pretrained_path``); the heads' soft-argmax maps that grid to crop px."""
    features = create_backbone(backbone, output_stride=output_stride, pretrained_path=pretrained_path)
    if input_size % features.strides[-1]:
        raise ValueError(f"input_size {input_size} must be a multiple of the backbone's stride {features.strides[-1]}")
    return TriHornNet(num_joints=num_joints, input_size=input_size, width=width, cube_mm=cube_mm,
                      trunk=BackboneTrunk(features, width))


@register_model("trinet")
def trinet(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> TriHornNet:
    """TriHorn-Net (Rezaei et al., 2023): depth-4 hourglass, UV / depth / attention heads."""
    return TriHornNet(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm)
