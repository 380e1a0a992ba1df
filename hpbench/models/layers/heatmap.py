"""Heatmap read-outs: spatial softmax, soft-argmax and attention-weighted pooling.

Soft-argmax (integral regression: Sun et al., "Integral Human Pose Regression",
ECCV 2018) returns the expected position under the softmax of a logit map, so a
heatmap head is trained end to end by a loss on coordinates.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pixel_centres", "soft_argmax", "spatial_softmax", "weighted_pool"]


def spatial_softmax(logits: Tensor) -> Tensor:
    """(B, J, h, w) logits -> (B, J, h, w) maps, each summing to 1 over its h w positions."""
    b, j, h, w = logits.shape
    return logits.flatten(2).softmax(dim=-1).view(b, j, h, w)


def pixel_centres(cells: int, size: int, *, like: Tensor) -> Tensor:
    """(cells,) positions, in pixels of a ``size`` crop, of the centres of ``cells`` grid cells.

    Pixel centres sit at integers 0..size-1, so cell x spans crop pixels
    [x size / cells - 0.5, (x + 1) size / cells - 0.5) and its centre is
    (x + 0.5) size / cells - 0.5.
    """
    return (torch.arange(cells, dtype=like.dtype, device=like.device) + 0.5) * (size / cells) - 0.5


def soft_argmax(logits: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """(B, J, h, w) logits -> ((B, J, 2) expected (u, v) in pixels of a ``size`` crop, (B, J, h, w) maps)."""
    probs = spatial_softmax(logits)
    _, _, h, w = logits.shape
    u = (probs.sum(dim=-2) * pixel_centres(w, size, like=logits)).sum(dim=-1)
    v = (probs.sum(dim=-1) * pixel_centres(h, size, like=logits)).sum(dim=-1)
    return torch.stack((u, v), dim=-1), probs


def weighted_pool(weights: Tensor, features: Tensor) -> Tensor:
    """(B, J, h, w) weights and (B, D, h, w) features -> (B, J, D): per-joint weighted sums over positions."""
    return weights.flatten(2) @ features.flatten(2).transpose(1, 2)
