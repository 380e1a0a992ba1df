"""Nothing lost, nothing mixed (issue 17): one process owns a run directory, a rerun neither deletes nor
mixes an earlier run, resume checks the settings and the checkpoints' sha256, files follow the umask.

One tiny run (tinycnn, 2 epochs of a 48-frame synthetic set) is made once per module; each test works
on its own copy of that run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpbench.cards import Cosine
from hpbench.data.cache import CropDataset, CropSettings, open_crop_cache
from hpbench.data.specs import get_dataset
from conftest import small_synth_fixtures
from hpbench.models import create_model
from hpbench.rundir import RunDir, RunRefused
from hpbench.runner import RunSettings, run_one
from hpbench.train import Recipe, load_checkpoint_weights, train

SYNTH = get_dataset("synth")


synth_root, cache_dir, _crop_cache = small_synth_fixtures()  # 48 + 16 frames, a crop cache per module


def _settings(synth_root: Path, **changes) -> RunSettings:
    return RunSettings(**{"epochs": 2, "batch_size": 16, "data_root": synth_root, "profile": False, **changes})


def _run(results: Path, settings: RunSettings, said: list[str] | None = None):
    echo = (lambda text: None) if said is None else said.append
    return run_one("tinycnn", SYNTH, 0, settings, results_dir=results, progress=False, echo=echo)


@pytest.fixture(scope="module")
def finished(synth_root, cache_dir, tmp_path_factory):
    """(results folder, outcome) of one finished run, made under umask 022."""
    results = tmp_path_factory.mktemp("finished")
    before = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HPBENCH_CACHE_DIR", str(cache_dir))
            outcome = _run(results, _settings(synth_root))
    finally:
        os.umask(before)
    assert outcome.error is None, outcome.error
    return results, outcome


@pytest.fixture()
def run_dir(finished, tmp_path) -> RunDir:
    """A copy of the finished run's directory, in the test's own results folder."""
    source = finished[1].run_dir
    copy = RunDir.of(tmp_path / "results", SYNTH.name, "tinycnn", 0)
    shutil.copytree(source.path, copy.path)
    return copy


def _snapshot(run_dir: RunDir) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir.path)): p.read_bytes() for p in sorted(run_dir.path.rglob("*")) if p.is_file()}


def test_files_follow_the_umask_and_the_config_records_what_ran(finished):
    run_dir = finished[1].run_dir
    written = [run_dir.metrics, run_dir.config, run_dir.environment, run_dir.log, run_dir.predictions,
               *run_dir.checkpoints.iterdir()]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in written}
    assert set(modes.values()) == {"0o644"}, modes
    assert not run_dir.lock_file.exists()  # released at the end
    recipe = run_dir.read_config()["recipe"]
    assert recipe["mixed_precision"] is False  # the card asks for it, but a CPU run does not use it unasked
    assert run_dir.read_config()["autocast"] is None
    sums = (run_dir.checkpoints / "epoch0002.sha256").read_text().split()
    assert sums[1::2] == ["epoch0002.safetensors", "epoch0002.optim.safetensors", "epoch0002.json"]


def test_a_second_run_into_a_busy_folder_is_refused(run_dir, synth_root):
    before = _snapshot(run_dir)
    with run_dir.lock() as holder:  # this process: alive
        outcome = _run(run_dir.path.parent.parent, _settings(synth_root, resume=True))
        assert outcome.refused and "\n" not in outcome.error
        assert f"is in use by pid {os.getpid()}@{socket.gethostname()} since {holder['started']}" in outcome.error
        with pytest.raises(RunRefused, match="in use by pid"), run_dir.lock():
            pass
    assert not run_dir.lock_file.exists()
    assert _snapshot(run_dir) == before  # nothing written, not even error.txt


def test_a_stale_lock_is_taken_over(run_dir, synth_root, tmp_path, monkeypatch):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = int(done.stdout)
    run_dir.lock_file.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "yesterday"}))
    said: list[str] = []
    outcome = _run(tmp_path / "results", _settings(synth_root, overwrite=True), said)
    assert outcome.error is None, outcome.error
    assert any(f"took over the stale lock of pid {dead}@" in line for line in said), said
    assert not run_dir.lock_file.exists()
    # a lock of another host cannot be judged: refused, unless it is an earlier attempt of this Slurm job
    elsewhere = {"pid": dead, "host": "elsewhere", "started": "yesterday", "slurm_job": "77_1", "slurm_restart": 0}
    run_dir.lock_file.write_text(json.dumps(elsewhere))
    with pytest.raises(RunRefused, match=f"in use by pid {dead}@elsewhere"), run_dir.lock():
        pass
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    with pytest.raises(RunRefused, match="in use by"), run_dir.lock():  # the same attempt (srun twice): busy
        pass
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # requeued after preemption, onto another node
    said.clear()
    with run_dir.lock(echo=said.append) as record:
        assert record["slurm_job"] == "77_1" and said and "took over the stale lock" in said[0]


def test_a_rerun_without_resume_is_refused_and_overwrite_starts_afresh(run_dir, synth_root, tmp_path):
    before = _snapshot(run_dir)
    outcome = _run(tmp_path / "results", _settings(synth_root))
    assert outcome.refused and "\n" not in outcome.error
    assert "already holds a run (config.json" in outcome.error and "checkpoints/" in outcome.error
    assert "--resume" in outcome.error and "--overwrite" in outcome.error
    assert _snapshot(run_dir) == before  # log.jsonl and the rest untouched
    (run_dir.path / "stale.txt").write_text("from an older run")
    outcome = _run(tmp_path / "results", _settings(synth_root, epochs=1, overwrite=True))
    assert outcome.error is None, outcome.error
    assert sorted(p.name for p in run_dir.checkpoints.iterdir()) == [
        "epoch0001.json", "epoch0001.optim.safetensors", "epoch0001.safetensors", "epoch0001.sha256", "last.json"]
    assert not (run_dir.path / "stale.txt").exists()
    assert len(run_dir.log.read_text().splitlines()) == 1 and run_dir.read_config()["recipe"]["epochs"] == 1
    with pytest.raises(ValueError, match="give one of them"):
        RunSettings(resume=True, overwrite=True)


@pytest.mark.parametrize("change, named", [
    ({"batch_size": 8}, "batch_size 16 in config.json, 8 now"),
    ({"data_root": "copy"}, "data_root "),
    ({"epochs": 3}, "epochs 2 in config.json, 3 now"),
])
def test_resume_with_other_settings_is_refused_naming_them(run_dir, synth_root, tmp_path, change, named):
    if change.get("data_root") == "copy":
        change = {"data_root": Path(shutil.copytree(synth_root, tmp_path / "other-data"))}
    before = _snapshot(run_dir)
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True, **change))
    assert outcome.refused and outcome.error.startswith("--resume: ") and "\n" not in outcome.error
    assert named in outcome.error
    assert _snapshot(run_dir) == before


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # one flipped bit in the middle: same size, still loads, only the sha256 tells
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_epoch(run_dir, finished, synth_root, tmp_path, how):
    _damage(run_dir.checkpoints / "epoch0002.safetensors", how)
    said: list[str] = []
    outcome = _run(tmp_path / "results", _settings(synth_root, resume=True), said)
    assert outcome.error is None, outcome.error
    warning = next(line for line in said if "warning" in line)
    assert "resuming from epoch0001" in warning and "epoch0002" in warning
    assert ("does not match its sha256" in warning) if how == "flip" else ("sha256" in warning)
    assert any("resumed at epoch 1" in note for note in outcome.notes)
    records = [json.loads(line) for line in run_dir.log.read_text().splitlines()]
    assert [r.get("epoch") for r in records] == [1, None, 2] and "resuming from epoch0001" in records[1]["warning"]
    assert outcome.mean_error_mm == finished[1].mean_error_mm  # epoch 2 trained again, bit for bit


def _tiny_training(tmp_path: Path, synth_root: Path, *, num_joints: int = 16, resume: bool = False,
                   warn=None) -> Path:
    cache = open_crop_cache("synth", "train", CropSettings(size_px=128), data_root=synth_root)
    recipe = Recipe(optimizer="adam", lr=1e-3, batch_size=16, epochs=2, schedule=Cosine(), augment=False,
                    mixed_precision=False)
    torch.manual_seed(0)
    train(create_model("tinycnn", num_joints=num_joints), CropDataset(cache, seed=0), recipe,
          checkpoint_dir=tmp_path / "ckpt", resume=resume, warn=warn)
    return tmp_path / "ckpt"


def test_no_intact_checkpoint_and_another_models_checkpoint_are_one_line_errors(synth_root, tmp_path):
    directory = _tiny_training(tmp_path, synth_root)
    with pytest.raises(ValueError, match="epoch0002.safetensors: does not fit the model") as other:
        _tiny_training(tmp_path, synth_root, num_joints=14, resume=True)
    assert "\n" not in str(other.value)
    _damage(directory / "epoch0002.safetensors", "flip")  # `hpbench eval --checkpoint` checks the sha256 too
    with pytest.raises(ValueError, match="epoch0002.safetensors: corrupt"):
        load_checkpoint_weights(create_model("tinycnn", num_joints=16), directory / "epoch0002.safetensors")
    for epoch in (1, 2):
        _damage(directory / f"epoch{epoch:04d}.json", "flip")
    with pytest.raises(ValueError, match="no intact checkpoint to resume from") as none:
        _tiny_training(tmp_path, synth_root, resume=True)
    assert "\n" not in str(none.value) and "epoch0001" in str(none.value) and "epoch0002" in str(none.value)


def test_another_models_checkpoints_in_a_run_directory_are_a_one_line_error(run_dir, synth_root, tmp_path):
    other = RunDir.of(tmp_path / "results", SYNTH.name, "meanpose", 0)
    shutil.copytree(run_dir.checkpoints, other.checkpoints)
    outcome = run_one("meanpose", SYNTH, 0, _settings(synth_root, resume=True), results_dir=tmp_path / "results",
                      progress=False, echo=lambda text: None)
    assert not outcome.refused and "\n" not in outcome.error
    assert "epoch0002.safetensors: does not fit the model" in outcome.error


def test_the_cli_says_a_refusal_in_one_line(run_dir, synth_root, tmp_path):
    from typer.testing import CliRunner

    from hpbench.cli import app

    common = ["train", "--model", "tinycnn", "--dataset", "synth", "--epochs", "2", "--batch-size", "16",
              "--data-root", str(synth_root), "--results", str(tmp_path / "results")]
    refused = CliRunner().invoke(app, common)
    assert refused.exit_code != 0 and "already holds a run" in refused.output and "--overwrite" in refused.output
    assert "traceback" not in refused.output and not run_dir.error.exists()
    both = CliRunner().invoke(app, [*common, "--resume", "--overwrite"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_prediction_files_reports_and_figures_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A full disk while rewriting a prediction file, a report table or a figure names the file and leaves
    the earlier one whole (each goes through hpbench.files.atomic_write)."""
    import errno
    import os

    import numpy as np

    from hpbench.predictions import write_prediction_file
    from hpbench.report import write_report
    from hpbench.report.figures import save_figure

    path = write_prediction_file(tmp_path / "p.txt", np.ones((2, 1, 3)))
    before = path.read_bytes()
    real_replace = os.replace

    def full_disk(source, target, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: '.*p\.txt'"):
        write_prediction_file(path, np.zeros((2, 1, 3)))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["p.txt"]
    from hpbench.results import make_rows

    rows = make_rows([{"metric": "mean_error", "value": 1.0, "unit": "mm"}], model="m", dataset="nyu", split="test")
    with pytest.raises(OSError, match="nyu_"):
        write_report(rows, tmp_path / "report", formats=("markdown",), figures=False)
    import matplotlib.figure

    with pytest.raises(OSError, match=r"fig\.pdf"):
        save_figure(matplotlib.figure.Figure(), tmp_path / "fig")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not [p for p in tmp_path.rglob("*.tmp")]
