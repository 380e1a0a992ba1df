"""Model cards (hpbench.cards): the [quick] schedule, shipped checkpoints and their sha256, and
how the runner turns a card into a training schedule (the typed schema itself: test_card_schema.py)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from hpbench import metrics
from hpbench.cards import CardError, Checkpoint, Cosine, QuickSchedule, load_card, parse_card, zoo_checkpoint
from hpbench.data.cache import open_crop_cache
from hpbench.data.specs import get_dataset
from hpbench.data.synth import ensure_synthetic
from hpbench.evaluate import crop_settings, evaluate_checkpoint
from hpbench.runner import RunSettings, schedule

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
optimizer = "adam"
lr = 1e-3
batch_size = 32
epochs = 40
schedule = { kind = "cosine" }
augment = AUGMENT
mixed_precision = false
"""


def toy(tables: str = "", *, augment: bool = False):
    """The toy card with recipe augmentation switched by ``augment``, plus ``tables``."""
    return parse_card(CARD.replace("AUGMENT", str(augment).lower()) + tables, "toy")


def test_a_card_without_quick_gets_the_default_short_schedule():
    card = toy()
    assert card.quick == QuickSchedule() and dict(card.checkpoints) == {} and card.recipe.schedule == Cosine()


def test_quick_and_checkpoint_tables_are_read_and_checked():
    card = toy('[quick]\nsteps = 7\nbatch_size = 4\nlr = 3e-3\n'
               '[checkpoints.synth]\nfile = "toy.safetensors"\nsha256 = "ab"\ncommand = "x"\nmean_error_mm = 1\n')
    assert card.quick == QuickSchedule(steps=7, batch_size=4, lr=3e-3)
    assert card.checkpoints["synth"] == Checkpoint(file="toy.safetensors", sha256="ab", command="x", mean_error_mm=1.0)
    with pytest.raises(CardError, match=r"^zoo/toy.toml: \[quick\] epochs: unknown field \(expected one of: steps, "):
        toy("[quick]\nepochs = 3\n")
    with pytest.raises(CardError, match=r"^zoo/toy.toml: \[quick\] steps: expected an integer >= 1, got the integer 0"):
        toy("[quick]\nsteps = 0\n")
    with pytest.raises(CardError, match=r"^zoo/toy.toml: quik: unknown field \(did you mean quick\? expected one of"):
        toy("[quik]\nsteps = 1\n")


def test_the_runner_schedule_full_quick_and_overrides():
    card = toy("[quick]\nsteps = 30\nbatch_size = 8\nlr = 4e-3\n")
    recipe, steps = schedule(card, RunSettings(), train_frames=100)
    assert recipe == card.recipe
    assert (recipe.epochs, recipe.batch_size, recipe.lr, steps) == (40, 32, 1e-3, None)
    recipe, steps = schedule(card, RunSettings(quick=True), train_frames=100)
    assert (recipe.batch_size, recipe.lr, steps) == (8, 4e-3, 30)
    assert recipe.epochs == math.ceil(30 * 8 / 100)  # enough epochs for the steps; the cosine spans the steps
    assert recipe.augment is False  # quick schedules train without augmentation unless the card asks for it
    augmented = toy("[quick]\naugment = true\n", augment=True)
    assert schedule(augmented, RunSettings(quick=True), 100)[0].augment is True
    assert schedule(augmented, RunSettings(), 100)[0].augment is True
    recipe, steps = schedule(card, RunSettings(quick=True, max_steps=5, batch_size=2), 100)
    assert (recipe.batch_size, steps, recipe.epochs) == (2, 5, 1)


def test_every_shipped_checkpoint_matches_its_sha256_and_a_changed_one_is_refused(tmp_path, monkeypatch):
    shipped = [(name, dataset) for name in ("ours",) for dataset in load_card(name).checkpoints]
    assert shipped, "ours ships a trained synthetic checkpoint in zoo/"
    for name, dataset in shipped:
        path = zoo_checkpoint(name, dataset)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == load_card(name).checkpoints[dataset].sha256
    with pytest.raises(CardError, match="ships no checkpoint for 'nyu'"):
        zoo_checkpoint("ours", "nyu")

    import hpbench.cards as cards

    name, dataset = shipped[0]
    entry = load_card(name).checkpoints[dataset]
    (tmp_path / f"{name}.toml").write_text(cards._zoo().joinpath(f"{name}.toml").read_text())
    (tmp_path / entry.file).write_bytes(zoo_checkpoint(name, dataset).read_bytes() + b"\0")
    monkeypatch.setattr(cards, "_zoo", lambda: tmp_path)
    with pytest.raises(CardError, match="does not match the card"):
        zoo_checkpoint(name, dataset)
    (tmp_path / entry.file).unlink()
    with pytest.raises(CardError, match="not in zoo/"):
        zoo_checkpoint(name, dataset)


def test_the_shipped_ours_beats_the_mean_pose_floor_on_fresh_synthetic_hands(tmp_path, monkeypatch):
    """The zoo's trained ``ours`` on 64 newly drawn synthetic hands (another seed than its training
    data): its error is under 60 % of the best mean-pose floor (the test frames' own mean pose in crop
    coordinates, which the trained ``meanpose`` can only approach)."""
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    root = ensure_synthetic("synth", tmp_path / "synth", frames=1, test_frames=64, seed=7, workers=1)
    score, used = evaluate_checkpoint("ours", None, dataset=get_dataset("synth"), data_root=root,
                                      predictions_path=tmp_path / "ours.txt")
    assert used == zoo_checkpoint("ours", "synth")
    cache = open_crop_cache("synth", "test", crop_settings("ours", get_dataset("synth")), data_root=root)
    mean_pose = np.broadcast_to(cache.joints.mean(axis=0), cache.joints.shape)
    camera = get_dataset("synth").camera
    floor_mm = metrics.joint_errors_mm(camera.uvd_to_xyz(cache.transform.to_image(mean_pose)),
                                       camera.uvd_to_xyz(cache.uvd)).mean()
    assert score.mean_error_mm < 0.6 * floor_mm, (score.mean_error_mm, floor_mm)  # measured: 20.7 vs 48.5 mm
