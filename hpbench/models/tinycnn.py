"""Tiny CNN regressor: the smallest real network of the zoo.

Four stride-2 3x3 conv-BN-ReLU stages, global average pooling and one linear
layer regressing J x 3 offsets from the crop centre. Not from a paper: a
reference model that exercises the whole contract (train, evaluate, profile,
report) in seconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from hpbench.models._registry import register_model
from hpbench.models.base import HandPoseModel

__all__ = ["TinyCNN"]


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class TinyCNN(HandPoseModel):
    """Conv stages of ``widths`` channels, then a linear regressor to (J, 3)."""

    def __init__(self, *, num_joints: int, input_size: int = 128, widths: tuple[int, ...] = (16, 32, 64, 64)) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        channels = (1, *widths)
        self.features = nn.Sequential(*(_stage(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.regressor = nn.Linear(widths[-1], 3 * num_joints)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) depth -> (B, J, 3): u, v in crop px, d normalized."""
        self.check_input(depth)
        code = self.pool(self.features(depth)).flatten(1)
        offsets = self.regressor(code).view(-1, self.num_joints, 3)
        # u, v: offsets in units of half the crop, around the crop centre; d as is.
        half = self.input_size / 2.0
        scale = offsets.new_tensor([half, half, 1.0])
        centre = offsets.new_tensor([half - 0.5, half - 0.5, 0.0])
        return centre + offsets * scale


@register_model("tinycnn")
def tinycnn(*, num_joints: int = 14, input_size: int = 128) -> TinyCNN:
    """Tiny 4-stage CNN regressor for pipeline tests and a non-trivial floor."""
    return TinyCNN(num_joints=num_joints, input_size=input_size)
