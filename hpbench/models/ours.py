"""The proposed compact network: Ghost-module hourglass, linear self-attention, unified head.

Li Li Liu, "Light Weight Computation and Compact Network for 3D Hand Pose
Estimation from Depth" (2023); no public code, built from design/ours.md. A
lighter TriHorn-Net (Rezaei et al., 2022, https://github.com/mrezaei92/TriHorn-Net):
its hourglass encoder rebuilt from Ghost modules (GhostNet, CVPR 2020), MobileViTv2's
separable self-attention on hourglass grids, and one "compressed unified" 1x1
convolution giving the heatmap logits, the attention logits and the dense depth
features from which each joint's depth is pooled and regressed with shared weights.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from hpbench.fuse import channels_last_input
from hpbench.models._registry import register_model
from hpbench.models.base import HandPoseModel, joints_in_crop, masked_joint_mean
from hpbench.models.layers import (
    AttentionBlock,
    GhostResidual,
    Hourglass,
    conv_bn,
    soft_argmax,
    spatial_softmax,
    weighted_pool,
)

__all__ = ["Ours", "SplitHead", "UnifiedHead"]


class UnifiedHead(nn.Module):
    """Compressed unified branch: (B, C, h, w) -> three maps from ONE 1x1 convolution C -> 2J + D.

    Returns (heatmap logits (B, J, h, w), attention logits (B, J, h, w), depth features (B, D, h, w)).
    """

    def __init__(self, channels: int, *, num_joints: int, depth_dim: int) -> None:
        super().__init__()
        self.sizes = [num_joints, num_joints, depth_dim]
        self.conv = nn.Conv2d(channels, sum(self.sizes), 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        heat, attn, feat = self.conv(x).split(self.sizes, dim=1)
        return heat, attn, feat


class SplitHead(nn.Module):
    """Ablation: three separate convolutional branches, TriHorn-style; same outputs as UnifiedHead.

    Each branch (choice, the paper gives none): 3x3 conv C -> ``hidden`` + BN +
    ReLU, then a 1x1 conv to its J, J or D maps.
    """

    def __init__(self, channels: int, *, num_joints: int, depth_dim: int, hidden: int) -> None:
        super().__init__()

        def branch(c_out: int) -> nn.Sequential:
            return nn.Sequential(conv_bn(channels, hidden, 3), nn.Conv2d(hidden, c_out, 1))

        self.heat = branch(num_joints)
        self.attn = branch(num_joints)
        self.feat = branch(depth_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heat(x), self.attn(x), self.feat(x)


class Ours(HandPoseModel):
    """Stem + one Ghost hourglass + grid self-attention + (unified | split) head -> (B, J, 3).

    Stem at S x S: 7x7 conv 1 -> c0 + BN + ReLU, Ghost residual c0 -> 2 c0; max-pool
    to S/2; Ghost residual blocks 2 c0 -> 2 c0 -> c. Hourglass of ``hourglass_depth``
    levels at c channels, one Ghost residual block per node, self-attention blocks
    on the grids of ``attention_levels`` (0 = S/2 grid, hourglass_depth = lowest;
    default the 4x4 bottom and the 32x32 up-path grid, with a small C -> C/2 -> C
    feed-forward to stay in the paper's budget), then BN + ReLU. Head on the S/2 grid: u, v by soft-argmax of the heatmap logits; per-joint
    fused attention softmax(beta_j heat_j + (1 - beta_j) attn_j) pools the D depth
    features, one Linear(D, 1) shared by all joints gives the normalized depth.
    """

    def __init__(
        self,
        *,
        num_joints: int,
        input_size: int = 128,
        stem_width: int = 24,
        width: int = 64,
        depth_dim: int = 32,
        hourglass_depth: int = 4,
        expansion: int = 2,
        ordinary_convs: bool = False,
        attention: str | None = "separable",
        attention_levels: tuple[int, ...] = (4, 1),
        ffn_ratio: float = 0.5,
        head: str = "unified",
        split_hidden: int = 16,
        cube_mm: float = 280.0,
    ) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        if input_size % 2 ** (hourglass_depth + 1):
            raise ValueError(f"input_size {input_size} must be divisible by 2 ** (hourglass_depth + 1)")
        self.cube_mm = cube_mm
        block = partial(GhostResidual, expansion=expansion, ordinary=ordinary_convs)
        c0 = stem_width
        self.stem = nn.Sequential(
            conv_bn(1, c0, 7), block(c0, 2 * c0), nn.MaxPool2d(2), block(2 * c0, 2 * c0), block(2 * c0, width)
        )
        mixer = None if attention is None else partial(AttentionBlock, kind=attention, ffn_ratio=ffn_ratio)
        self.hourglass = Hourglass(
            depth=hourglass_depth,
            channels=width,
            make_block=block,
            make_mixer=mixer,
            mixer_levels=attention_levels if mixer else (),
        )
        # The hourglass ends in an un-normalized sum of residual branches (std ~5 at
        # init); BN + ReLU before the head (choice; Newell's hourglass ends in conv-BN-ReLU,
        # the conv dropped for the budget) keeps the initial heatmaps flat and Z near 0.
        self.neck = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        if head == "unified":
            self.head: nn.Module = UnifiedHead(width, num_joints=num_joints, depth_dim=depth_dim)
        elif head == "split":
            self.head = SplitHead(width, num_joints=num_joints, depth_dim=depth_dim, hidden=split_hidden)
        else:
            raise ValueError(f"unknown head {head!r}: expected 'unified' or 'split'")
        # beta_j weighs heatmap against attention logits in the fused attention (paper: learnable, init 0.5).
        self.beta = nn.Parameter(torch.full((num_joints,), 0.5))
        self.depth_regressor = nn.Linear(depth_dim, 1)  # the (w, b) shared by all joints
        # Run the convolutions on channels_last (NHWC) maps: at batch 1 on a CPU oneDNN's depthwise 3x3
        # convolutions and max-pooling are ~10x faster on NHWC than on NCHW maps, the 1x1 ones ~1.5x,
        # and the attention blocks read NHWC maps as (B, N, C) tokens without a copy. Same function.
        self.channels_last = True

    def fused_attention(self, heat: Tensor, attn: Tensor) -> Tensor:
        """(B, J, h, w) heatmap and attention logits -> (B, J, h, w) fused maps, each summing to 1."""
        beta = self.beta.view(1, -1, 1, 1)
        return spatial_softmax(beta * heat + (1 - beta) * attn)

    def forward(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, 3): u, v in crop px, d normalized."""
        self.check_input(depth)
        if self.channels_last:
            depth = channels_last_input(depth)
        heat, attn, feat = self.head(self.neck(self.hourglass(self.stem(depth))))
        uv, _ = soft_argmax(heat, self.input_size)
        pooled = weighted_pool(self.fused_attention(heat, attn), feat)  # (B, J, D)
        d = self.depth_regressor(pooled)  # (B, J, 1)
        return torch.cat((uv, d), dim=-1)

    def loss(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Paper's loss: mean |(u, v) - gt|_1 / 2 (px) + mean |Z - Z_gt| (mm) over counted joints.

        Z in mm is the normalized depth times half of ``cube_mm``. A joint counts when
        its target u, v lie in [0, S) and, if ``mask`` (B, J) bool is given, mask is True.
        """
        uv_error = (output[..., :2] - target[..., :2]).abs().sum(dim=-1) / 2
        z_error_mm = (output[..., 2] - target[..., 2]).abs() * (self.cube_mm / 2)
        return masked_joint_mean(uv_error + z_error_mm, joints_in_crop(target, self.input_size, mask))


@register_model("ours")
def ours(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> Ours:
    """The proposed model: Ghost hourglass, separable attention on the 4x4 and 32x32 grids, unified head."""
    return Ours(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm)


@register_model("ours-split")
def ours_split(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> Ours:
    """Ablation: three separate convolutional heads instead of the unified 1x1 head."""
    return Ours(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm, head="split")


@register_model("ours-conv")
def ours_conv(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> Ours:
    """Ablation: ordinary 3x3 / 1x1 convolutions of the same widths instead of Ghost modules."""
    return Ours(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm, ordinary_convs=True)


@register_model("ours-noattn")
def ours_noattn(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> Ours:
    """Ablation: no self-attention blocks (and no attention parameters)."""
    return Ours(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm, attention=None)


@register_model("ours-mhsa")
def ours_mhsa(*, num_joints: int = 14, input_size: int = 128, cube_mm: float = 280.0) -> Ours:
    """Ablation: standard quadratic multi-head self-attention in place of the separable one."""
    return Ours(num_joints=num_joints, input_size=input_size, cube_mm=cube_mm, attention="mhsa")
