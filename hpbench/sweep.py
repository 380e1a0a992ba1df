"""Sweeps: models x datasets x seeds, one submitit job per run, on this machine or on Slurm.

Each (model, dataset, seed) is one job calling :func:`hpbench.runner.run_model`
into the usual run directory ``results/<dataset>/<model>-s<seed>/``. submitit
gives the three executors: ``local`` (the default: subprocesses on this machine,
at most ``max_parallel`` at a time), ``slurm`` (one job array, ``max_parallel``
as its parallelism) and ``debug`` (in this process, one after the other), so no
scheduler of our own is needed.

A sweep is resumable: a run whose metrics.csv exists is skipped (``force``
retrains it), and any other run resumes from its newest epoch checkpoint, both
when the sweep is submitted again and when Slurm requeues a preempted or
timed-out job (the job is :class:`submitit.helpers.Checkpointable`). A failing
run writes its traceback to error.txt in its run directory and the others go on.
The report of each dataset is then built from the result files of every run
present, several seeds of a model aggregated as mean +- std
(:func:`hpbench.report.tables.summary_table`).

Every seed trains and tests on the same data: a synthetic dataset is rendered
once, before submission, with ``data_seed``, and the run's ``seed`` drives the
initialisation, shuffling and augmentation only.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import submitit

from hpbench.runner import FLOOR_MODEL, ModelRun, RunConfig

__all__ = ["EXECUTORS", "SweepConfig", "SweepOutcome", "sweep"]

Executor = Literal["local", "slurm", "debug"]
EXECUTORS: tuple[str, ...] = ("local", "slurm", "debug")
"""Where jobs run: subprocesses here, a Slurm cluster, or this process (debugging)."""


@dataclass(frozen=True)
class SweepConfig:
    """Every (model, dataset, seed) of ``models`` x ``datasets`` x ``seeds``, one job each.

    Run settings (``epochs``, ``max_steps``, ``batch_size``, ``quick``, ``frames``,
    ``test_frames``, ``device``) mean what they mean in
    :class:`hpbench.runner.RunConfig`; ``frames``, ``test_frames`` and
    ``data_seed`` size and seed the synthetic data (same data for every seed);
    ``data_root`` is only for a single dataset. ``floor`` adds the mean-pose model.
    ``profile``: profile each model once, in its first seed's job (costs do not
    depend on the seed). ``force``: retrain runs that already have metrics.
    ``threads``: torch threads per job (default: local, the cores shared by
    ``max_parallel`` jobs; Slurm, ``cpus_per_job``). ``max_parallel``: jobs
    running at once (default: local, one per 4 cores; Slurm, no cap).
    ``timeout_min`` limits each job (local and Slurm). ``log_dir``: submitit's
    pickles and job logs (default ``<results_dir>/sweep-logs``).
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...] = ("synth",)
    seeds: tuple[int, ...] = (0,)
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    quick: bool = False
    frames: int = 2000
    test_frames: int | None = None
    data_seed: int = 0
    data_root: Path | None = None
    results_dir: Path = Path("results")
    reports_dir: Path = Path("reports")
    device: str = "cpu"
    threads: int | None = None
    profile: bool = True
    floor: bool = True
    force: bool = False
    eval_dir: Path | None = None
    executor: Executor = "local"
    max_parallel: int | None = None
    timeout_min: int = 24 * 60
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    log_dir: Path | None = None
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        if not self.models or not self.datasets or not self.seeds:
            raise ValueError("a sweep needs at least one model, one dataset and one seed")
        if self.data_root is not None and len(self.datasets) > 1:
            raise ValueError("data_root names the root of one dataset: sweep several datasets through their "
                             "environment variables ($HPBENCH_<DATASET>_ROOT) instead")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {self.max_parallel}")

    def run_names(self) -> list[str]:
        """The models swept: ``models`` without repeats, then the floor model when ``floor``."""
        names = list(dict.fromkeys(self.models))
        if self.floor and FLOOR_MODEL not in names:
            names.append(FLOOR_MODEL)
        return names


Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class SweepOutcome:
    """One run of a sweep: trained now (done), found finished (skipped), or failed with ``error``."""

    model: str
    dataset: str
    seed: int
    run_dir: Path
    status: Status
    mean_error_mm: float | None = None
    error: str | None = None
    job_id: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _run_dir(config: SweepConfig, model: str, dataset: str, seed: int) -> Path:
    return config.results_dir / dataset / f"{model}-s{seed}"  # runner.run_model's layout


def _record_failure(run_dir: Path, text: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text(text)


class _RunJob(submitit.helpers.Checkpointable):
    """The job of one (model, dataset, seed): run_model, its failure caught and written to error.txt.

    Requeued by Slurm on preemption or timeout (the inherited ``checkpoint``),
    always resuming: the newest epoch checkpoint holds the progress.
    """

    def __call__(self, name: str, config: RunConfig, data_root: Path | None) -> ModelRun:
        import torch

        from hpbench.runner import run_model

        threads = torch.get_num_threads()  # restored: the debug executor runs jobs in the caller's process
        if config.threads:
            torch.set_num_threads(config.threads)
        run_dir = config.results_dir / config.dataset / f"{name}-s{config.seed}"
        (run_dir / "error.txt").unlink(missing_ok=True)  # a stale failure of an earlier attempt
        try:
            return run_model(name, config, data_root=data_root, progress=False, echo=print)
        except Exception as error:  # returned, not raised: the sweep reports it and goes on
            _record_failure(run_dir, traceback.format_exc())
            return ModelRun(model=name, run_dir=run_dir, error=f"{type(error).__name__}: {error}")
        finally:
            torch.set_num_threads(threads)

    def checkpoint(self, name: str, config: RunConfig, data_root: Path | None) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, name, replace(config, resume=True), data_root)


def _prepare_data(config: SweepConfig, dataset: str, progress: bool) -> Path | None:
    """The dataset's root, rendering a synthetic one now so that no two jobs render it at once."""
    from hpbench.runner import QUICK_TEST_FRAMES, resolve_data_root

    test_frames = config.test_frames or (QUICK_TEST_FRAMES if config.quick else None)
    return resolve_data_root(dataset, config.data_root, frames=config.frames, test_frames=test_frames,
                             seed=config.data_seed, progress=progress)


@dataclass(frozen=True)
class _Executor:
    executor: submitit.AutoExecutor
    parallel: int  # jobs running at once
    threads: int | None  # torch threads per job


def _executor(config: SweepConfig, jobs: int) -> _Executor:
    """The submitit executor of ``config``; RuntimeError when Slurm is asked for and absent."""
    log_dir = config.log_dir or config.results_dir / "sweep-logs"
    executor = submitit.AutoExecutor(folder=log_dir / "%j", cluster=config.executor)
    cores = os.cpu_count() or 1
    if config.executor == "slurm":
        parallel = config.max_parallel or jobs
        threads = config.threads or config.cpus_per_job
    else:
        parallel = config.max_parallel or max(1, cores // 4)
        threads = config.threads or (max(1, cores // parallel) if config.executor == "local" else None)
    executor.update_parameters(
        name="hpbench-sweep", timeout_min=config.timeout_min, gpus_per_node=config.gpus_per_job or None,
        cpus_per_task=config.cpus_per_job, slurm_partition=config.partition, slurm_array_parallelism=parallel,
    )
    return _Executor(executor, parallel, threads)


def _read_mean_error(run_dir: Path) -> float | None:
    from hpbench.results import read_results

    rows = read_results([run_dir / "metrics.csv"])
    mean = rows.loc[rows["metric"] == "mean_error", "value"]
    return float(mean.iloc[0]) if len(mean) else None


def sweep(config: SweepConfig, *, progress: bool = True, echo: Callable[[str], None] = print) -> list[SweepOutcome]:
    """Run the sweep: skip finished runs, submit one job per other run, wait, then report each dataset.

    Returns one outcome per (model, dataset, seed), in sweep order. The reports
    go to ``<reports_dir>/<dataset>/`` (see :func:`hpbench.runner.report_dataset`).
    """
    names, datasets, seeds = config.run_names(), list(dict.fromkeys(config.datasets)), list(dict.fromkeys(config.seeds))
    plan = [(name, dataset, seed) for dataset in datasets for name in names for seed in seeds]
    executor = _executor(config, len(plan))  # first: no Slurm here fails before any data is rendered
    outcomes: dict[tuple[str, str, int], SweepOutcome] = {}
    roots: dict[str, Path | None] = {}
    for dataset in datasets:
        try:
            roots[dataset] = _prepare_data(config, dataset, progress)
        except Exception as error:  # this dataset's runs fail, the other datasets go on
            text = f"{type(error).__name__}: {error}"
            echo(f"{dataset}: data not ready ({text})")
            for key in plan:
                if key[1] == dataset:
                    run_dir = _run_dir(config, *key)
                    _record_failure(run_dir, traceback.format_exc())
                    outcomes[key] = SweepOutcome(*key, run_dir=run_dir, status="failed", error=text)
    pending: list[tuple[tuple[str, str, int], RunConfig]] = []
    for key in plan:
        if key in outcomes:
            continue
        name, dataset, seed = key
        run_dir = _run_dir(config, *key)
        if not config.force and (run_dir / "metrics.csv").is_file():
            outcomes[key] = SweepOutcome(*key, run_dir=run_dir, status="skipped",
                                         mean_error_mm=_read_mean_error(run_dir), notes=("metrics.csv exists",))
            continue
        pending.append((key, RunConfig(
            models=(name,), dataset=dataset, seed=seed, epochs=config.epochs, max_steps=config.max_steps,
            batch_size=config.batch_size, frames=config.frames, test_frames=config.test_frames, quick=config.quick,
            data_root=roots[dataset], results_dir=config.results_dir, reports_dir=config.reports_dir,
            device=config.device, resume=not config.force, profile=config.profile and seed == seeds[0], floor=False,
            eval_dir=config.eval_dir,
        )))
    skipped = sum(outcome.status == "skipped" for outcome in outcomes.values())
    if skipped:
        echo(f"{skipped} of {len(plan)} runs already have metrics.csv: skipped (force to retrain)")
    if pending:
        outcomes.update(_submit_and_wait(config, executor, pending, roots, progress=progress, echo=echo))
    ordered = [outcomes[key] for key in plan]
    for dataset in datasets:
        _report(config, dataset, [o for o in ordered if o.dataset == dataset and o.status != "failed"], echo)
    return ordered


def _submit_and_wait(
    config: SweepConfig, chosen: _Executor, pending: list[tuple[tuple[str, str, int], RunConfig]],
    roots: dict[str, Path | None], *, progress: bool, echo: Callable[[str], None],
) -> dict[tuple[str, str, int], SweepOutcome]:
    """Submit the pending runs (local and debug: ``parallel`` at a time; Slurm: one array) and collect them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    executor, parallel, threads = chosen.executor, chosen.parallel, chosen.threads
    job_fn = _RunJob()
    queue = deque((key, replace(run, threads=threads)) for key, run in pending)
    running: dict[tuple[str, str, int], Any] = {}
    done: dict[tuple[str, str, int], SweepOutcome] = {}

    def submit(count: int) -> None:
        batch = [queue.popleft() for _ in range(min(count, len(queue)))]
        if config.executor == "slurm":
            with executor.batch():  # one job array; slurm_array_parallelism caps what runs at once
                jobs = [executor.submit(job_fn, key[0], run, roots[key[1]]) for key, run in batch]
        else:
            jobs = [executor.submit(job_fn, key[0], run, roots[key[1]]) for key, run in batch]
        for (key, _), job in zip(batch, jobs, strict=True):
            running[key] = job

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task("sweep", total=len(pending))
            submit(len(pending) if config.executor == "slurm" else parallel)
            while running:
                for key, job in list(running.items()):
                    if not job.done():
                        continue
                    del running[key]
                    done[key] = _collect(config, key, job)
                    echo(_describe(done[key]))
                    bar.advance(task)
                    if queue:
                        submit(1)
                failed = sum(outcome.status == "failed" for outcome in done.values())
                bar.update(task, description=f"sweep: {len(running)} running, {len(queue)} waiting, {failed} failed")
                if running:
                    time.sleep(config.poll_s)
    except KeyboardInterrupt:
        if config.executor == "local":
            for job in running.values():
                job.cancel()
            echo(f"cancelled {len(running)} running jobs; submit the sweep again to resume")
        else:
            echo(f"{len(running)} jobs left running on {config.executor}; submit the sweep again to collect them")
        raise
    return done


def _collect(config: SweepConfig, key: tuple[str, str, int], job: Any) -> SweepOutcome:
    """The outcome of a finished job: its ModelRun, or the reason it ended without one."""
    run_dir = _run_dir(config, *key)
    try:
        result: ModelRun = job.result()
    except Exception as error:  # killed, out of memory, timed out...: submitit's message names its logs
        _record_failure(run_dir, str(error))
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return SweepOutcome(*key, run_dir=run_dir, status="failed", error=f"{type(error).__name__}: {first}",
                            job_id=str(job.job_id))
    if result.error is not None:
        return SweepOutcome(*key, run_dir=run_dir, status="failed", error=result.error, job_id=str(job.job_id))
    return SweepOutcome(*key, run_dir=run_dir, status="done", mean_error_mm=result.mean_error_mm,
                        job_id=str(job.job_id), notes=result.notes)


def _describe(outcome: SweepOutcome) -> str:
    where = f"{outcome.model} on {outcome.dataset}, seed {outcome.seed}"
    if outcome.status == "failed":
        return f"{where}: FAILED ({outcome.error}); see {outcome.run_dir / 'error.txt'}"
    return f"{where}: mean error {outcome.mean_error_mm:.2f} mm ({'; '.join(outcome.notes)})"


def _report(config: SweepConfig, dataset: str, outcomes: list[SweepOutcome], echo: Callable[[str], None]) -> None:
    from hpbench.runner import report_dataset

    if not outcomes:
        echo(f"{dataset}: no finished run, no report")
        return
    try:
        written = report_dataset(dataset, [o.run_dir for o in outcomes], out=config.reports_dir / dataset,
                                 eval_dir=config.eval_dir)
    except Exception as error:  # the runs' files stay; `hpbench report` can be run on them later
        echo(f"{dataset}: report failed ({type(error).__name__}: {error})")
        return
    echo(f"{dataset}: report in {config.reports_dir / dataset} ({len(written)} files)")
