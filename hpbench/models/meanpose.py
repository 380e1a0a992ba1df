"""Mean-pose regressor: the floor every real model must beat.

It ignores the depth and predicts one learnable pose in crop coordinates, which
training drives to the per-joint median of the training labels (the L1 optimum).
No paper; the "prior" baseline of pose estimation benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

from hpbench.models._registry import register_model
from hpbench.models.base import HandPoseModel

__all__ = ["MeanPose"]


class MeanPose(HandPoseModel):
    """One learnable (J, 3) pose, initialised to the crop centre at the centre depth.

    The parameter is stored in crop-normalized units (u, v in [-1, 1] over the crop)
    so one learning rate suits every input size.
    """

    def __init__(self, *, num_joints: int, input_size: int = 128) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        self.pose = nn.Parameter(torch.zeros(num_joints, 3))

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) depth -> (B, J, 3) the same pose for every sample."""
        self.check_input(depth)
        half = self.input_size / 2.0
        pose = self.pose * self.pose.new_tensor([half, half, 1.0]) + self.pose.new_tensor([half - 0.5, half - 0.5, 0.0])
        return pose.unsqueeze(0).expand(depth.shape[0], -1, -1)


@register_model("meanpose")
def meanpose(*, num_joints: int = 14, input_size: int = 128) -> MeanPose:
    """Mean-pose floor: 3 J parameters, no computation."""
    return MeanPose(num_joints=num_joints, input_size=input_size)
