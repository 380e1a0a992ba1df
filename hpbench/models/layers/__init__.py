"""Building blocks shared by the zoo's architectures."""

from hpbench.models.layers.attention import AttentionBlock, MultiHeadSelfAttention, SeparableSelfAttention
from hpbench.models.layers.ghost import GhostModule, GhostResidual, conv_bn, ghost_module
from hpbench.models.layers.heatmap import pixel_centres, soft_argmax, spatial_softmax, weighted_pool
from hpbench.models.layers.hourglass import Hourglass

__all__ = [
    "AttentionBlock",
    "GhostModule",
    "GhostResidual",
    "Hourglass",
    "MultiHeadSelfAttention",
    "SeparableSelfAttention",
    "conv_bn",
    "ghost_module",
    "pixel_centres",
    "soft_argmax",
    "spatial_softmax",
    "weighted_pool",
]
