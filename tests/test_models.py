"""Every registered model keeps the contract and matches its card."""

from __future__ import annotations

import pytest
import torch

import hpbench
from hpbench.cards import CardError, card_names, load_card
from hpbench.profile import count_parameters, thop_macs, unused_parameters

MODELS = hpbench.list_models()
HEAVY_GMAC = 2.0
"""Models above this thop cost run the 30-step training test only with ``-m slow`` (minutes on a CPU)."""


POINT_INPUT = {"handfold"}
"""Models that sample points from the crop: a noise crop gives them no structure to fit; their
training is tested on structured crops in their own test file (tests/test_handfold.py)."""


def _train_params(name: str):
    card = load_card(name)
    heavy = max(d.thop_macs for d in card.declared.values()) / 1e9 > HEAVY_GMAC
    return pytest.param(name, marks=pytest.mark.slow) if heavy else name
DATASETS = ["icvl", "nyu"]


def test_every_model_has_a_card_and_every_card_a_model():
    assert set(MODELS) == set(card_names())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_forward_contract_and_declared_params(name, dataset):
    card = load_card(name)
    model = hpbench.create_model(name, dataset=dataset).eval()
    depth = torch.rand(2, *card.input_shape) * 2 - 1
    with torch.inference_mode():
        joints = model(depth)
    assert joints.shape == (2, model.num_joints, 3) and torch.isfinite(joints).all()
    assert count_parameters(model) == card.declared[dataset].params
    assert unused_parameters(model, depth[:1]) == []
    with pytest.raises(ValueError, match="expects"):
        model(torch.zeros(1, 1, 64, 64))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_declared_thop_macs_within_one_percent(name, dataset):
    card = load_card(name)
    model = hpbench.create_model(name, dataset=dataset).eval()
    macs = thop_macs(model, torch.zeros(1, *card.input_shape))
    assert macs == pytest.approx(card.declared[dataset].thop_macs, rel=0.01, abs=1)


@pytest.mark.parametrize("name", [_train_params(name) for name in MODELS if name not in POINT_INPUT])
def test_a_few_steps_reduce_the_loss_and_reach_every_parameter(name, gradient_reach):
    torch.manual_seed(0)
    model = hpbench.create_model(name, num_joints=3)
    depth = torch.rand(4, 1, model.input_size, model.input_size)
    pose = torch.rand(1, 3, 3) * torch.tensor([model.input_size, model.input_size, 1.0])
    target = pose + torch.randn(4, 3, 3) * torch.tensor([2.0, 2.0, 0.02])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    reach = gradient_reach(model)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model.loss(model(depth), target)
        loss.backward()
        reach.record()
        losses.append(loss.item())
        optimizer.step()
    assert reach.unreached == []
    assert losses[-1] < 0.7 * losses[0]


def test_masked_loss_ignores_masked_joints():
    model = hpbench.create_model("meanpose", num_joints=2)
    output = torch.zeros(1, 2, 3)
    target = torch.tensor([[[0.0, 0.0, 1.0], [100.0, 100.0, 100.0]]])
    assert model.loss(output, target, torch.tensor([[True, False]])).item() == pytest.approx(1.0)


def test_a_missing_card_is_a_clear_error():
    with pytest.raises(CardError, match="expected zoo/nope.toml"):
        load_card("nope")
