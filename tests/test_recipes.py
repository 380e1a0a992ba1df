"""The cards' training recipes drive the trainer as written: a2j's StepLR decays by 0.2 every 10 epochs,
and every registered model trains two steps on its full recipe (optimizer, schedule, weight decay,
augmentation switch) with only the batch made small."""

from __future__ import annotations

import json
import math

import pytest
import torch

import hpbench
from hpbench.cards import Constant, Cosine, StepDecay, load_card
from hpbench.data.cache import CropDataset, open_crop_cache
from hpbench.data.crop import Augmentation
from hpbench.data.specs import get_dataset
from hpbench.data.synth import ensure_synthetic
from hpbench.evaluate import crop_settings
from hpbench.train import _optimizer, _scheduler, train, with_overrides


def test_a2j_multiplies_its_lr_by_0_2_every_10_epochs():
    """A2J (Xiong et al., ICCV 2019; zhangboshen/A2J train script): Adam at 3.5e-4, StepLR(step_size=10
    epochs, gamma=0.2). The torch scheduler train.py builds from the card, stepped once per batch."""
    recipe = load_card("a2j").recipe
    steps_per_epoch = 3
    optimizer = _optimizer(torch.nn.Linear(2, 1), recipe)
    scheduler = _scheduler(optimizer, recipe, recipe.epochs * steps_per_epoch, steps_per_epoch)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 1e-4
    lrs = []
    for _ in range(20 * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[: 10 * steps_per_epoch] == [pytest.approx(3.5e-4)] * (10 * steps_per_epoch)
    assert lrs[10 * steps_per_epoch:] == [pytest.approx(7e-5)] * (10 * steps_per_epoch)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.4e-5)  # after 20 epochs


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synthetic("synth", tmp_path_factory.mktemp("synth"), frames=4, test_frames=1, seed=11)


def _lr_after(schedule, lr: float) -> float:
    """The lr after two steps of a two-step run: a cosine cycle spans the steps and ends at 0."""
    return 0.0 if isinstance(schedule, Cosine) else lr


@pytest.mark.parametrize("name", hpbench.list_models())
def test_every_model_trains_two_steps_on_its_full_card_recipe(name, synth_root, tmp_path, one_thread):
    card = load_card(name)
    recipe = with_overrides(card.recipe, batch_size=1)
    crop = crop_settings(card.name, get_dataset("synth"))
    cache = open_crop_cache("synth", "train", crop, data_root=synth_root, cache_dir=tmp_path / "cache")
    dataset = CropDataset(cache, augmentation=Augmentation() if recipe.augment else None, seed=0)
    torch.manual_seed(0)
    model = hpbench.create_model(name, num_joints=cache.joints.shape[1])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    result = train(model, dataset, recipe, checkpoint_dir=tmp_path / "run", max_steps=2)
    assert result.steps == 2 and math.isfinite(result.final_loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, (p for p in model.parameters() if p.requires_grad)))
    state = json.loads(result.checkpoint.with_suffix("").with_suffix(".json").read_text())
    group = state["optimizer_groups"][0]
    assert state["recipe"]["optimizer"] == card.recipe.optimizer and state["recipe"]["augment"] == card.recipe.augment
    assert group["weight_decay"] == card.recipe.weight_decay
    if card.recipe.optimizer in ("adam", "adamw"):
        assert tuple(group["betas"]) == card.recipe.betas and group["eps"] == card.recipe.eps
    else:
        assert group["momentum"] == card.recipe.momentum
    assert isinstance(card.recipe.schedule, (Cosine, StepDecay, Constant))
    assert state["history"][-1]["lr"] == pytest.approx(_lr_after(card.recipe.schedule, card.recipe.lr), abs=1e-12)
