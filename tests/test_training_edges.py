"""Training-loop edges (issue 17): a non-finite loss, resuming a finished run or a folder without checkpoints,
an empty or short training set, each optimizer and schedule, resume with augmentation, corrupt JSON state.

Expected values are hand-computed (learning rates) or come from an independent uninterrupted run. tinycnn on a
48-frame synthetic set (3 steps of 16 per epoch) keeps each test to seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import hpbench.models
from hpbench.cards import Constant, Cosine, StepDecay, load_card
from hpbench.data.cache import CropDataset, CropSettings, open_crop_cache
from hpbench.data.crop import Augmentation
from hpbench.data.specs import get_dataset
from conftest import small_synth_fixtures
from hpbench.models import create_model
from hpbench.rundir import RunDir
from hpbench.runner import RunSettings, run_one
from hpbench.train import Recipe, _optimizer, _scheduler, train, with_overrides

SYNTH = get_dataset("synth")


synth_root, cache_dir, _crop_cache = small_synth_fixtures()  # 48 + 16 frames, a crop cache per module


@pytest.fixture(scope="module")
def train_cache(synth_root, cache_dir):
    return open_crop_cache("synth", "train", CropSettings(size_px=128), data_root=synth_root, cache_dir=cache_dir)


def _settings(synth_root: Path, **changes) -> RunSettings:
    return RunSettings(**{"epochs": 2, "batch_size": 16, "data_root": synth_root, "profile": False, **changes})


def _run(results: Path, settings: RunSettings, said: list[str] | None = None):
    echo = (lambda text: None) if said is None else said.append
    return run_one("tinycnn", SYNTH, 0, settings, results_dir=results, progress=False, echo=echo)


@pytest.fixture(scope="module")
def finished(synth_root, cache_dir, tmp_path_factory):
    """The outcome of one finished 2-epoch run (the reference of the resume tests)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPBENCH_CACHE_DIR", str(cache_dir))
        outcome = _run(tmp_path_factory.mktemp("finished"), _settings(synth_root))
    assert outcome.error is None, outcome.error
    return outcome


@pytest.fixture()
def run_dir(finished, tmp_path) -> RunDir:
    copy = RunDir.of(tmp_path / "results", SYNTH.name, "tinycnn", 0)
    shutil.copytree(finished.run_dir.path, copy.path)
    return copy


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _recipe(**changes) -> Recipe:
    return Recipe(**{"optimizer": "adam", "lr": 1e-3, "batch_size": 16, "epochs": 2, "schedule": Cosine(),
                     "augment": False, "mixed_precision": False, **changes})


def _fresh() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("tinycnn", num_joints=16)


# --- a non-finite loss ---------------------------------------------------------------------------------------

def test_a_non_finite_loss_stops_at_once_naming_model_epoch_and_step(train_cache, tmp_path):
    dataset = CropDataset(train_cache, seed=0)
    model = _fresh()

    def poison(step: int, loss: float) -> None:
        if step == 4:  # the first step of epoch 2: the next forward pass gives nan
            with torch.no_grad():
                next(model.parameters()).fill_(math.nan)

    steps: list[int] = []
    with pytest.raises(FloatingPointError) as stopped:
        train(model, dataset, _recipe(epochs=3), checkpoint_dir=tmp_path / "ckpt", name="tinycnn",
              on_step=lambda step, loss: (steps.append(step), poison(step, loss)))
    assert str(stopped.value).startswith("tinycnn: the loss is nan (not finite) at step 5, epoch 2: ")
    assert "\n" not in str(stopped.value) and steps[-1] == 4  # stopped at once: no step 5 taken
    assert json.loads((tmp_path / "ckpt/last.json").read_text()) == {"checkpoint": "epoch0001"}
    # the epoch 1 checkpoint is intact: resuming from it ends where an uninterrupted run ends
    resumed, straight = _fresh(), _fresh()
    train(resumed, dataset, _recipe(epochs=3), checkpoint_dir=tmp_path / "ckpt", resume=True)
    train(straight, dataset, _recipe(epochs=3), checkpoint_dir=tmp_path / "straight")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_non_finite_loss_is_recorded_in_error_txt_and_resume_continues(finished, synth_root, tmp_path,
                                                                           monkeypatch):
    real = hpbench.models.create_model

    def nan_from_epoch_two(name: str, **options):
        model, calls = real(name, **options), [0]
        loss = model.loss

        def poisoned(*args):
            calls[0] += 1
            return loss(*args) * (math.nan if calls[0] > 3 else 1.0)  # 3 steps per epoch

        model.loss = poisoned
        return model

    monkeypatch.setattr(hpbench.models, "create_model", nan_from_epoch_two)
    failed = _run(tmp_path / "results", _settings(synth_root))
    assert not failed.refused and "\n" not in failed.error
    assert failed.error.startswith("FloatingPointError: tinycnn: the loss is nan (not finite) at step 4, epoch 2")
    assert "FloatingPointError" in failed.run_dir.error.read_text()
    assert sorted(p.name for p in failed.run_dir.checkpoints.glob("*.safetensors")) == [
        "epoch0001.optim.safetensors", "epoch0001.safetensors"]
    monkeypatch.setattr(hpbench.models, "create_model", real)
    resumed = _run(tmp_path / "results", _settings(synth_root, resume=True))
    assert resumed.error is None and "resumed at epoch 1" in resumed.notes[0]
    assert not resumed.run_dir.error.exists()
    assert (resumed.run_dir.checkpoints / "epoch0002.safetensors").read_bytes() == (
        finished.run_dir.checkpoints / "epoch0002.safetensors").read_bytes()


# --- checkpoint selection on the test set (TriHorn-Net's and A2J's reported numbers) -------------------------

def test_best_test_selection_scores_every_epoch_keeps_the_best_and_labels_it(run_dir, synth_root, tmp_path):
    from hpbench.evaluate import evaluate_checkpoint
    from hpbench.results import read_results

    # each epoch checkpoint scored through `hpbench eval --model`'s path, independently of the run
    errors = {path.stem: evaluate_checkpoint("tinycnn", path, dataset=SYNTH, data_root=synth_root,
                                             predictions_path=tmp_path / f"{path.stem}.txt")[0].mean_error_mm
              for path in sorted(run_dir.checkpoints.glob("epoch000?.safetensors"))}
    assert list(errors) == ["epoch0001", "epoch0002"] and errors["epoch0001"] != errors["epoch0002"]
    best = min(errors, key=errors.__getitem__)
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True, select="best-test"))
    assert outcome.error is None, outcome.error
    assert outcome.mean_error_mm == pytest.approx(errors[best], abs=1e-6)
    said = (f"best on the test set: {best} ({errors[best]:.2f} mm) of 2 epoch checkpoints "
            f"(the final epoch0002: {errors['epoch0002']:.2f} mm)")
    assert outcome.notes[1] == said
    assert json.loads(run_dir.protocol.read_text())["checkpoint"] == said
    rows = read_results([run_dir.metrics])
    assert set(rows["protocol"]) == {"TriHorn-Net (ICVL), best-on-test checkpoint"}


# --- resume: a finished run, a folder without checkpoints ----------------------------------------------------

def test_resuming_a_finished_run_trains_nothing_says_so_and_evaluates_again(run_dir, finished, synth_root, tmp_path):
    checkpoints, log = _files(run_dir.checkpoints), run_dir.log.read_bytes()
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True))
    assert outcome.error is None, outcome.error
    assert outcome.notes[0] == "resumed at epoch 2, already finished (6 steps): nothing trained, evaluated again"
    assert outcome.notes[1] == "evaluated the final checkpoint epoch0002.safetensors"
    assert _files(run_dir.checkpoints) == checkpoints and run_dir.log.read_bytes() == log
    assert outcome.mean_error_mm == finished.mean_error_mm
    recipe = with_overrides(load_card("tinycnn").recipe, epochs=2, batch_size=16)  # the run's
    cache = open_crop_cache("synth", "train", CropSettings(size_px=128), data_root=synth_root)
    result = train(_fresh(), CropDataset(cache, seed=0), recipe, checkpoint_dir=run_dir.checkpoints, resume=True,
                   on_step=lambda step, loss: pytest.fail("a finished run trained again"))
    assert result.already_finished and (result.epochs, result.steps) == (2, 6)
    assert result.checkpoint == run_dir.checkpoints / "epoch0002.safetensors"


def test_resume_without_any_checkpoint_trains_from_the_start_saying_so(finished, synth_root, tmp_path):
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True))
    assert outcome.error is None, outcome.error
    assert outcome.notes[0].endswith(f"(--resume: no checkpoint in {outcome.run_dir.checkpoints}, trained from "
                                     "the start)")
    assert (outcome.run_dir.checkpoints / "epoch0002.safetensors").read_bytes() == (
        finished.run_dir.checkpoints / "epoch0002.safetensors").read_bytes()


# --- empty and short training sets ---------------------------------------------------------------------------

def test_an_empty_training_split_is_a_one_line_error_before_any_work(synth_root, tmp_path):
    root = Path(shutil.copytree(synth_root, tmp_path / "empty"))
    (root / "Training/labels.txt").write_text("")
    outcome = _run(tmp_path / "results", _settings(root))
    assert "\n" not in outcome.error
    assert f"{root / 'Training/labels.txt'}: no frames in the synth train labels" in outcome.error
    assert not outcome.run_dir.config.exists() and not outcome.run_dir.checkpoints.exists()
    with pytest.raises(ValueError, match=r"^tinycnn: the training set is empty \(0 frames\)"):
        train(_fresh(), [], _recipe(), checkpoint_dir=tmp_path / "ckpt", name="tinycnn")
    assert not (tmp_path / "ckpt").exists()


def test_a_set_smaller_than_one_batch_trains_its_short_batch(train_cache, tmp_path):
    five = torch.utils.data.Subset(CropDataset(train_cache, seed=0), range(5))
    steps: list[int] = []
    result = train(_fresh(), five, _recipe(epochs=2), checkpoint_dir=tmp_path / "ckpt",
                   on_step=lambda step, loss: steps.append(step))
    assert steps == [1, 2] and result.steps == 2  # one batch of 5 per epoch: nothing dropped


# --- optimizers and schedules --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, cls, group, state", [
    ("adam", {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-4}, torch.optim.Adam,
     {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-4}, {"exp_avg", "exp_avg_sq", "step"}),
    ("adamw", {"weight_decay": 0.05}, torch.optim.AdamW, {"weight_decay": 0.05, "betas": (0.9, 0.999)},
     {"exp_avg", "exp_avg_sq", "step"}),
    ("rmsprop", {"momentum": 0.9, "eps": 1e-5}, torch.optim.RMSprop, {"momentum": 0.9, "eps": 1e-5},
     {"square_avg", "momentum_buffer", "step"}),
    ("sgd", {"momentum": 0.9, "weight_decay": 5e-4}, torch.optim.SGD, {"momentum": 0.9, "weight_decay": 5e-4},
     {"momentum_buffer"}),
])
def test_each_optimizer_is_built_with_its_hyperparameters_and_used(train_cache, tmp_path, name, options, cls, group,
                                                                     state):
    from safetensors.torch import load_file

    recipe = _recipe(optimizer=name, lr=0.01, epochs=1, **options)
    optimizer = _optimizer(torch.nn.Linear(2, 1), recipe)
    assert type(optimizer) is cls
    assert {key: optimizer.param_groups[0][key] for key in group} == group
    train(_fresh(), CropDataset(train_cache, seed=0), recipe, checkpoint_dir=tmp_path, max_steps=1)
    kept = {key.split(".", 1)[1] for key in load_file(tmp_path / "epoch0001.optim.safetensors")}
    scalars = json.loads((tmp_path / "epoch0001.json").read_text())["optimizer_scalars"]
    assert kept | {key.split(".", 1)[1] for key in scalars} == state


@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_runs_fused_on_the_cpu_and_takes_adams_first_step(name, cls):
    """torch's fused kernel (one pass over all tensors, not a Python loop) with Adam's own first step, by hand:
    m = (1 - b1) g, v = (1 - b2) g^2, so the bias-corrected step is lr g / (|g| + eps); AdamW first shrinks
    the weights by lr * wd, Adam adds wd * w to the gradient."""
    recipe = _recipe(optimizer=name, lr=0.01, epochs=1, eps=1e-8, weight_decay=0.1)
    layer = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
    optimizer = _optimizer(layer, recipe)
    assert type(optimizer) is cls and optimizer.param_groups[0]["fused"] is True
    grad = torch.tensor([[0.3, -0.2, 0.0]])
    weight = layer.weight.detach().clone()
    layer.weight.grad = grad.clone()
    optimizer.step()
    if name == "adam":
        g = grad + 0.1 * weight
        expected = weight - 0.01 * g / (g.abs() + 1e-8)
    else:
        expected = weight * (1 - 0.01 * 0.1) - 0.01 * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(layer.weight.detach(), expected, rtol=0, atol=1e-6)


def test_adam_is_left_to_torch_where_no_fused_kernel_fits():
    from hpbench.train import fused_adam

    assert fused_adam([torch.zeros(2)]) is True
    assert fused_adam([]) is None
    assert fused_adam([torch.zeros(2, device="meta")]) is None


@pytest.mark.parametrize("schedule, per_epoch", [
    (Constant(), [1.0, 1.0, 1.0, 1.0]),
    (Cosine(), [0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0]),
    (StepDecay(step_epochs=2, gamma=0.1), [1.0, 0.1, 0.1, 0.01]),
])
def test_each_schedule_gives_the_hand_computed_lr(train_cache, tmp_path, schedule, per_epoch):
    recipe = _recipe(lr=0.02, epochs=4, schedule=schedule)
    records: list[dict] = []
    train(_fresh(), CropDataset(train_cache, seed=0), recipe, checkpoint_dir=tmp_path, log=records.append)
    assert [r["lr"] for r in records] == pytest.approx([0.02 * f for f in per_epoch], abs=1e-12)
    scheduler = _scheduler(_optimizer(torch.nn.Linear(2, 1), recipe), recipe, total_steps=12, steps_per_epoch=3)
    lrs = []
    for _ in range(12):
        scheduler.optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[5] == pytest.approx(0.02 * per_epoch[1], abs=1e-12)  # after step 6 of 12: half way


# --- resume with augmentation --------------------------------------------------------------------------------

def test_a_resumed_run_with_augmentation_ends_with_the_uninterrupted_weights(train_cache, tmp_path):
    recipe = _recipe(epochs=2, lr=3e-3, augment=True)

    def augmented() -> CropDataset:  # a new one per process, as after a restart
        return CropDataset(train_cache, augmentation=Augmentation(), seed=1)

    straight = _fresh()
    full = train(straight, augmented(), recipe, checkpoint_dir=tmp_path / "a", seed=1)

    class Killed(Exception):
        pass

    def kill_in_epoch_two(step: int, loss: float) -> None:
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(_fresh(), augmented(), recipe, checkpoint_dir=tmp_path / "b", seed=1, on_step=kill_in_epoch_two)
    resumed_model = _fresh()
    resumed = train(resumed_model, augmented(), recipe, checkpoint_dir=tmp_path / "b", seed=1, resume=True)
    assert resumed.resumed_from_epoch == 1 and resumed.final_loss == full.final_loss
    for (name, a), b in zip(straight.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# --- corrupt JSON read back from a run directory -------------------------------------------------------------

@pytest.mark.parametrize("text, says", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_a_corrupt_config_json_refuses_resume_in_one_line_naming_it(run_dir, synth_root, tmp_path, text, says):
    run_dir.config.write_text(text)
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True))
    assert outcome.refused and "\n" not in outcome.error
    assert outcome.error.startswith(f"--resume: {run_dir.config}: {says}")


def test_an_unreadable_last_json_is_said_and_every_checkpoint_is_tried(run_dir, synth_root, tmp_path):
    (run_dir.checkpoints / "last.json").write_text('{"checkpoint": ')
    said: list[str] = []
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True), said)
    assert outcome.error is None, outcome.error
    assert any(f"{run_dir.checkpoints / 'last.json'} is unreadable" in line for line in said), said
    assert outcome.notes[0].startswith("resumed at epoch 2, already finished")


def test_a_checkpoint_state_without_its_fields_is_passed_over_naming_it(run_dir, finished, synth_root, tmp_path):
    state = run_dir.checkpoints / "epoch0002.json"
    state.write_text("{}")  # valid JSON, its sha256 rewritten to match: only the missing fields tell
    sums = run_dir.checkpoints / "epoch0002.sha256"
    sums.write_text("".join(f"{hashlib.sha256((run_dir.checkpoints / n).read_bytes()).hexdigest()}  {n}\n"
                            for n in ("epoch0002.safetensors", "epoch0002.optim.safetensors", "epoch0002.json")))
    said: list[str] = []
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True), said)
    assert outcome.error is None, outcome.error
    assert any("resuming from epoch0001" in line and "epoch0002.json lacks epoch, history" in line for line in said)
    assert outcome.mean_error_mm == finished.mean_error_mm  # epoch 2 trained again, bit for bit
