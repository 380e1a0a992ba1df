"""Backbones and head@backbone models: timm names work as they are, a new backbone is one function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hpbench
from hpbench.models import _registry
from hpbench.models.backbones import FeatureExtractor, create_backbone
from hpbench.registry import Registry, UnknownNameError


def test_a_listed_combination_builds_runs_and_trains():
    assert "a2j@resnet18" in hpbench.list_models() and hpbench.list_models("a2j*") == ["a2j", "a2j@resnet18"]
    model = hpbench.create_model("a2j@resnet18", dataset="nyu")
    assert model.num_joints == 14 and model.backbone.channels[-2:] == (256, 512)
    assert model.backbone.strides[-2:] == (16, 16) and model.anchors.shape == (1936, 2)
    assert model.backbone.body.conv1.in_channels == 1  # timm in_chans=1: no replication
    output = model.forward_train(torch.rand(1, 1, 176, 176))
    assert output.joints.shape == (1, 14, 3) and torch.isfinite(output.joints).all()
    model.loss(output, torch.full((1, 14, 3), 80.0)).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_any_other_head_at_backbone_is_built_on_demand_but_not_listed():
    builder = _registry.models.get("a2j@resnet34")  # resolves the head; the backbone is built when called
    assert builder.keywords == {"backbone": "resnet34"}
    assert "a2j@resnet34" not in hpbench.list_models()


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv3_small_100"])
def test_trinet_heads_sit_on_a_timm_backbone_and_learn(backbone):
    torch.manual_seed(0)
    model = hpbench.create_model(f"trinet-head@{backbone}", num_joints=5, input_size=64)
    assert model.trunk.backbone.strides[-1] == 8  # dilated to output stride 8: an 8 x 8 grid at 64 px
    depth = torch.rand(4, 1, 64, 64) * 2 - 1
    target = torch.rand(4, 5, 3) * torch.tensor([40.0, 40.0, 0.5]) + torch.tensor([12.0, 12.0, -0.25])
    assert model(depth).shape == (4, 5, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = model.loss(model(depth), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # it fits four crops: the heads read the backbone's grid
    assert f"trinet-head@{backbone}" not in hpbench.list_models()
    with pytest.raises(ValueError, match="multiple of the backbone's stride"):
        hpbench.create_model(f"trinet-head@{backbone}", input_size=60)


def test_timm_backbone_reports_channels_strides_and_replicates_depth():
    features = create_backbone("resnet18", in_chans=3, output_stride=16)
    assert features.channels == (64, 64, 128, 256, 512) and features.strides == (2, 4, 8, 16, 16)
    maps = features(torch.rand(1, 1, 64, 64))  # one-channel depth, replicated to the 3 the body takes
    assert [m.shape[1:] for m in maps][-1] == (512, 4, 4)



def test_weights_come_from_a_local_file_only(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    features = create_backbone("resnet18", in_chans=3, output_stride=16, pretrained_path=path)
    assert torch.equal(features.body.conv1.weight, source.conv1.weight)
    assert torch.equal(features.body.layer4[1].conv2.weight, source.layer4[1].conv2.weight)

class _Tiny(nn.Module):
    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_chans, 8, 16, stride=16)
        self.last = nn.Conv2d(8, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        low = self.stem(x)
        return [low, self.last(low)]


@pytest.fixture()
def own_backbones(monkeypatch) -> Registry:
    """A fresh backbone registry in place of the global one, so registrations do not leak."""
    fresh: Registry = Registry("backbone")
    monkeypatch.setattr(_registry, "backbones", fresh)
    return fresh


def test_a_new_backbone_is_one_decorated_function(own_backbones):
    @own_backbones.register("tiny")
    def tiny(*, in_chans: int = 1, output_stride: int | None = None, pretrained_path=None) -> FeatureExtractor:
        return FeatureExtractor(_Tiny(in_chans), channels=(8, 12), strides=(16, 16), in_chans=in_chans)

    model = hpbench.create_model("a2j@tiny", num_joints=3)
    assert model.backbone.channels == (8, 12) and model.classification[0].in_channels == 8
    assert model.offset[0].in_channels == 12
    joints = model(torch.rand(2, 1, 176, 176))
    assert joints.shape == (2, 3, 3) and torch.isfinite(joints).all()


def test_a_backbone_whose_last_features_differ_in_stride_is_refused(own_backbones):
    own_backbones.add(
        "uneven",
        lambda **_: FeatureExtractor(_Tiny(1), channels=(8, 12), strides=(8, 16)),
    )
    with pytest.raises(ValueError, match="one stride"):
        hpbench.create_model("a2j@uneven", num_joints=3)


def test_unknown_backbone_or_head_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown backbone 'resnet19'; did you mean .*resnet18"):
        hpbench.create_model("a2j@resnet19", num_joints=3)
    with pytest.raises(UnknownNameError, match=r"unknown head 'a2k'; did you mean a2j"):
        hpbench.create_model("a2k@resnet18", num_joints=3)
    with pytest.raises(UnknownNameError, match="expected 'head@backbone'"):
        hpbench.create_model("a2j@", num_joints=3)
