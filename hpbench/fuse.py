"""Inference-ready copies of models: BatchNorm folded into the convolutions before it, same function.

A BatchNorm in eval mode is an affine map per channel, y = (x - mean) / sqrt(var + eps) * gamma + beta;
when its input is exactly the output of a convolution (or Linear) and nothing else reads that output,
the affine map folds into the convolution's weight and bias (Ioffe & Szegedy 2015; the same rewrite as
``torch.fx.experimental.optimization.fuse`` and timm's ``reparameterize_model``). The profiler applies
this step to every model alike and prints the :class:`FuseReport`, so no model gets a special case.

How pairs are found, generically: each module is traced with ``torch.fx`` when it traces (a model
whose ``forward`` checks shapes in Python does not, so its children are tried one by one); a pair is
a call of a convolution module whose single user is a call of a BatchNorm module, the BatchNorm being
fed by nothing else. The folding is done in float64 on the copy's weights; the folded BatchNorm is
replaced by ``nn.Identity`` in place, so the model keeps its class, its methods and its forward.
Modules that define ``reparameterize()`` (timm's convention for re-parameterizable blocks) are asked
to rewrite themselves afterwards.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["FuseReport", "channels_last_input", "fold_batchnorms", "fuse_for_inference", "fuse_with_report"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class FuseReport:
    """What :func:`fuse_with_report` did to one model, for the profiler to print."""

    folded_bn: int
    """BatchNorm modules folded into the convolution (or Linear) before them, and removed."""
    kept_bn: int
    """BatchNorm modules left in place (no convolution right before them, e.g. pre-activation)."""
    channels_last: bool
    """Whether the copy runs in channels_last: its 4D weights and (by a forward pre-hook) its 4D inputs."""
    reparameterized: int = 0
    """Modules rewritten by their own ``reparameterize()``."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """One line, e.g. ``fuse_for_inference: 31 BN folded (1 kept), channels_last off``."""
        parts = [f"{self.folded_bn} BN folded" + (f" ({self.kept_bn} kept)" if self.kept_bn else "")]
        if self.reparameterized:
            parts.append(f"{self.reparameterized} modules reparameterized")
        parts.append(f"channels_last {'on' if self.channels_last else 'off'}")
        return "fuse_for_inference: " + ", ".join(parts + list(self.notes))


def fuse_for_inference(
    model: nn.Module, example_input: Tensor | None = None, *, channels_last: bool | str = "auto"
) -> nn.Module:
    """An eval-mode deep copy of ``model`` with BatchNorm folded into the convolutions before it.

    Outputs equal the original's (eval mode) to float rounding; ``model`` is left untouched.
    ``channels_last``: True / False, or "auto" (the default): measured on ``example_input`` (a
    batch the model takes) and kept only when faster; without ``example_input``, "auto" keeps the
    default layout.
    """
    return fuse_with_report(model, example_input, channels_last=channels_last)[0]


def fuse_with_report(
    model: nn.Module, example_input: Tensor | None = None, *, channels_last: bool | str = "auto"
) -> tuple[nn.Module, FuseReport]:
    """:func:`fuse_for_inference` and the :class:`FuseReport` saying what it did."""
    if channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last must be True, False or 'auto', got {channels_last!r}")
    fused = copy.deepcopy(model).eval()
    folded = fold_batchnorms(fused)
    reparameterized = 0
    for module in list(fused.modules()):
        if module is not fused and callable(getattr(module, "reparameterize", None)):
            module.reparameterize()
            reparameterized += 1
    kept = sum(isinstance(m, _NORMS) for m in fused.modules())
    notes: list[str] = []
    use_cl = False
    has_4d = any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in fused.modules())
    if channels_last is True:
        use_cl = has_4d
    elif channels_last == "auto" and example_input is not None and has_4d:
        default_ms, cl_ms = _compare_layouts(fused, example_input)
        use_cl = cl_ms < 0.95 * default_ms
        notes.append(f"channels_last measured {cl_ms:.2f} vs {default_ms:.2f} ms")
    if use_cl:
        _make_channels_last(fused)
    return fused, FuseReport(
        folded_bn=folded, kept_bn=kept, channels_last=use_cl, reparameterized=reparameterized, notes=tuple(notes)
    )


# --- BatchNorm folding -----------------------------------------------------------------------


def fold_batchnorms(model: nn.Module) -> int:
    """Fold, IN PLACE, every eval-mode BatchNorm fed only by a convolution / Linear; returns how many.

    Each folded BatchNorm is replaced by ``nn.Identity``. Call on a copy in eval mode.
    """
    pairs = _find_pairs(model, "")
    modules = dict(model.named_modules())
    count = 0
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        if not _foldable(conv, bn):
            continue
        _fold_into(conv, bn)
        _set_submodule(model, bn_name, nn.Identity())
        count += 1
    return count


def _find_pairs(module: nn.Module, prefix: str) -> list[tuple[str, str]]:
    """(conv name, bn name) pairs, names relative to the root model, found by tracing what traces."""
    if isinstance(module, _CONVS + _NORMS) or not any(True for _ in module.children()):
        return []
    try:
        graph = torch.fx.Tracer().trace(module)
    except Exception:  # noqa: BLE001 - any Python control flow on values stops fx; descend instead
        pairs: list[tuple[str, str]] = []
        for name, child in module.named_children():
            pairs += _find_pairs(child, f"{prefix}{name}.")
        return pairs
    return [(prefix + c, prefix + b) for c, b in _pairs_in_graph(module, graph)]


def _pairs_in_graph(root: nn.Module, graph: torch.fx.Graph) -> list[tuple[str, str]]:
    modules = dict(root.named_modules())
    calls: dict[str, list[torch.fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)
    candidates: dict[str, str] = {}
    for target, nodes in calls.items():
        if not isinstance(modules.get(target), _NORMS):
            continue
        sources = {_called_module(n.args[0]) if n.args else None for n in nodes}
        if len(sources) != 1 or None in sources:
            continue
        conv_name = sources.pop()
        if not isinstance(modules.get(conv_name), _CONVS):
            continue
        # Every call of the conv must feed only this BatchNorm, and every call of the BatchNorm must read the conv.
        conv_ok = all(len(n.users) == 1 and next(iter(n.users)).target == target for n in calls[conv_name])
        bn_ok = all(len(n.args) == 1 and not n.kwargs for n in nodes)
        if conv_ok and bn_ok and conv_name not in candidates.values():
            candidates[target] = conv_name
    return [(conv, bn) for bn, conv in candidates.items()]


def _called_module(node: object) -> str | None:
    """The module a graph node calls, or None when the node is not a module call."""
    return node.target if isinstance(node, torch.fx.Node) and node.op == "call_module" else None


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    if bn.training or bn.running_mean is None or bn.running_var is None:
        return False  # batch statistics at inference: not an affine map
    if isinstance(conv, nn.Linear):
        return bn.num_features == conv.out_features and isinstance(bn, nn.BatchNorm1d)
    transposed = isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    if transposed and conv.groups != 1:
        return False
    return bn.num_features == conv.out_channels and conv.weight.dim() - 2 == _bn_dims(bn)


def _bn_dims(bn: nn.Module) -> int:
    return {nn.BatchNorm1d: 1, nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}[type(bn)]


@torch.no_grad()
def _fold_into(conv: nn.Module, bn: nn.Module) -> None:
    """conv := bn . conv, computed in float64 and stored in the conv's dtype."""
    weight = conv.weight
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    shift = -bn.running_mean.double() * scale
    if bn.weight is not None:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    if isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        shape = [1, -1] + [1] * (weight.dim() - 2)  # weight (c_in, c_out, *k)
    else:
        shape = [-1] + [1] * (weight.dim() - 1)  # weight (c_out, c_in / groups, *k) or (out, in)
    new_weight = weight.double() * scale.view(shape)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    new_bias = bias * scale + shift
    conv.weight = nn.Parameter(new_weight.to(weight.dtype), requires_grad=weight.requires_grad)
    conv.bias = nn.Parameter(new_bias.to(weight.dtype), requires_grad=weight.requires_grad)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)


# --- memory format -------------------------------------------------------------------------


def channels_last_input(x: Tensor) -> Tensor:
    """A 4D tensor with channels_last strides, also when it has one channel.

    ``x.contiguous(memory_format=torch.channels_last)`` returns a one-channel NCHW tensor as is (it is
    already "channels_last contiguous"), and a convolution then keeps computing in NCHW; restriding it
    makes every map after it NHWC.
    """
    if x.dim() != 4:
        return x
    x = x.contiguous(memory_format=torch.channels_last)
    if x.size(1) == 1 and x.stride(1) != 1:
        x = torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
    return x


def _channels_last_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(channels_last_input(a) if isinstance(a, Tensor) else a for a in args)


def _make_channels_last(model: nn.Module) -> None:
    """4D weights and the model's 4D inputs in channels_last, in place (a forward pre-hook converts the inputs)."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_channels_last_inputs)


@torch.inference_mode()
def _compare_layouts(
    model: nn.Module, example_input: Tensor, *, rounds: int = 5, calls: int = 3, budget_s: float = 2.0
) -> tuple[float, float]:
    """Median ms per call of ``model`` as is and in channels_last, interleaved A/B rounds: at most ``rounds``
    of ``calls`` each, fewer when the warm-up says they would take longer than ``budget_s`` seconds (one
    round of one call at least)."""
    candidate = copy.deepcopy(model)
    _make_channels_last(candidate)
    times: dict[int, list[float]] = {0: [], 1: []}
    start = time.perf_counter()
    for m in (model, candidate):
        m(example_input)  # warm-up
    pair_s = time.perf_counter() - start  # one call of each layout
    calls = max(1, min(calls, int(budget_s / max(pair_s * rounds, 1e-9))))
    rounds = max(1, min(rounds, int(budget_s / max(pair_s * calls, 1e-9))))
    for _ in range(rounds):
        for key, m in enumerate((model, candidate)):
            start = time.perf_counter()
            for _ in range(calls):
                m(example_input)
            times[key].append((time.perf_counter() - start) * 1e3 / calls)
    return statistics.median(times[0]), statistics.median(times[1])
