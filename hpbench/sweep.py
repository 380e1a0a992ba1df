"""Sweeps: models x datasets x seeds, one submitit job per run, on this machine or on Slurm.

Each (model, dataset, seed) is one job calling :func:`hpbench.runner.run_one`
into its run directory (:class:`hpbench.rundir.RunDir`). submitit gives the three
executors: ``local`` (the default: subprocesses on this machine, at most
``max_parallel`` at a time), ``slurm`` (one job array, ``max_parallel`` as its
parallelism) and ``debug`` (in this process, one after the other), so no
scheduler of our own is needed.

A sweep is resumable: a finished run (metrics.csv written, no failure recorded)
is skipped (``force`` retrains it), and any other run resumes from its newest
epoch checkpoint, both when the sweep is submitted again and when Slurm requeues
a preempted or timed-out job (the job is :class:`submitit.helpers.Checkpointable`).
A failing run writes its traceback to error.txt in its run directory and the
others go on. The report of each dataset is then built from the result files of
every run present, several seeds of a model aggregated as mean +- std
(:func:`hpbench.report.tables.summary_table`).

Every seed trains and tests on the same data: a synthetic dataset is rendered
once, before submission, with ``data_seed``, and the run's ``seed`` drives the
initialisation, shuffling and augmentation only.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import submitit

from hpbench._text import plural
from hpbench.rundir import RunDir
from hpbench.runner import ModelRun, RunSettings, with_floor

if TYPE_CHECKING:
    from hpbench.data.specs import DatasetSpec

__all__ = ["EXECUTORS", "Jobs", "SweepConfig", "SweepOutcome", "sweep"]

Executor = Literal["local", "slurm", "debug"]
EXECUTORS: tuple[str, ...] = ("local", "slurm", "debug")
"""Where jobs run: subprocesses here, a Slurm cluster, or this process (debugging)."""
Key = tuple[str, str, int]  # (model, dataset name, seed)


@dataclass(frozen=True)
class Jobs:
    """Where and how the sweep's jobs run.

    ``executor``: one of :data:`EXECUTORS`. ``max_parallel``: jobs running at once
    (default: local, one per 4 cores; Slurm, no cap). ``timeout_min``: minutes per
    job (local and Slurm). ``partition``, ``gpus_per_job``, ``cpus_per_job``: Slurm
    resources. ``log_dir``: submitit's pickles and job logs (default
    ``<results_dir>/sweep-logs``). ``poll_s``: seconds between looks at running jobs.
    """

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
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {self.max_parallel}")


@dataclass(frozen=True)
class SweepConfig:
    """Every (model, dataset, seed) of ``models`` x ``datasets`` x ``seeds``, one job each.

    ``settings`` are each run's (:class:`hpbench.runner.RunSettings`), except that
    ``threads`` defaults per executor (local: the cores shared by ``max_parallel``
    jobs; Slurm: ``cpus_per_job``), ``resume`` is always on unless ``force``
    (retrain runs that already have metrics: their folders are cleared first), and
    ``profile`` profiles each model once, in its first seed's job (costs do not depend on the seed). ``frames``,
    ``test_frames`` and ``data_seed`` size and seed the synthetic data (the same
    for every seed); ``settings.data_root`` is only for a single dataset. ``floor``
    adds the mean-pose model. Outputs as in :class:`hpbench.runner.RunConfig`.
    """

    models: tuple[str, ...]
    datasets: tuple[DatasetSpec, ...]
    seeds: tuple[int, ...] = (0,)
    settings: RunSettings = RunSettings()
    data_seed: int = 0
    results_dir: Path = Path("results")
    reports_dir: Path = Path("reports")
    eval_dir: Path | None = None
    floor: bool = True
    force: bool = False
    jobs: Jobs = Jobs()

    def __post_init__(self) -> None:
        if not self.models or not self.datasets or not self.seeds:
            raise ValueError("a sweep needs at least one model, one dataset and one seed")
        if self.settings.data_root is not None and len(self.datasets) > 1:
            raise ValueError("data_root names the root of one dataset: sweep several datasets through their "
                             "environment variables ($HPBENCH_<DATASET>_ROOT) instead")


Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class SweepOutcome:
    """One run of a sweep: trained now (done), found finished (skipped), or failed with ``error``."""

    model: str
    dataset: str
    seed: int
    run_dir: RunDir
    status: Status
    mean_error_mm: float | None = None
    error: str | None = None
    job_id: str | None = None
    notes: tuple[str, ...] = ()


class _RunJob(submitit.helpers.Checkpointable):
    """The job of one (model, dataset, seed): :func:`hpbench.runner.run_one`, which records a failure.

    Requeued by Slurm on preemption or timeout (the inherited ``checkpoint``),
    always resuming: the newest epoch checkpoint holds the progress.
    """

    def __call__(self, name: str, dataset: DatasetSpec, seed: int, settings: RunSettings,
                 results_dir: Path) -> ModelRun:
        from hpbench.allocator import keep_freed_memory
        from hpbench.runner import run_one

        keep_freed_memory()  # the job's own process (local or Slurm), as the CLI does for its own
        return run_one(name, dataset, seed, settings, results_dir=results_dir, progress=False, echo=print)

    def checkpoint(self, name: str, dataset: DatasetSpec, seed: int, settings: RunSettings,
                   results_dir: Path) -> submitit.helpers.DelayedSubmission:
        resumed = replace(settings, resume=True, overwrite=False)
        return submitit.helpers.DelayedSubmission(self, name, dataset, seed, resumed, results_dir)


@dataclass(frozen=True)
class _Executor:
    executor: submitit.AutoExecutor
    parallel: int  # jobs running at once
    threads: int | None  # torch threads per job


def _executor(config: SweepConfig, jobs: int) -> _Executor:
    """The submitit executor of ``config``; RuntimeError when Slurm is asked for and absent."""
    options = config.jobs
    log_dir = options.log_dir or config.results_dir / "sweep-logs"
    executor = submitit.AutoExecutor(folder=log_dir / "%j", cluster=options.executor)
    cores = os.cpu_count() or 1
    if options.executor == "slurm":
        parallel = options.max_parallel or jobs
        threads = config.settings.threads or options.cpus_per_job
    else:
        parallel = options.max_parallel or max(1, cores // 4)
        threads = config.settings.threads or (max(1, cores // parallel) if options.executor == "local" else None)
    executor.update_parameters(
        name="hpbench-sweep", timeout_min=options.timeout_min, gpus_per_node=options.gpus_per_job or None,
        cpus_per_task=options.cpus_per_job, slurm_partition=options.partition, slurm_array_parallelism=parallel,
    )
    return _Executor(executor, parallel, threads)


def _run_dir(config: SweepConfig, key: Key) -> RunDir:
    """The run directory of (model, dataset, seed) ``key``."""
    name, dataset, seed = key
    return RunDir.of(config.results_dir, dataset, name, seed)


@dataclass(frozen=True)
class _Failure:
    """Why a dataset's data is not ready: one line, and the traceback for its runs' error.txt."""

    message: str
    traceback: str


def _prepare_data(config: SweepConfig, echo: Callable[[str], None], progress: bool
                  ) -> tuple[dict[str, RunSettings], dict[str, _Failure]]:
    """Each dataset's job settings with its data root, a synthetic set rendered now so that no two
    jobs render it at once; and the failure of each dataset whose data is not ready."""
    from hpbench.runner import resolve_data_root

    ready: dict[str, RunSettings] = {}
    failed: dict[str, _Failure] = {}
    for dataset in config.datasets:
        try:
            root = resolve_data_root(dataset, config.settings, seed=config.data_seed, progress=progress)
        except Exception as error:  # this dataset's runs fail, the other datasets go on
            failed[dataset.name] = _Failure(f"{type(error).__name__}: {error}", traceback.format_exc())
            echo(f"{dataset.name}: data not ready ({failed[dataset.name].message})")
            continue
        ready[dataset.name] = replace(config.settings, data_root=root, resume=not config.force,
                                       overwrite=config.force)
    return ready, failed


def sweep(config: SweepConfig, *, progress: bool = True, echo: Callable[[str], None] = print) -> list[SweepOutcome]:
    """Run the sweep: skip finished runs, submit one job per other run, wait, then report each dataset.

    Returns one outcome per (model, dataset, seed), in sweep order. The reports
    go to ``<reports_dir>/<dataset>/`` (see :func:`hpbench.runner.report_dataset`).
    """
    datasets = {dataset.name: dataset for dataset in config.datasets}
    seeds = list(dict.fromkeys(config.seeds))
    plan = [(name, dataset, seed) for dataset in datasets
            for name in with_floor(config.models, config.floor) for seed in seeds]
    executor = _executor(config, len(plan))  # first: no Slurm here fails before any data is rendered
    ready, failed = _prepare_data(config, echo, progress)
    outcomes: dict[Key, SweepOutcome] = {}
    pending: list[tuple[Key, RunSettings]] = []
    for key in plan:
        _, dataset, seed = key
        run_dir = _run_dir(config, key)
        if dataset in failed:
            run_dir.record_failure(failed[dataset].traceback)
            outcomes[key] = SweepOutcome(*key, run_dir=run_dir, status="failed", error=failed[dataset].message)
        elif not config.force and run_dir.finished:
            outcomes[key] = SweepOutcome(*key, run_dir=run_dir, status="skipped",
                                         mean_error_mm=run_dir.mean_error_mm(), notes=("metrics.csv exists",))
        else:
            settings = ready[dataset]
            pending.append((key, replace(settings, profile=settings.profile and seed == seeds[0])))
    skipped = sum(outcome.status == "skipped" for outcome in outcomes.values())
    if skipped:
        echo(f"{skipped} of {len(plan)} runs already have metrics.csv: skipped (force to retrain)")
    if pending:
        outcomes.update(_submit_and_wait(config, executor, pending, datasets, progress=progress, echo=echo))
    ordered = [outcomes[key] for key in plan]
    for name, dataset in datasets.items():
        _report(config, dataset, [o for o in ordered if o.dataset == name and o.status != "failed"], echo)
    return ordered


def _submit_and_wait(
    config: SweepConfig, chosen: _Executor, pending: list[tuple[Key, RunSettings]],
    datasets: dict[str, DatasetSpec], *, progress: bool, echo: Callable[[str], None],
) -> dict[Key, SweepOutcome]:
    """Submit the pending runs (local and debug: ``parallel`` at a time; Slurm: one array) and collect them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    executor, parallel, slurm = chosen.executor, chosen.parallel, config.jobs.executor == "slurm"
    job_fn = _RunJob()
    queue = deque((key, replace(settings, threads=chosen.threads)) for key, settings in pending)
    running: dict[Key, Any] = {}
    done: dict[Key, SweepOutcome] = {}

    def submit(count: int) -> None:
        batch = [queue.popleft() for _ in range(min(count, len(queue)))]
        with executor.batch() if slurm else contextlib.nullcontext():  # Slurm: one job array
            jobs = [executor.submit(job_fn, name, datasets[dataset], seed, settings, config.results_dir)
                    for (name, dataset, seed), settings in batch]
        for (key, _), job in zip(batch, jobs, strict=True):
            running[key] = job

    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task("sweep", total=len(pending))
            submit(len(pending) if slurm else parallel)
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
                    time.sleep(config.jobs.poll_s)
    except KeyboardInterrupt:
        if config.jobs.executor == "local":
            for job in running.values():
                job.cancel()
            echo(f"cancelled {plural(len(running), 'running job')}; submit the sweep again to resume")
        else:
            echo(f"{plural(len(running), 'job')} left running on {config.jobs.executor}; "
                 "submit the sweep again to collect them")
        raise
    return done


def _collect(config: SweepConfig, key: Key, job: Any) -> SweepOutcome:
    """The outcome of a finished job: its ModelRun, or the reason it ended without one."""
    run_dir = _run_dir(config, key)
    try:
        result: ModelRun = job.result()
    except Exception as error:  # killed, out of memory, timed out...: submitit's message names its logs
        run_dir.record_failure(str(error))
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
        return f"{where}: FAILED ({outcome.error}); see {outcome.run_dir.error}"
    return f"{where}: mean error {outcome.mean_error_mm:.2f} mm ({'; '.join(outcome.notes)})"


def _report(config: SweepConfig, dataset: DatasetSpec, outcomes: list[SweepOutcome],
            echo: Callable[[str], None]) -> None:
    from hpbench.runner import report_dataset

    out = config.reports_dir / dataset.name
    if not outcomes:
        echo(f"{dataset.name}: no finished run, no report")
        return
    try:
        written = report_dataset(dataset, [o.run_dir for o in outcomes], out=out, eval_dir=config.eval_dir)
    except Exception as error:  # the runs' files stay; `hpbench report` can be run on them later
        echo(f"{dataset.name}: report failed ({type(error).__name__}: {error})")
        return
    echo(f"{dataset.name}: report in {out} ({plural(len(written), 'file')})")
