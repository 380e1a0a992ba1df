"""Self-attention over the positions of a feature grid: linear (separable) and quadratic.

Every spatial position of a (B, C, H, W) map is one token of dimension C.
``SeparableSelfAttention`` is MobileViTv2's (Mehta & Rastegari, "Separable
Self-attention for Mobile Vision Transformers", TMLR 2023,
https://github.com/apple/ml-cvnets): one context vector per map, cost linear in
the number of tokens. ``MultiHeadSelfAttention`` is the standard quadratic one
(Vaswani et al. 2017), kept for the ablation that shows the cost difference.
Both are written with 1x1 convolutions (seen by thop) and explicit matmuls (seen
by FlopCounterMode, not by thop) so each counter's view is predictable. Tokens
are read as (B, N, C), which is a free view of a channels_last map (the layout
``Ours`` runs in), so neither block copies its input to reshape it.

Not timm's ``mobilevit.LinearSelfAttention`` / ``LinearTransformerBlock``: they
compute the same separable attention on unfolded (B, C, P, N) patches, but form
the context vector with an elementwise product and sum, which FlopCounterMode
does not count (here it is a matmul, so the exact count has every MAC), and their
block cannot host the quadratic attention the ablation swaps in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AttentionBlock", "MultiHeadSelfAttention", "SeparableSelfAttention", "grid", "tokens"]


def tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, N, C) tokens, N = H W in row-major order; a view (no copy) of a channels_last map."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def grid(t: Tensor, h: int, w: int) -> Tensor:
    """(B, N, C) tokens -> (B, C, H, W); a view, channels_last when ``t`` is contiguous."""
    return t.unflatten(1, (h, w)).permute(0, 3, 1, 2)


class SeparableSelfAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W); N = H W tokens, O(N C^2) MACs.

    c_s = softmax over tokens of x W_I (C -> 1); c_v = sum over tokens of
    c_s * x W_K (C -> C); y = (c_v * ReLU(x W_V)) W_O. W_I, W_K, W_V are one fused
    1x1 convolution C -> 1 + 2C (with bias, as MobileViTv2), W_O a 1x1 convolution.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.qkv = nn.Conv2d(channels, 1 + 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query, key, value = tokens(self.qkv(x)).split([1, c, c], dim=-1)  # (B,N,1) (B,N,C) (B,N,C)
        scores = query.softmax(dim=1)  # context scores over the N tokens
        context = key.transpose(1, 2) @ scores  # (B, C, 1): the one context vector, C N MACs
        mixed = torch.relu(value) * context.transpose(1, 2)  # (B, N, C)
        return self.out(grid(mixed, h, w))


class MultiHeadSelfAttention(nn.Module):
    """(B, C, H, W) -> (B, C, H, W); standard softmax(Q K^T / sqrt(d)) V over N = H W tokens.

    ``heads`` heads of C / heads dimensions; O(N^2 C) MACs for the two matmuls
    on top of the O(N C^2) projections (1x1 convolutions C -> 3C and C -> C).
    """

    def __init__(self, channels: int, *, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        # (B, N, 3C) -> three (B, heads, N, C / heads)
        qkv = tokens(self.qkv(x)).unflatten(-1, (3, self.heads, c // self.heads)).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        weights = (query @ key.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, heads, N, N)
        mixed = (weights @ value).transpose(1, 2).reshape(b, h * w, c)
        return self.out(grid(mixed, h, w))


class AttentionBlock(nn.Module):
    """Pre-norm transformer block on a grid: (B, C, H, W) -> (B, C, H, W).

    x + Attn(GN(x)), then + FFN(GN(.)) with GroupNorm(1, C) and a 1x1 feed-forward
    C -> ffn_ratio C -> C with SiLU, as MobileViTv2's linear transformer block.
    ``kind``: "separable" (linear) or "mhsa" (quadratic).
    """

    def __init__(self, channels: int, *, kind: str = "separable", ffn_ratio: float = 1.0, heads: int = 4) -> None:
        super().__init__()
        if kind == "separable":
            attention: nn.Module = SeparableSelfAttention(channels)
        elif kind == "mhsa":
            attention = MultiHeadSelfAttention(channels, heads=heads)
        else:
            raise ValueError(f"unknown attention kind {kind!r}: expected 'separable' or 'mhsa'")
        hidden = int(round(ffn_ratio * channels))
        self.norm1 = nn.GroupNorm(1, channels)
        self.attention = attention
        self.norm2 = nn.GroupNorm(1, channels)
        self.ffn = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.SiLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))
