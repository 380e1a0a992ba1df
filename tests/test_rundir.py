"""Run directories (hpbench.rundir): the one path formula, the failure record, when a run is
finished, and which of their files collect_results reads."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from hpbench.results import make_rows, write_results
from hpbench.rundir import RunDir
from hpbench.scoring import collect_results


def _metrics(run_dir: RunDir, model: str, mean_mm: float, seed: int) -> None:
    rows = make_rows([{"metric": "mean_error", "value": mean_mm, "unit": "mm"}], model=model, dataset="synth",
                     split="test", n=4, seed=seed, date="2024-01-01")
    write_results(rows, run_dir.metrics)


def _failure() -> str:
    try:
        raise ValueError("no such checkpoint")
    except ValueError:
        return traceback.format_exc()


def test_a_run_lies_in_results_dataset_model_seed(tmp_path):
    assert RunDir.of(tmp_path, "nyu", "ours", 3).path == tmp_path / "nyu" / "ours-s3"
    assert RunDir.of("results", "synth-nyu", "a2j@resnet18", 0).path == Path("results/synth-nyu/a2j@resnet18-s0")
    run_dir = RunDir.of(tmp_path, "icvl", "trinet", 12)
    names = {"config.json": run_dir.config, "environment.json": run_dir.environment, "log.jsonl": run_dir.log,
             "checkpoints": run_dir.checkpoints, "predictions.txt": run_dir.predictions,
             "metrics.csv": run_dir.metrics, "profile.csv": run_dir.profile, "error.txt": run_dir.error}
    assert all(path == tmp_path / "icvl" / "trinet-s12" / name for name, path in names.items())


def test_the_failure_record_round_trips_and_is_cleared(tmp_path):
    run_dir = RunDir.of(tmp_path, "synth", "tinycnn", 0)
    assert run_dir.read_failure() is None and not run_dir.exists()
    text = _failure()
    run_dir.record_failure(text)  # creates the folder
    assert run_dir.read_failure() == text and "ValueError: no such checkpoint" in text
    assert run_dir.exists() and not run_dir.finished
    run_dir.clear_failure()
    assert run_dir.read_failure() is None
    run_dir.clear_failure()  # nothing to clear: no error


def test_the_config_round_trips(tmp_path):
    run_dir = RunDir.of(tmp_path, "synth", "tinycnn", 1)
    run_dir.write_config({"model": "tinycnn", "seed": 1, "max_steps": None})
    assert run_dir.read_config() == {"model": "tinycnn", "seed": 1, "max_steps": None}
    assert run_dir.exists() and not run_dir.finished


def test_a_run_is_finished_once_it_has_metrics_and_no_failure(tmp_path):
    checkpoints_only = RunDir.of(tmp_path, "synth", "a", 0)
    checkpoints_only.checkpoints.mkdir(parents=True)
    (checkpoints_only.checkpoints / "epoch0001.safetensors").write_bytes(b"")
    failed = RunDir.of(tmp_path, "synth", "b", 0)
    failed.record_failure(_failure())
    done = RunDir.of(tmp_path, "synth", "c", 0)
    _metrics(done, "c", 12.5, seed=0)
    assert not checkpoints_only.finished and not failed.finished
    assert done.finished and done.mean_error_mm() == pytest.approx(12.5)
    assert done.result_files() == [done.metrics]
    done.record_failure(_failure())  # e.g. profiling failed after the metrics were written
    assert not done.finished


def test_collect_results_reads_only_the_result_files_of_run_directories(tmp_path):
    """A run's predictions are scored in its metrics.csv and its error.txt is a traceback: neither is
    read as a prediction file (each would be refused); a failed run contributes nothing."""
    done = RunDir.of(tmp_path, "synth", "tinycnn", 0)
    done.write_config({"model": "tinycnn"})
    _metrics(done, "tinycnn", 12.5, seed=0)
    done.predictions.write_text("not a prediction line\n")
    RunDir.of(tmp_path, "synth", "broken", 0).record_failure(_failure())
    failed_late = RunDir.of(tmp_path, "synth", "late", 0)
    failed_late.write_config({"model": "late"})
    failed_late.predictions.write_text("half written\n")
    failed_late.record_failure(_failure())
    rows, refused = collect_results([tmp_path], dataset="synth")
    assert refused == []
    assert set(rows["model"]) == {"tinycnn"} and rows["value"].tolist() == [12.5]


def test_held_results_clear_and_atomic_writes(tmp_path):
    """What counts as an earlier run (not a bare failure record), clearing all but the lock, and the
    umask's mode for atomically written files (mkstemp alone gives 0600)."""
    import os

    from hpbench.files import atomic_write

    run_dir = RunDir.of(tmp_path, "synth", "tinycnn", 0)
    run_dir.record_failure("no such model")
    assert run_dir.held_results() == []
    run_dir.checkpoints.mkdir()
    assert run_dir.held_results() == []  # an empty checkpoints folder holds nothing
    (run_dir.checkpoints / "epoch0001.safetensors").write_bytes(b"x")
    run_dir.write_config({"model": "tinycnn"})
    assert run_dir.held_results() == ["config.json", "checkpoints/"]
    before = os.umask(0o027)
    try:
        with run_dir.lock(echo=lambda text: None):
            run_dir.clear()
            assert [p.name for p in run_dir.path.iterdir()] == [".lock"]
            written = atomic_write(run_dir.path / "a.txt", lambda tmp: Path(tmp).write_text("a"))
    finally:
        os.umask(before)
    assert written.stat().st_mode & 0o777 == 0o640 and written.read_text() == "a"
    assert sorted(p.name for p in run_dir.path.iterdir()) == ["a.txt"]  # no temporary left, the lock released
