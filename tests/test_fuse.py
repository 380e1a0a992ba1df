"""fuse_for_inference: BatchNorm folded into the convolutions before it, the same function, for every model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hpbench
from hpbench.cards import load_card
from hpbench.fuse import FuseReport, channels_last_input, fold_batchnorms, fuse_for_inference, fuse_with_report

MODELS = hpbench.list_models()
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def randomize_batchnorms(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters far from the identity, so that a fold really changes weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, NORMS):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    module.bias.copy_(torch.rand(n, generator=gen) - 0.5)


def conv_weight_numel(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, CONVS))


@pytest.mark.parametrize("name", MODELS)
def test_fused_model_computes_the_same_function(name):
    torch.manual_seed(0)
    card = load_card(name)
    model = hpbench.create_model(name).eval()
    randomize_batchnorms(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = sum(isinstance(m, NORMS) for m in model.modules())
    depth = torch.rand(1, *card.input_shape) * 2 - 1  # batch 1: the heavy models (v2v, a2j) stay quick

    fused, report = fuse_with_report(model)

    with torch.no_grad():
        expected, got = model(depth), fused(depth)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * scale
    # the input model is untouched; the copy keeps the class (and so loss, forward_train, ...)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(fused) is type(model) and not fused.training
    # folded BatchNorms are gone, the convolutions keep their weights' sizes
    assert sum(isinstance(m, NORMS) for m in fused.modules()) == report.kept_bn == norms - report.folded_bn
    assert conv_weight_numel(fused) == conv_weight_numel(model)
    if name != "meanpose":
        assert report.folded_bn > 0
    assert f"{report.folded_bn} BN folded" in report.describe()


@pytest.mark.parametrize("name", ["ours", "tinycnn"])
def test_channels_last_copy_computes_the_same_function(name):
    torch.manual_seed(0)
    model = hpbench.create_model(name).eval()
    randomize_batchnorms(model)
    depth = torch.rand(1, 1, model.input_size, model.input_size) * 2 - 1
    fused, report = fuse_with_report(model, channels_last=True)
    assert report.channels_last
    with torch.no_grad():
        torch.testing.assert_close(fused(depth), model(depth), rtol=1e-5, atol=1e-5 * model(depth).abs().max().item())
    assert fuse_with_report(model)[1].channels_last is False  # nothing to measure on: default layout


def test_auto_channels_last_is_measured_on_the_example_input():
    model = hpbench.create_model("tinycnn").eval()
    depth = torch.rand(1, 1, model.input_size, model.input_size)
    fused, report = fuse_with_report(model, depth)  # either layout may win; the note says what was measured
    assert "channels_last measured" in report.describe()
    with torch.no_grad():
        torch.testing.assert_close(fused(depth), model(depth), rtol=1e-5, atol=1e-6)


class _Shapes(nn.Module):
    """Conv-BN pairs that are and are not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_bn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.shared = nn.Conv2d(4, 4, 1)  # output read by the BN and by the sum: must stay
        self.shared_bn = nn.BatchNorm2d(4)
        self.up = nn.ConvTranspose2d(4, 5, 2, stride=2)
        self.up_bn = nn.BatchNorm2d(5)
        self.pre_bn = nn.BatchNorm2d(5)  # fed by a ReLU, not a convolution: must stay
        self.linear = nn.Linear(5, 6)
        self.linear_bn = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_bn(x)
        y = self.shared(x)
        x = self.shared_bn(y) + y
        x = self.pre_bn(torch.relu(self.up_bn(self.up(x))))
        return self.linear_bn(self.linear(x.mean(dim=(2, 3))))


def test_only_batchnorms_fed_solely_by_a_convolution_are_folded():
    torch.manual_seed(0)
    model = _Shapes().eval()
    randomize_batchnorms(model)
    x = torch.randn(3, 3, 6, 6)
    fused, report = fuse_with_report(model)
    assert report == FuseReport(folded_bn=3, kept_bn=2, channels_last=False)
    assert isinstance(fused.conv_bn[1], nn.Identity) and isinstance(fused.up_bn, nn.Identity)
    assert isinstance(fused.linear_bn, nn.Identity)
    assert isinstance(fused.shared_bn, nn.BatchNorm2d) and isinstance(fused.pre_bn, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-5, atol=1e-6)


def test_training_mode_batchnorms_are_not_folded_in_place_and_the_copy_is_eval():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))  # training mode: batch statistics
    assert fold_batchnorms(model) == 0
    fused = fuse_for_inference(model)
    assert model.training and isinstance(model[1], nn.BatchNorm2d)
    assert not fused.training and isinstance(fused[1], nn.Identity)


def test_an_untraceable_forward_is_searched_child_by_child():
    class Checks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] != 1:  # Python control flow on the input: torch.fx cannot trace this
                raise ValueError("one channel")
            return self.body(x)

    model = Checks().eval()
    randomize_batchnorms(model)
    x = torch.randn(2, 1, 5, 5)
    fused, report = fuse_with_report(model)
    assert report.folded_bn == 1
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x))


def test_bad_channels_last_value_is_rejected():
    with pytest.raises(ValueError, match="channels_last"):
        fuse_for_inference(nn.Identity(), channels_last="yes")


def test_a_channels_last_copy_runs_its_maps_in_nhwc_even_from_a_one_channel_nchw_input():
    depth = torch.rand(2, 1, 16, 16)
    restrided = channels_last_input(depth)
    assert restrided.stride(1) == 1 and torch.equal(restrided, depth)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    fused = fuse_for_inference(model, channels_last=True)
    seen = []
    fused[0].register_forward_hook(lambda module, args, out: seen.append(out.stride(1)))
    with torch.no_grad():
        torch.testing.assert_close(fused(depth), model(depth))
    assert seen == [1]  # the convolution's output is NHWC
