"""Ghost modules and the residual block built from them (GhostNet, Han et al., CVPR 2020).

A Ghost module makes ``c_out`` maps from a cheap recipe: a primary 1x1 convolution
gives m = ceil(c_out / s) "intrinsic" maps, a depthwise 3x3 convolution turns them
into more "ghost" maps, and the first ``c_out`` of the concatenation are kept.
Original code: https://github.com/huawei-noah/Efficient-AI-Backbones (ghostnet_pytorch).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import ghostnet
from torch import Tensor, nn

__all__ = ["GhostModule", "GhostResidual", "conv_bn", "ghost_module"]


class _DenseGradCat(torch.autograd.Function):
    """torch.cat((a, b), dim=1) whose backward hands each input a dense gradient in its own layout.

    Plain cat's backward returns channel slices of the output gradient; on a channels_last map those are
    strided views, and the BatchNorm backward that receives them takes a slow strided path on the CPU
    (3.6-6.6x slower than on a dense gradient at batch 8, 64x64 maps). One copy per slice is cheaper.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        ctx.split = a.shape[1]
        ctx.formats = (_memory_format(a), _memory_format(b))
        return torch.cat((a, b), dim=1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        split, (format_a, format_b) = ctx.split, ctx.formats
        return grad[:, :split].contiguous(memory_format=format_a), grad[:, split:].contiguous(memory_format=format_b)


def _memory_format(x: Tensor) -> torch.memory_format:
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


class GhostModule(ghostnet.GhostModule):
    """timm's ``GhostModule`` (same parameters, names and function) whose concatenation gives dense gradients
    while training (``dense_grad``; off: plain torch.cat, for ``hpbench bench``'s before/after); in eval
    mode timm's plain forward, which tracing, BN folding and ONNX export see."""

    dense_grad = True

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        if not (self.training and self.dense_grad):
            return torch.cat((x1, x2), dim=1)[:, : self.out_chs]
        out = _DenseGradCat.apply(x1, x2)
        # A full-width slice would cost a zero-filled copy of the gradient in backward.
        return out if out.shape[1] == self.out_chs else out[:, : self.out_chs]


def ghost_module(c_in: int, c_out: int, *, relu: bool = True, ratio: int = 2) -> GhostModule:
    """Ghost module (B, c_in, H, W) -> (B, c_out, H, W); primary 1x1 conv, cheap depthwise 3x3.

    timm's ``GhostModule`` is exactly the module of the spec (m = ceil(c_out / s)
    intrinsic maps, BN after the primary and after the cheap convolution, an
    activation after both, concatenation cut to c_out), so it is reused (with
    dense gradients, :class:`GhostModule`); ``relu=False`` swaps the activation for an identity (the projecting module).
    Parameters: c_in*m + 2m (BN) + 9*m*(s-1) + 2*m*(s-1) (BN).
    """
    return GhostModule(c_in, c_out, kernel_size=1, ratio=ratio, dw_size=3, act_layer=nn.ReLU if relu else nn.Identity)


def conv_bn(c_in: int, c_out: int, kernel_size: int, *, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU), 'same' padding: (B, c_in, H, W) -> (B, c_out, H/stride, W/stride).

    Written here rather than taken from timm.layers.ConvNormAct because that one
    uses BatchNormAct2d, which thop does not recognise (it would count zero MACs
    for the normalization, unlike every other model of the zoo).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GhostResidual(nn.Module):
    """Ghost residual block: (B, c_in, H, W) -> (B, c_out, H/stride, W/stride).

    Ghost module (expand to ``expansion * c_in`` maps, ReLU) -> [depthwise 3x3
    stride 2 + BN when downsampling] -> Ghost module (project to c_out, no ReLU),
    plus a shortcut: identity when the shape is kept, else depthwise 3x3 (stride)
    + BN + 1x1 + BN, as GhostNet's bottleneck. No activation after the sum.

    ``ordinary=True`` is the ablation without Ghost modules: the expanding module
    becomes an ordinary 3x3 convolution and the projecting one an ordinary 1x1
    convolution of the same widths (the depthwise layers, which are not Ghost
    modules, stay).
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, expansion: int = 2, ordinary: bool = False) -> None:
        super().__init__()
        hidden = expansion * c_in
        if ordinary:
            self.expand = conv_bn(c_in, hidden, 3)
            self.project = conv_bn(hidden, c_out, 1, relu=False)
        else:
            self.expand = ghost_module(c_in, hidden)
            self.project = ghost_module(hidden, c_out, relu=False)
        self.down = conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, relu=False) if stride > 1 else nn.Identity()
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                conv_bn(c_in, c_in, 3, stride=stride, groups=c_in, relu=False), conv_bn(c_in, c_out, 1, relu=False)
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.down(self.expand(x))) + self.shortcut(x)
