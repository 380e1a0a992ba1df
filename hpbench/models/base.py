"""The contract every hpbench model keeps.

Input: a normalized depth crop, (B, 1, S, S) with depth relative to the crop
centre divided by half the cube size and background +1. Output: (B, J, 3) joints
in crop coordinates: u, v in crop pixels (pixel centres at integers, 0..S-1) and
d in the normalized depth unit. ``loss(output, target, mask)`` is the model's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["HandPoseModel", "joints_in_crop", "masked_joint_mean"]


def masked_joint_mean(per_joint: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of a (B, J) per-joint loss over the joints where ``mask`` (B, J) is True (all when None)."""
    if mask is None:
        return per_joint.mean()
    weights = mask.to(per_joint.dtype)
    return (per_joint * weights).sum() / weights.sum().clamp_min(1.0)


def joints_in_crop(target: torch.Tensor, size_px: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, J) bool: target u, v inside [0, S) px, and ``mask`` where given."""
    uv = target[..., :2]
    inside = ((uv >= 0) & (uv < size_px)).all(dim=-1)
    return inside if mask is None else inside & mask.to(torch.bool)


class HandPoseModel(nn.Module):
    """Base class: records ``num_joints`` and ``input_size`` (S, px) and defines the loss API."""

    def __init__(self, *, num_joints: int, input_size: int) -> None:
        super().__init__()
        if num_joints < 1 or input_size < 1:
            raise ValueError(f"num_joints and input_size must be positive, got {num_joints}, {input_size}")
        self.num_joints = num_joints
        self.input_size = input_size

    def check_input(self, depth: torch.Tensor) -> None:
        """Raise a clear error unless ``depth`` is (B, 1, S, S) for this model's S."""
        expected = (1, self.input_size, self.input_size)
        if depth.ndim != 4 or tuple(depth.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects (B, {', '.join(map(str, expected))}), got {tuple(depth.shape)}")

    def forward_train(self, depth: torch.Tensor) -> Any:
        """What ``loss`` consumes during training; the joints of ``forward`` unless a model needs more
        (A2J's anchor-weighted positions)."""
        return self(depth)

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Default loss: L1 on (u / S, v / S, d) averaged over counted joints; mask (B, J) bool."""
        scale = output.new_tensor([1.0 / self.input_size, 1.0 / self.input_size, 1.0])
        return masked_joint_mean(((output - target).abs() * scale).sum(dim=-1), mask)
