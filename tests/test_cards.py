"""Model cards (hpbench.cards): the [quick] schedule, shipped checkpoints and their sha256, and
how the runner turns a card into a training schedule."""

from __future__ import annotations

import hashlib
import math

import pytest

from hpbench.cards import CardError, QuickSchedule, load_card, parse_card, zoo_checkpoint
from hpbench.runner import RunConfig, schedule

CARD = """
name = "toy"
summary = "a toy"
paper = "none"
source = "hpbench"
input_shape = [1, 64, 64]
[declared.nyu]
params = 10
thop_macs = 20
[recipe]
lr = 1e-3
batch_size = 32
epochs = 40
schedule = "cosine"
"""


def test_a_card_without_quick_gets_the_default_short_schedule():
    card = parse_card(CARD, "toy")
    assert card.quick == QuickSchedule() and dict(card.checkpoints) == {}


def test_quick_and_checkpoint_tables_are_read_and_checked():
    card = parse_card(CARD + '[quick]\nsteps = 7\nbatch_size = 4\nlr = 3e-3\n'
                      '[checkpoint.synth]\nfile = "toy.safetensors"\nsha256 = "ab"\ncommand = "x"\nmean_error_mm = 1\n',
                      "toy")
    assert card.quick == QuickSchedule(steps=7, batch_size=4, lr=3e-3)
    assert card.checkpoints["synth"].file == "toy.safetensors" and card.checkpoints["synth"].mean_error_mm == 1
    with pytest.raises(CardError, match=r"zoo/toy.toml: \[quick\] takes steps"):
        parse_card(CARD + "[quick]\nepochs = 3\n", "toy")
    with pytest.raises(CardError, match="must be >= 1"):
        parse_card(CARD + "[quick]\nsteps = 0\n", "toy")
    with pytest.raises(CardError, match="unknown keys"):
        parse_card(CARD + "[quik]\nsteps = 1\n", "toy")


def test_the_runner_schedule_full_quick_and_overrides():
    card = parse_card(CARD + "[quick]\nsteps = 30\nbatch_size = 8\nlr = 4e-3\n", "toy")
    recipe, steps = schedule(card, RunConfig(models=("toy",)), train_frames=100)
    assert (recipe.epochs, recipe.batch_size, recipe.lr, steps) == (40, 32, 1e-3, None)
    recipe, steps = schedule(card, RunConfig(models=("toy",), quick=True), train_frames=100)
    assert (recipe.batch_size, recipe.lr, steps) == (8, 4e-3, 30)
    assert recipe.epochs == math.ceil(30 * 8 / 100)  # enough epochs for the steps; the cosine spans the steps
    assert recipe.augment is False  # quick schedules train without augmentation unless the card asks for it
    augmented = parse_card(CARD + "augmentation = ['in-plane rotation']\n[quick]\naugment = true\n", "toy")
    assert schedule(augmented, RunConfig(models=("toy",), quick=True), 100)[0].augment is True
    assert schedule(augmented, RunConfig(models=("toy",)), 100)[0].augment is True
    recipe, steps = schedule(card, RunConfig(models=("toy",), quick=True, max_steps=5, batch_size=2), 100)
    assert (recipe.batch_size, steps, recipe.epochs) == (2, 5, 1)
