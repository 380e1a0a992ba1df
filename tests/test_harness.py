"""The harness end to end on a tiny synthetic set: train -> evaluate -> profile -> report, and resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from hpbench.cards import Cosine
from hpbench.data.cache import CropDataset, CropSettings, open_crop_cache
from hpbench.data.synth import ensure_synthetic
from hpbench.models import create_model
from hpbench.results import read_results
from hpbench.data.specs import get_dataset
from hpbench.runner import RunConfig, RunSettings, run
from hpbench.train import Recipe, load_checkpoint_weights, train


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return ensure_synthetic("synth", tmp_path_factory.mktemp("synth"), frames=48, test_frames=16, seed=3)


@pytest.fixture(scope="module")
def train_cache(synth_root, tmp_path_factory):
    return open_crop_cache("synth", "train", CropSettings(size_px=128), data_root=synth_root,
                           cache_dir=tmp_path_factory.mktemp("cache"))


def test_interrupted_then_resumed_training_equals_an_uninterrupted_run(train_cache, tmp_path):
    recipe = Recipe(optimizer="adam", lr=3e-3, batch_size=8, epochs=3, schedule=Cosine(), augment=True,
                    mixed_precision=True)

    def fresh():
        torch.manual_seed(0)
        return create_model("tinycnn", num_joints=16)

    dataset = CropDataset(train_cache, augmentation=None, seed=1)
    straight = fresh()
    full = train(straight, dataset, recipe, checkpoint_dir=tmp_path / "a", seed=1)

    class Killed(Exception):
        pass

    def kill_mid_epoch_two(step: int, loss: float) -> None:
        if step == 8:  # 6 steps per epoch: the middle of epoch 2
            raise Killed

    interrupted = fresh()
    with pytest.raises(Killed):
        train(interrupted, dataset, recipe, checkpoint_dir=tmp_path / "b", seed=1, on_step=kill_mid_epoch_two)
    assert json.loads((tmp_path / "b/last.json").read_text())["checkpoint"] == "epoch0001"
    resumed_model = fresh()
    resumed = train(resumed_model, dataset, recipe, checkpoint_dir=tmp_path / "b", seed=1, resume=True)
    assert resumed.resumed_from_epoch == 1 and resumed.steps == full.steps == 18
    assert resumed.final_loss == full.final_loss
    for (name, a), b in zip(straight.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    reloaded = load_checkpoint_weights(fresh(), resumed.checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), straight.state_dict().values()))
    with pytest.raises(ValueError, match="does not fit"):
        load_checkpoint_weights(create_model("tinycnn", num_joints=14), resumed.checkpoint)


@pytest.mark.slow
def test_compiled_training_follows_eager_training(train_cache, tmp_path):
    """``compile=True`` (``--compile``) trains the same model: weights after 3 steps within float tolerance
    (~35 s of compilation on a 2-core CPU, hence slow)."""
    # SGD: weight changes proportional to the gradients (Adam would amplify rounding of near-zero ones to +-lr)
    recipe = Recipe(optimizer="sgd", lr=1e-4, batch_size=8, epochs=1, schedule=Cosine(), augment=False,
                    mixed_precision=True)
    dataset = CropDataset(train_cache, augmentation=None, seed=1)
    trained = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = create_model("tinycnn", num_joints=16)
        train(model, dataset, recipe, checkpoint_dir=tmp_path / str(compile), seed=1, max_steps=3, compile=compile)
        trained.append(model.state_dict())
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the compiled path really ran
    for name, eager in trained[0].items():
        torch.testing.assert_close(trained[1][name], eager, rtol=1e-4, atol=1e-5, msg=name)


def test_run_trains_evaluates_profiles_and_reports(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    config = RunConfig(models=("tinycnn", "no-such-model"), dataset=get_dataset("synth"),
                       settings=RunSettings(epochs=2, batch_size=16, data_root=synth_root),
                       results_dir=tmp_path / "results", reports_dir=tmp_path / "reports")
    runs, written = run(config, progress=False, echo=lambda text: None)
    by_name = {r.model: r for r in runs}
    assert "unknown model 'no-such-model'" in by_name["no-such-model"].error  # isolated failure
    assert "UnknownNameError" in by_name["no-such-model"].run_dir.read_failure()
    tiny = by_name["tinycnn"]
    assert tiny.error is None and by_name["meanpose"].error is None  # the floor comes along
    for name in ("config.json", "environment.json", "log.jsonl", "metrics.csv", "profile.csv", "predictions.txt"):
        assert (tiny.run_dir.path / name).is_file(), name
    assert tiny.run_dir.finished and tiny.run_dir.read_config()["model"] == "tinycnn"
    host = json.loads(tiny.run_dir.environment.read_text())["host"]  # what decides bitwise agreement
    assert host["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert len(tiny.run_dir.log.read_text().splitlines()) == 2
    rows = read_results(tiny.run_dir.result_files())
    mean = rows.loc[rows["metric"] == "mean_error", "value"].item()
    assert mean == pytest.approx(tiny.mean_error_mm)
    # the report's numbers are the result rows' numbers
    table = pd.read_csv(tmp_path / "reports/synth/synth_table.csv").set_index("Model")
    assert table.loc["tinycnn", "Mean error (mm)"] == pytest.approx(mean)
    params = rows.loc[rows["metric"] == "params", "value"].item()
    assert table.loc["tinycnn", "Params (M)"] == pytest.approx(params / 1e6)
    at20 = rows.loc[(rows["metric"] == "success_rate_max") & (rows["threshold_mm"] == 20), "value"].item()
    assert table.loc["tinycnn", "SR@20mm (%)"] == pytest.approx(100 * at20)
    assert {p.name for p in written} >= {"synth_table.tex", "synth_table.md", "synth_success_rate.png"}
    # predictions are a community-format file that hpbench eval scores the same way
    from hpbench.scoring import GroundTruth, score_file

    cache = open_crop_cache("synth", "test", CropSettings(size_px=128), data_root=synth_root)
    gt = GroundTruth(dataset=get_dataset("synth"), uvd=cache.uvd, names=cache.files, source=synth_root)
    rescored = score_file(tiny.run_dir.predictions, gt)
    assert rescored.mean_error_mm == pytest.approx(mean, abs=1e-3)
    np.testing.assert_array_equal(rescored.frame_indices, np.arange(len(cache.files)))
    # the results folder as a whole reports the same rows: run directories' predictions and failures are skipped
    from hpbench.scoring import collect_results

    collected, refused = collect_results([tmp_path / "results"], dataset="synth")
    assert refused == [] and set(collected["model"]) == {"tinycnn", "meanpose"}
    assert collected.loc[(collected["model"] == "tinycnn") & (collected["metric"] == "mean_error"),
                         "value"].item() == pytest.approx(mean)
    # `hpbench eval --model` scores the final checkpoint to the same number
    from typer.testing import CliRunner

    from hpbench.cli import app

    checkpoint = tiny.run_dir.checkpoints / "epoch0002.safetensors"
    result = CliRunner().invoke(app, ["eval", "--model", "tinycnn", "--checkpoint", str(checkpoint), "--dataset",
                                      "synth", "--data-root", str(synth_root), "--save", str(tmp_path / "scored")])
    assert result.exit_code == 0, result.output
    assert f"{mean:.3f}" in result.output
    saved = read_results([tmp_path / "scored/synth/tinycnn.csv"])
    assert saved.loc[saved["metric"] == "mean_error", "value"].item() == pytest.approx(mean)


def test_autocast_dtype_follows_device_recipe_and_the_bf16_option():
    from hpbench.train import autocast_dtype

    mixed = Recipe(optimizer="adam", lr=1e-3, batch_size=8, epochs=1, schedule=Cosine(), augment=False,
                   mixed_precision=True)
    plain = Recipe(optimizer="adam", lr=1e-3, batch_size=8, epochs=1, schedule=Cosine(), augment=False,
                   mixed_precision=False)
    assert autocast_dtype(mixed, "cuda") == autocast_dtype(mixed, "cuda:1", cpu_bf16=True) == torch.float16
    assert autocast_dtype(mixed, "cpu") is None  # float32 unless asked
    assert autocast_dtype(mixed, "cpu", cpu_bf16=True) == torch.bfloat16
    assert autocast_dtype(plain, "cpu", cpu_bf16=True) is None and autocast_dtype(plain, "cuda") is None
    with pytest.raises(ValueError, match="--bf16 is mixed precision on a CPU"):
        RunSettings(bf16=True, device="cuda")


def test_cpu_bf16_trains_convolutions_in_bfloat16_and_the_rest_in_float32(train_cache, tmp_path):
    """``cpu_bf16`` (``--bf16``): the forward's convolutions compute in bfloat16, weights, gradients and
    Adam's state stay float32, and the loss stays near float32's (same weights, same batches)."""
    recipe = Recipe(optimizer="adam", lr=1e-3, batch_size=8, epochs=1, schedule=Cosine(), augment=False,
                    mixed_precision=True)
    dataset = CropDataset(train_cache, augmentation=None, seed=1)
    losses, seen = {}, []
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = create_model("tinycnn", num_joints=16)
        conv = next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d))
        hook = conv.register_forward_hook(lambda module, args, out, bf16=bf16: seen.append((bf16, out.dtype)))
        steps: list[float] = []
        train(model, dataset, recipe, checkpoint_dir=tmp_path / str(bf16), seed=1, max_steps=3, cpu_bf16=bf16,
              on_step=lambda step, loss, steps=steps: steps.append(loss))
        hook.remove()
        losses[bf16] = steps
        assert all(p.dtype == torch.float32 for p in model.parameters())  # what Adam updates
    assert {dtype for bf16, dtype in seen if bf16} == {torch.bfloat16}
    assert {dtype for bf16, dtype in seen if not bf16} == {torch.float32}
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-2) and losses[True] != losses[False]
