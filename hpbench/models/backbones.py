"""Backbones: feature extractors with known channels and strides, for heads to build on.

A backbone name resolves to a function registered with
``@hpbench.models.register_backbone("name")``, else to any timm model, built with
``features_only=True`` (timm's own feature extraction: no fc, no pooling),
random weights unless a local weights file is given. A registered builder is
keyword-only, takes ``in_chans``, ``output_stride`` and ``pretrained_path`` and
returns a :class:`FeatureExtractor` (or any module with ``channels`` and ``strides``
whose forward returns one feature map per entry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor, nn

from hpbench.models import _registry
from hpbench.registry import UnknownNameError

__all__ = ["FeatureExtractor", "backbone_problem", "create_backbone", "timm_backbone"]


class FeatureExtractor(nn.Module):
    """Wraps a module returning a list of feature maps; records their ``channels`` and ``strides`` (px).

    ``in_chans`` is what ``body`` takes; a one-channel depth crop is replicated to it
    (A2J feeds its ImageNet ResNet the depth three times).
    """

    def __init__(self, body: nn.Module, *, channels: Sequence[int], strides: Sequence[int], in_chans: int = 1) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"one stride per feature channel count, got channels={channels}, strides={strides}")
        self.body = body
        self.channels = tuple(int(c) for c in channels)
        self.strides = tuple(int(s) for s in strides)
        self.in_chans = in_chans

    def forward(self, image: Tensor) -> list[Tensor]:
        """(B, 1 or in_chans, H, W) -> one (B, channels[i], H / strides[i], W / strides[i]) map per level."""
        if image.shape[1] == 1 and self.in_chans > 1:
            image = image.expand(-1, self.in_chans, -1, -1)
        return list(self.body(image))


def timm_backbone(
    name: str,
    *,
    in_chans: int = 1,
    output_stride: int | None = None,
    out_indices: Sequence[int] | None = None,
    pretrained_path: str | Path | None = None,
) -> FeatureExtractor:
    """timm model ``name`` as a feature extractor, random init or weights from a local file.

    ``output_stride`` dilates the last stages instead of striding (timm supports it
    for ResNets, EfficientNets, ...); ``out_indices`` picks the stages (default all).
    """
    import timm

    kwargs: dict = {"features_only": True, "in_chans": in_chans, "pretrained": False}
    if output_stride is not None:
        kwargs["output_stride"] = output_stride
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if pretrained_path is not None:
        # timm loads a local file through pretrained_cfg_overlay; no download happens.
        kwargs["pretrained"] = True
        kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_path)}
    body = timm.create_model(name, **kwargs)
    info = body.feature_info
    return FeatureExtractor(body, channels=info.channels(), strides=info.reduction(), in_chans=in_chans)


def backbone_problem(name: str) -> str | None:
    """Why ``name`` is no backbone (with close matches), or None: a registered backbone, else a timm model
    name (pretrained tags such as resnet50.a1_in1k included; weights stay local). Checked without building."""
    if name in _registry.backbones:
        return None
    import timm

    if timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, [*_registry.backbones.names(), *timm.list_models()], n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    registered = ", ".join(_registry.backbones.names()) or "none"
    return f"unknown backbone {name!r}{hint} (registered backbones: {registered}; or any timm model name)"


def create_backbone(
    name: str,
    *,
    in_chans: int = 1,
    output_stride: int | None = None,
    pretrained_path: str | Path | None = None,
) -> nn.Module:
    """Backbone ``name``: a registered one first, else a timm model; unknown names list close matches."""
    if name in _registry.backbones:
        builder: Callable[..., nn.Module] = _registry.backbones.get(name)
        backbone = builder(in_chans=in_chans, output_stride=output_stride, pretrained_path=pretrained_path)
    else:
        problem = backbone_problem(name)
        if problem:
            raise UnknownNameError(problem)
        backbone = timm_backbone(
            name, in_chans=in_chans, output_stride=output_stride, pretrained_path=pretrained_path
        )
    for attribute in ("channels", "strides"):
        if not hasattr(backbone, attribute):
            raise TypeError(f"backbone {name!r} must have {attribute!r} (wrap its body in FeatureExtractor)")
    return backbone

