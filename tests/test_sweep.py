"""Sweeps through submitit: 2 models x 2 seeds on this machine, reports as mean +- std, skip and resume.

The sweep itself runs once per module (local executor, all jobs at once, tiny
settings: 16 synthetic frames, 2 steps); the tests read its files. Seed
aggregation is also tested on hand-made rows, without any training.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpbench import metrics
from hpbench.data.specs import get_dataset
from hpbench.report import markdown_table, summary_table, write_report
from hpbench.results import make_rows, read_results, write_results
from hpbench.runner import RunSettings
from hpbench.scoring import collect_results
from hpbench.sweep import Jobs, SweepConfig, sweep

MODELS = ("tinycnn", "meanpose")
SEEDS = (0, 1)


def _config(tmp: Path, *, executor: str = "local", **changes) -> SweepConfig:
    settings = RunSettings(frames=16, epochs=1, max_steps=2, batch_size=8, threads=1)
    fields = dict(models=MODELS, datasets=(get_dataset("synth"),), seeds=SEEDS, settings=settings,
                  results_dir=tmp / "results", reports_dir=tmp / "reports", floor=False,
                  jobs=Jobs(executor=executor, max_parallel=4, poll_s=0.2))
    return SweepConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(config, outcomes, fake home) of one local sweep; the synthetic set goes under the fake home."""
    tmp = tmp_path_factory.mktemp("sweep")
    home = tmp / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPBENCH_CACHE_DIR", str(tmp / "crops"))  # inherited by the job processes
        patch.setattr(Path, "home", classmethod(lambda cls: home))  # the default synthetic root, in this process
        config = _config(tmp)
        outcomes = sweep(config, progress=False, echo=lambda text: None)
    return config, outcomes, home


def _seed_values(config: SweepConfig, model: str, metric: str, threshold_mm: float | None = None) -> np.ndarray:
    values = []
    for seed in SEEDS:
        rows = read_results([config.results_dir / "synth" / f"{model}-s{seed}" / "metrics.csv"])
        assert (rows["seed"] == seed).all()
        mine = rows[rows["metric"] == metric]
        if threshold_mm is not None:
            mine = mine[np.isclose(mine["threshold_mm"], threshold_mm)]
        values.append(mine["value"].item())
    return np.array(values)


def test_every_run_is_one_job(swept):
    config, outcomes, _ = swept
    by_key = {(o.model, o.seed): o for o in outcomes}
    assert sorted(by_key) == sorted((m, s) for m in MODELS for s in SEEDS)
    for model in MODELS:
        for seed in SEEDS:
            outcome = by_key[model, seed]
            assert outcome.status == "done", outcome.error
            assert outcome.job_id and outcome.run_dir.path == config.results_dir / "synth" / f"{model}-s{seed}"
            assert outcome.run_dir.finished and outcome.run_dir.read_failure() is None
    assert len({o.job_id for o in outcomes}) == len(outcomes)  # one job per (model, dataset, seed)


def test_the_data_is_rendered_once_before_submission_and_shared_by_all_seeds(swept):
    config, outcomes, home = swept
    roots = {o.run_dir.read_config()["data_root"] for o in outcomes if o.status == "done"}
    assert roots == {str(home / ".cache/hpbench/synth-16-4-s0")}  # rendered here: jobs would use the real home
    # costs do not depend on the seed: profiled once per model, in its first seed's job
    for model in MODELS:
        assert (config.results_dir / "synth" / f"{model}-s0" / "profile.csv").is_file()
        assert not (config.results_dir / "synth" / f"{model}-s1" / "profile.csv").exists()


def test_report_shows_mean_and_std_over_seeds_of_each_model(swept):
    config, _, _ = swept
    out = config.reports_dir / "synth"
    table = pd.read_csv(out / "synth_table.csv", keep_default_na=False).set_index("Model")
    assert sorted(table.index) == sorted(MODELS)
    markdown = (out / "synth_table.md").read_text()
    latex = (out / "synth_table.tex").read_text()
    assert "Mean ± sample standard deviation over seeds" in markdown
    for model in MODELS:
        errors = _seed_values(config, model, "mean_error")
        mean, std = errors.mean(), errors.std(ddof=1)
        assert table.loc[model, "Mean error (mm)"] == pytest.approx(mean, abs=1e-9)
        assert table.loc[model, "Mean error std (mm)"] == pytest.approx(std, abs=1e-9)
        assert table.loc[model, "Seeds"] == 2
        at20 = 100 * _seed_values(config, model, "success_rate_max", 20.0)
        assert table.loc[model, "SR@20mm std (%)"] == pytest.approx(at20.std(ddof=1), abs=1e-9)
        cell = f"{mean:.3f} ± {std:.3f}"
        shown = table.loc[model, "Method"]  # the display name
        # the run's protocol footnotes its row (a letter after the name)
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {shown}<sup>a</sup> "))
        assert re.search(rf"\|\s+(\*\*)?{re.escape(cell)}(\*\*)?\s+\|", row), row
        assert f"{mean:.3f} $\\pm$ {std:.3f}" in latex
    assert _seed_values(config, "tinycnn", "mean_error").std() > 0  # seeds differ: the std is a real one
    assert "Params (M)" in table.columns  # the first seed's profile


def test_a_second_submission_skips_finished_runs_resumes_others_and_reports_failures(swept, tmp_path, monkeypatch):
    config, outcomes, home = swept
    shutil.copytree(config.results_dir, tmp_path / "results", ignore=shutil.ignore_patterns("sweep-logs"))
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(Path(config.results_dir).parent / "crops"))
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    interrupted = tmp_path / "results/synth/tinycnn-s1"
    (interrupted / "metrics.csv").unlink()  # as if the job died after its last checkpoint
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "results/synth").glob("*/metrics.csv")}
    log_lines = (interrupted / "log.jsonl").read_text()
    # in this process (debug executor): the resumed job must not train again, a failing job sinks nothing
    again = sweep(_config(tmp_path, models=(*MODELS, "no-such-model"), executor="debug"), progress=False,
                  echo=lambda text: None)
    status = {(o.model, o.seed): o.status for o in again}
    assert status == {("tinycnn", 0): "skipped", ("meanpose", 0): "skipped", ("meanpose", 1): "skipped",
                      ("tinycnn", 1): "done", ("no-such-model", 0): "failed", ("no-such-model", 1): "failed"}
    for failed in (o for o in again if o.status == "failed"):
        assert "unknown model 'no-such-model'" in failed.error
        assert "UnknownNameError" in failed.run_dir.read_failure() and not failed.run_dir.finished
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in before.items())  # skipped: untouched
    resumed = next(o for o in again if o.status == "done")
    assert resumed.run_dir.read_failure() is None
    assert any("resumed at epoch 1" in note for note in resumed.notes)
    assert (interrupted / "log.jsonl").read_text() == log_lines  # no epoch trained again
    first = next(o for o in outcomes if (o.model, o.seed) == ("tinycnn", 1))
    assert resumed.mean_error_mm == pytest.approx(first.mean_error_mm, abs=1e-9)  # the same checkpoint evaluated
    assert (tmp_path / "reports/synth/synth_table.md").is_file()


# --- seed aggregation on hand-made rows ----------------------------------------------------------


def _rows(model: str, mean_mm: float, *, seed: int | None, dataset: str = "nyu") -> pd.DataFrame:
    """Rows of one (model, seed) whose max-joint errors are all ``mean_mm`` (a step success curve)."""
    errors = np.full((10, 14), mean_mm)
    curve = metrics.success_rate(errors, criterion="max")
    records = [{"metric": "mean_error", "value": mean_mm, "unit": "mm"}]
    records += [{"metric": "joint_error", "joint": f"j{i}", "value": mean_mm, "unit": "mm"} for i in range(14)]
    records += [{"metric": "success_rate_max", "threshold_mm": t, "value": r, "unit": "fraction"}
                for t, r in zip(metrics.THRESHOLDS_MM, curve, strict=True)]
    records.append({"metric": "auc_max", "value": metrics.auc(metrics.THRESHOLDS_MM, curve), "unit": "fraction"})
    return make_rows(records, model=model, dataset=dataset, split="test", n=10, seed=seed, date="2024-01-01")


def test_seed_aggregation_of_hand_made_rows(tmp_path):
    rows = pd.concat([_rows("net", 10.0, seed=0), _rows("net", 30.0, seed=1), _rows("net", 50.0, seed=2),
                      _rows("single", 25.0, seed=None)], ignore_index=True)
    table = summary_table(rows, dataset="nyu").set_index("Model")
    assert table.loc["net", "Mean error (mm)"] == 30.0 and table.loc["net", "Mean error std (mm)"] == 20.0
    assert table.loc["net", "SR@20mm (%)"] == pytest.approx(100 / 3)  # one seed of three within 20 mm
    assert table.loc["net", "SR@20mm std (%)"] == pytest.approx(np.std([100, 0, 0], ddof=1))
    assert table.loc["net", "Seeds"] == "3" and table.loc["single", "Seeds"] == "1"
    assert table.loc["single", "Mean error (mm)"] == 25.0 and np.isnan(table.loc["single", "Mean error std (mm)"])
    text = markdown_table(summary_table(rows, dataset="nyu"))
    assert "| 30.000 ± 20.000 |" in text
    assert re.search(r"\|\s+\*\*25\.000\*\*\s+\|", text)  # one seed: plain value (and the best mean, bold)
    # without seeds the table keeps its usual columns
    assert "Seeds" not in summary_table(_rows("single", 25.0, seed=None), dataset="nyu").columns
    # the same seed twice is still a duplicate
    with pytest.raises(ValueError, match=r"several mean_error rows for model=net \(seed 0\)"):
        summary_table(pd.concat([rows, _rows("net", 11.0, seed=0)], ignore_index=True), dataset="nyu")
    # figures: one curve per method, at the mean, with a band for the seeded one
    written = write_report(rows, tmp_path / "report", formats=("csv",))
    assert {p.name for p in written} >= {"nyu_success_rate.png", "nyu_joint_error.png"}
    from hpbench.report.figures import success_rate_figure

    axes = success_rate_figure(rows, dataset="nyu").axes[0]
    assert len(axes.lines) == 2 and len(axes.collections) == 1  # a +- std band for net only
    assert metrics.THRESHOLDS_MM[15] == 15.0
    assert axes.lines[1].get_ydata()[15] == pytest.approx(100 / 3)  # net (ranked second): only seed 0 within 15 mm


def test_collect_results_keeps_seeds_and_refuses_duplicates(tmp_path):
    for seed, mean in ((0, 10.0), (1, 30.0)):
        write_results(_rows("net", mean, seed=seed), tmp_path / f"net-s{seed}" / "metrics.csv")
    write_results(_rows("net", 99.0, seed=1), tmp_path / "z-copy" / "metrics.csv")
    write_results(_rows("net", 99.0, seed=None), tmp_path / "zz-unseeded" / "metrics.csv")
    rows, refused = collect_results([tmp_path])
    assert sorted(set(rows["seed"].dropna())) == [0, 1] and 99.0 not in set(rows["value"])
    assert len(refused) == 2
    assert "net on nyu (test, seed 1) already comes from" in refused[0] and "net-s1" in refused[0]
    assert "net on nyu (test) already comes from" in refused[1]
    assert summary_table(rows, dataset="nyu").loc[0, "Mean error (mm)"] == 20.0


def test_hpbench_report_aggregates_the_seeds_of_a_sweep(swept, tmp_path):
    from typer.testing import CliRunner

    from hpbench.cli import app

    config, outcomes, _ = swept
    files = [str(path) for o in outcomes for path in o.run_dir.result_files()]
    result = CliRunner().invoke(app, ["report", *files, "--out", str(tmp_path), "--format", "markdown",
                                      "--no-figures"])
    assert result.exit_code == 0, result.output
    errors = _seed_values(config, "tinycnn", "mean_error")
    assert f"{errors.mean():.3f} ± {errors.std(ddof=1):.3f}" in (tmp_path / "synth_table.md").read_text()
    assert not (tmp_path / "refused.txt").exists()  # seeds are not duplicates


def test_slurm_submission_is_one_array_with_the_sweeps_resources(tmp_path, monkeypatch):
    """Without a cluster: stand-in srun/sbatch, then read the batch script submitit wrote."""
    from hpbench.sweep import _executor, _RunJob

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", 'echo "Submitted batch job 4242"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    synth = get_dataset("synth")
    config = SweepConfig(models=("tinycnn",), datasets=(synth,), seeds=(0, 1, 2), results_dir=tmp_path / "results",
                         jobs=Jobs(executor="slurm", partition="gpu", gpus_per_job=1, cpus_per_job=8, timeout_min=90,
                                   max_parallel=2))
    chosen = _executor(config, 3)
    assert (chosen.parallel, chosen.threads) == (2, 8)  # torch threads follow the CPUs Slurm gives
    with chosen.executor.batch():
        jobs = [chosen.executor.submit(_RunJob(), "tinycnn", synth, seed, RunSettings(), config.results_dir)
                for seed in (0, 1, 2)]
    assert [job.job_id for job in jobs] == ["4242_0", "4242_1", "4242_2"]
    (script,) = (tmp_path / "results/sweep-logs").rglob("*_submission.sh")
    text = script.read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--signal=USR2@"):  # USR2 before the time limit: submitit requeues the job, which resumes
        assert f"#SBATCH {line}" in text
