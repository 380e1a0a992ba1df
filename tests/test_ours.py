"""The proposed model (design/ours.md): its cost against the paper, its mechanisms, its loss, and a fit."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import hpbench
from hpbench.cards import load_card
from hpbench.models.layers import (
    AttentionBlock,
    GhostModule,
    GhostResidual,
    MultiHeadSelfAttention,
    SeparableSelfAttention,
    ghost_module,
    soft_argmax,
    spatial_softmax,
)

VARIANTS = ["ours", "ours-split", "ours-conv", "ours-noattn", "ours-mhsa"]
PAPER_PARAMS = 0.18e6  # Table 1 of the paper
PAPER_THOP_MACS = 0.27e9


def exact_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """Conv + linear + matmul multiply-accumulates: FlopCounterMode's FLOPs / 2."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() / 2


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --- cost against the paper -------------------------------------------------------------


@pytest.mark.parametrize("num_joints", [14, 16])
def test_ours_costs_what_the_paper_reports(num_joints):
    thop = pytest.importorskip("thop")
    model = hpbench.create_model("ours", num_joints=num_joints).eval()
    macs, _ = thop.profile(copy.deepcopy(model), inputs=(torch.zeros(1, 1, 128, 128),), verbose=False)
    assert n_params(model) == pytest.approx(PAPER_PARAMS, rel=0.10)
    assert macs == pytest.approx(PAPER_THOP_MACS, rel=0.10)


def test_ablation_cards_report_the_papers_cost_next_to_the_measured_one():
    for name in ["ours-split", "ours-conv", "ours-noattn"]:
        card = load_card(name)
        assert card.published["icvl"].thop_macs > 0 and card.published["icvl"].mean_error_mm > 0
        assert "Paper:" in card.notes["cost"]
    assert load_card("ours").published["nyu"].mean_error_mm == pytest.approx(8.32)


def test_ablations_change_only_what_they_name():
    ours = hpbench.create_model("ours", num_joints=14)
    noattn = hpbench.create_model("ours-noattn", num_joints=14)
    attention_params = sum(n_params(m) for m in ours.modules() if isinstance(m, AttentionBlock))
    assert attention_params > 0
    assert not any(isinstance(m, AttentionBlock) for m in noattn.modules())
    assert n_params(ours) - n_params(noattn) == attention_params  # nothing unused is left behind
    conv = hpbench.create_model("ours-conv", num_joints=14)
    assert not any(isinstance(m, GhostModule) for m in conv.modules())
    # Quadratic attention on the same grids: visible to the exact counter (thop misses matmuls).
    x = torch.zeros(1, 1, 128, 128)
    mhsa = hpbench.create_model("ours-mhsa", num_joints=14).eval()
    extra = exact_macs(mhsa, x) - exact_macs(ours.eval(), x)
    assert extra > 2 * 1024**2 * 64  # Q K^T and A V on the 32 x 32 grid, C = 64


# --- Ghost module -----------------------------------------------------------------------


@pytest.mark.parametrize(("c_in", "c_out"), [(8, 16), (16, 7), (3, 10)])
def test_ghost_module_outputs_and_parameter_formula(c_in, c_out):
    module = ghost_module(c_in, c_out)
    out = module(torch.randn(2, c_in, 9, 11))
    assert out.shape == (2, c_out, 9, 11)
    m = math.ceil(c_out / 2)  # intrinsic maps, s = 2
    ghosts = m * (2 - 1)  # the depthwise op makes (s - 1) maps per intrinsic one; the concat is cut to c_out
    primary = c_in * m * 1 * 1 + 2 * m  # 1x1 conv without bias + BN (weight, bias)
    cheap = ghosts * 1 * 3 * 3 + 2 * ghosts  # depthwise 3x3 (one input map per output) + BN
    assert n_params(module) == primary + cheap
    assert out.min() >= 0  # ReLU after both convolutions
    assert ghost_module(c_in, c_out, relu=False)(torch.randn(2, c_in, 9, 11)).min() < 0


def test_ghost_concatenation_gives_dense_gradients_and_the_same_ones():
    """Plain cat hands channels_last maps strided gradient slices (a slow BatchNorm backward on the CPU); the
    dense-gradient cat hands dense ones, with the same values, in training only."""
    torch.manual_seed(0)
    module = ghost_module(8, 16, relu=False).train()  # no ReLU: BN's output goes straight into the cat
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    received = []
    module.primary_conv[1].register_full_backward_hook(lambda _m, _gi, go: received.append(go[0]))
    weights = torch.randn(2, 16, 6, 6)

    def grads(dense: bool) -> list[torch.Tensor]:
        module.dense_grad = dense
        module.zero_grad()
        (module(x) * weights).sum().backward()
        return [p.grad.clone() for p in module.parameters()]

    plain, dense = grads(False), grads(True)
    assert not received[0].is_contiguous(memory_format=torch.channels_last)  # the slow case exists
    assert received[1].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(plain, dense, strict=True))  # rounding


def test_ghost_residual_block_shapes_and_shortcuts():
    same = GhostResidual(16, 16)
    assert isinstance(same.shortcut, torch.nn.Identity)
    assert same(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)
    down = GhostResidual(16, 24, stride=2)
    assert down(torch.randn(2, 16, 8, 8)).shape == (2, 24, 4, 4)
    # expand 16 -> 32 and project 32 -> 24 Ghost modules, depthwise 3x3 stride 2 on 32 maps, dw + 1x1 shortcut
    expected = (16 * 16 + 32 + 16 * 9 + 32) + (32 * 12 + 24 + 12 * 9 + 24) + (32 * 9 + 64) + (16 * 9 + 32 + 16 * 24 + 48)
    assert n_params(down) == expected


# --- separable self-attention ------------------------------------------------------------


def naive_separable_attention(attention: SeparableSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """MobileViTv2's equations token by token, from the module's weights."""
    b, c, h, w = x.shape
    weight, bias = attention.qkv.weight[:, :, 0, 0], attention.qkv.bias
    w_i, w_k, w_v = weight[0], weight[1 : 1 + c], weight[1 + c :]
    b_i, b_k, b_v = bias[0], bias[1 : 1 + c], bias[1 + c :]
    w_o, b_o = attention.out.weight[:, :, 0, 0], attention.out.bias
    out = torch.empty_like(x)
    for n in range(b):
        tokens = [x[n, :, i, j] for i in range(h) for j in range(w)]
        logits = torch.stack([w_i @ t + b_i for t in tokens])
        scores = torch.exp(logits - logits.max())
        scores = scores / scores.sum()
        context = sum(s * (w_k @ t + b_k) for s, t in zip(scores, tokens, strict=True))
        for index, t in enumerate(tokens):
            out[n, :, index // w, index % w] = w_o @ (context * torch.relu(w_v @ t + b_v)) + b_o
    return out


def naive_multi_head_attention(attention: MultiHeadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    d = c // attention.heads
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
    q, k, v = (tokens @ attention.qkv.weight[:, :, 0, 0].T + attention.qkv.bias).split(c, dim=-1)
    heads = []
    for head in range(attention.heads):
        part = slice(head * d, (head + 1) * d)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(d), dim=-1)
        heads.append(weights @ v[..., part])
    y = torch.cat(heads, dim=-1) @ attention.out.weight[:, :, 0, 0].T + attention.out.bias
    return y.transpose(1, 2).reshape(b, c, h, w)


def test_separable_attention_equals_the_naive_computation():
    torch.manual_seed(0)
    attention = SeparableSelfAttention(6).double()
    x = torch.randn(2, 6, 3, 5, dtype=torch.double)
    torch.testing.assert_close(attention(x), naive_separable_attention(attention, x))


def test_multi_head_attention_equals_the_naive_computation():
    torch.manual_seed(0)
    attention = MultiHeadSelfAttention(8, heads=2).double()
    x = torch.randn(2, 8, 3, 4, dtype=torch.double)
    torch.testing.assert_close(attention(x), naive_multi_head_attention(attention, x))


def test_separable_attention_cost_is_linear_in_tokens_and_mhsa_is_not():
    c = 64
    separable, mhsa = SeparableSelfAttention(c), MultiHeadSelfAttention(c)
    small, large = torch.zeros(1, c, 16, 16), torch.zeros(1, c, 16, 32)
    ratio = exact_macs(separable, large) / exact_macs(separable, small)
    assert ratio == pytest.approx(2.0, rel=0.05)
    # every MAC is accounted for: W_I, W_K, W_V (C -> 1 + 2C), W_O (C -> C), the context sum (C per token)
    tokens = 16 * 32
    assert exact_macs(separable, large) == tokens * (c * (1 + 2 * c) + c * c + c)
    assert exact_macs(mhsa, large) / exact_macs(mhsa, small) > 3.0
    block_ratio = exact_macs(AttentionBlock(c), large) / exact_macs(AttentionBlock(c), small)
    assert block_ratio == pytest.approx(2.0, rel=0.05)


def test_attention_blocks_give_the_same_result_on_channels_last_maps():
    """Ours runs in channels_last, where tokens are a free view; NCHW maps (a copy) give the same result."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 5, dtype=torch.double)
    for attention in (SeparableSelfAttention(8).double(), MultiHeadSelfAttention(8, heads=2).double()):
        expected = attention(x)
        torch.testing.assert_close(attention(x.contiguous(memory_format=torch.channels_last)), expected)


@pytest.mark.parametrize("name", ["ours", "ours-mhsa"])
def test_channels_last_forward_is_the_same_function_as_nchw(name):
    torch.manual_seed(0)
    model = hpbench.create_model(name, num_joints=14).eval()
    depth = torch.rand(2, 1, 128, 128) * 2 - 1
    assert model.channels_last  # the default: NHWC maps are much faster on a CPU (see Ours.__init__)
    with torch.no_grad():
        fast = model(depth)
        model.channels_last = False
        plain = model(depth)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())


# --- soft-argmax and the unified head's fusion -------------------------------------------


@pytest.mark.parametrize(("x", "y"), [(0, 0), (10, 37), (63, 63), (40, 5)])
def test_soft_argmax_of_a_one_hot_map_returns_that_pixel_in_crop_pixels(x, y):
    logits = torch.zeros(1, 2, 64, 64)
    logits[0, 0, y, x] = 1e4  # softmax is exactly one-hot in float32
    logits[0, 1, 63 - y, 63 - x] = 1e4
    uv, probs = soft_argmax(logits, 128)
    # a 64-grid cell covers 2 x 2 crop pixels; its centre is (x + 0.5) * 128 / 64 - 0.5
    assert uv[0, 0].tolist() == pytest.approx([2 * x + 0.5, 2 * y + 0.5])
    assert uv[0, 1].tolist() == pytest.approx([2 * (63 - x) + 0.5, 2 * (63 - y) + 0.5])
    assert probs.sum(dim=(-2, -1))[0].tolist() == pytest.approx([1.0, 1.0])
    same_grid, _ = soft_argmax(logits, 64)  # grid == crop: the pixel itself
    assert same_grid[0, 0].tolist() == pytest.approx([x, y])


def test_soft_argmax_of_a_flat_map_is_the_crop_centre():
    uv, _ = soft_argmax(torch.zeros(3, 4, 64, 64), 128)
    assert torch.allclose(uv, torch.full_like(uv, 63.5))


def test_fused_attention_follows_beta():
    torch.manual_seed(0)
    model = hpbench.create_model("ours", num_joints=5)
    heat, attn = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    assert torch.equal(model.beta.detach(), torch.full((5,), 0.5))
    with torch.no_grad():
        model.beta.fill_(1.0)
    torch.testing.assert_close(model.fused_attention(heat, attn), spatial_softmax(heat))
    with torch.no_grad():
        model.beta.fill_(0.0)
    torch.testing.assert_close(model.fused_attention(heat, attn), spatial_softmax(attn))
    with torch.no_grad():
        model.beta.copy_(torch.linspace(0, 1, 5))
    mixed = model.fused_attention(heat, attn)
    torch.testing.assert_close(mixed[:, 2], spatial_softmax(0.5 * heat + 0.5 * attn)[:, 2])


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_runs_forward_and_backward_and_gradients_reach_beta(name):
    torch.manual_seed(0)
    model = hpbench.create_model(name, num_joints=14)
    out = model(torch.rand(2, 1, 128, 128) * 2 - 1)
    assert out.shape == (2, 14, 3) and torch.isfinite(out).all()
    # Reachability, not the loss's kinks: a random linear functional of the output has a non-zero gradient
    # for every connected parameter (the L1 loss's sign-sum can cancel exactly for a shared bias).
    (out * torch.randn_like(out)).sum().backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unreached == []
    assert model.beta.grad.abs().min() > 0  # every joint's beta is trained


# --- loss ----------------------------------------------------------------------------------


def test_loss_is_half_uv_l1_in_pixels_plus_depth_error_in_mm_over_joints_inside_the_crop():
    model = hpbench.create_model("ours", num_joints=3)
    output = torch.tensor([[[10.0, 20.0, 0.0], [64.0, 64.0, 0.1], [5.0, 5.0, 0.0]]])
    target = torch.tensor([[[12.0, 24.0, 0.1], [64.0, 64.0, 0.0], [-3.0, 5.0, 0.5]]])  # joint 2 outside
    # joint 0: (2 + 4) / 2 + 0.1 * 140 = 17; joint 1: 0 + 14 = 14; joint 2 masked out
    assert model.loss(output, target).item() == pytest.approx((17.0 + 14.0) / 2)
    assert model.loss(output, target, torch.tensor([[False, True, True]])).item() == pytest.approx(14.0)
    wide = hpbench.create_model("ours", num_joints=3, cube_mm=300.0)
    assert wide.loss(output, target).item() == pytest.approx(((3.0 + 15.0) + 15.0) / 2)
    assert model.loss(output, torch.full_like(target, 200.0)).item() == 0.0  # nothing counted


# --- a fit ---------------------------------------------------------------------------------


def render_crops(num_crops: int, num_joints: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized depth crops with one paraboloid bump per joint at a known (u, v, d); background +1.

    Joints sit on a 4 x 4 lattice (15 px apart) shifted as a whole and jittered per
    joint, so each joint is recognisable by its place; d is uniform in [-0.4, 0.4].
    """
    gen = torch.Generator().manual_seed(seed)
    lattice = torch.arange(16)[:num_joints]
    base = torch.stack(((lattice % 4) * 15.0 + 41.5, (lattice // 4) * 15.0 + 41.5), dim=-1)
    shift = (torch.rand(num_crops, 1, 2, generator=gen) - 0.5) * 24
    uv = base + shift + torch.randn(num_crops, num_joints, 2, generator=gen) * 1.5
    d = (torch.rand(num_crops, num_joints, generator=gen) - 0.5) * 0.8
    pixels = torch.arange(128, dtype=torch.float32)
    dist2 = (pixels.view(1, 1, 1, -1) - uv[..., 0, None, None]) ** 2 + (pixels.view(1, 1, -1, 1) - uv[..., 1, None, None]) ** 2
    depth = (d[..., None, None] + dist2 / 18.0).amin(dim=1).clamp(max=1.0)  # bump radius ~5 px
    return depth.unsqueeze(1), torch.cat((uv, d.unsqueeze(-1)), dim=-1)


def test_ours_overfits_a_few_synthetic_crops():
    torch.manual_seed(0)
    depth, target = render_crops(4, 14, seed=1)
    model = hpbench.create_model("ours", dataset="nyu")
    steps = 80
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps, pct_start=0.15)
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.loss(model(depth), target)
        loss.backward()
        optimizer.step()
        schedule.step()
        first = loss.item() if first is None else first
    # Exact BN statistics of the training batch ("precise BN"), then judge the eval-mode model.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model(depth)
        model.eval()
        out = model(depth)
    uv_error_px = (out[..., :2] - target[..., :2]).norm(dim=-1).mean().item()
    depth_error_mm = ((out[..., 2] - target[..., 2]).abs() * 140.0).mean().item()
    assert model.loss(out, target).item() < first / 5
    assert uv_error_px < 2.0, f"mean uv error {uv_error_px:.2f} px"
    assert depth_error_mm < 5.0, f"mean depth error {depth_error_mm:.2f} mm"
