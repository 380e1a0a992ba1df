"""The `hpbench` command line: parse strings into typed values, call one library function, render.

Heavy imports (torch, pandas, matplotlib) happen inside the command that needs them, so `hpbench --help` is
instant. Options and parsers live in hpbench.cli_options; output goes through hpbench._render and
hpbench._console (text printed exactly as written, numbers never cut).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hpbench._console import OneLineOSErrors, console as _console, fail as _fail, print_refused
from hpbench.cli_bench import register_bench_command
from hpbench.cli_centers import register_centers_command
from hpbench.cli_data import register_data_commands
from hpbench.cli_options import (
    AtolOption, BatchSizeOption, Bf16Option, BudgetOption, CentersOption, CheckOption, CompileOption, CoordsChoice,
    CoordsOption, CpusOption, DataRootOption, DataSeedOption, DatasetOption, DatasetsOption, DeviceChoice, DeviceOption,
    DynamicBatchOption,
    EpochsOption, EvalDirOption, ExecutorChoice, ExecutorOption, ExportCheckpointOption, ExportFormat,
    ExportFormatOption, ExportOutOption, FiguresOption, FilesArgument, FloorOption, ForceOption, FormatsOption,
    FramesOption, FvcoreOption, GpusOption, JobThreadsOption, JointOrderOption, JointsDatasetOption, LabelsOption,
    LatencyOption, LatencyThreadsOption, LogDirOption, MaxParallelOption, MaxStepsOption, MethodsOption,
    MinTimeOption, ModelOption, ModelOrPatternArgument, ModelsOption, NamesOption, OpsetOption,
    OverwriteOption, PaperOption, PartitionOption, PreciseOption, ProfileDeviceOption, ProfileMinTimeOption,
    ProfileOnnxOption, ProfileOutOption, ProfileRoundsOption, QuickOption, RuntimesOption, SweepBatchOption,
    ReferenceOption, ReportOutOption, ReportPathsArgument, ReportsOption, ResultsOption, ResumeOption,
    RunProfileOption, SaveOption, ScoredCheckpointOption, ScoredDataRootOption, ScoredDeviceOption,
    ScoredModelOption, SeedOption, SeedsOption, SelectChoice, SelectOption, SweepDataRootOption, SynthFramesOption,
    TestFramesOption,
    ThreadsOption, TimeoutOption, TrainDatasetOption, YAxisChoice, YAxisOption, parse_dataset,
    parse_list, parse_model, parse_models, parse_runtime_list, parse_seeds, read_options, run_settings
)

app = OneLineOSErrors(name="hpbench", help="Benchmark 3D hand pose estimation from depth: score, profile, report.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)  # plain help: wraps at any width, never cuts an option or a default


@app.command("ls", short_help="List models, one line each, or print one model's card.")
def list_command(
    name: ModelOrPatternArgument = None,
) -> None:
    """List registered models, one line each: input, parameters, thop MACs, paper; or print one model's card."""
    from hpbench._render import show_card, show_models
    from hpbench.cards import load_card
    from hpbench.models import list_models

    if name is None or set("*?[") & set(name):
        return show_models(list_models(name))
    show_card(load_card(parse_model(name, "NAME")))  # the name and its card checked first: one-line errors


@app.command("eval", short_help="Score prediction files or a model: 3D error, success, AUC.")
def eval_command(
    files: FilesArgument = None,
    dataset: DatasetOption = None,
    coords: CoordsOption = CoordsChoice.auto,
    y_axis: YAxisOption = YAxisChoice.dataset,
    joint_order: JointOrderOption = None,
    frames: FramesOption = None,
    check: CheckOption = True,
    eval_dir: EvalDirOption = None,
    labels: LabelsOption = None,
    names: NamesOption = None,
    save: SaveOption = None,
    model: ScoredModelOption = None,
    checkpoint: ScoredCheckpointOption = None,
    data_root: ScoredDataRootOption = None,
    device: ScoredDeviceOption = "cpu",
    centers: CentersOption = None,
) -> None:
    """Score prediction files against the real test labels: mean 3D error, success rates, AUC.

    With --model, run a trained model over the dataset's test split first
    (`hpbench eval --model ours --dataset synth` uses the zoo's checkpoint).
    """
    from hpbench._render import show_scores
    from hpbench.scoring import score_files

    if model is None and not files:
        _fail("give prediction files, or --model NAME --dataset DATASET")
    if model is not None and files:
        _fail("give either prediction files or --model, not both")
    options = read_options(coords, y_axis, joint_order, frames, check)
    if model is not None:
        scores, refused = [_score_model(model, checkpoint, dataset, data_root=data_root, save=save, device=device,
                                 centers=centers)], []
    else:
        try:
            scores, refused = score_files(files, dataset=dataset, options=options, eval_dir=eval_dir, labels=labels,
                                          names=names, save=save)
        except FileNotFoundError as error:
            _fail(str(error))
    show_scores(scores)
    print_refused(refused)
    if refused:
        raise typer.Exit(1)


def _score_model(name: str, checkpoint: Path | None, dataset: str | None, **options: object):  # -> Score
    """`eval --model`: run the model over the dataset's test split (hpbench.runner.score_model)."""
    from hpbench.cards import CardError
    from hpbench.data.formats import DatasetError
    from hpbench.registry import UnknownNameError
    from hpbench.runner import score_model

    if dataset is None:
        _fail("--model needs --dataset (synth, synth-nyu, icvl, nyu, msra)")
    name = parse_model(name, "--model")
    try:
        score, used, kept = score_model(name, checkpoint, dataset=parse_dataset(dataset), **options)
    except (CardError, DatasetError, UnknownNameError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    _console().print(f"{name}: weights {used}; predictions " + (str(kept) if kept else "not kept (pass --save DIR)"),
                     soft_wrap=True)
    return score


@app.command("report", short_help="Tables and figures from prediction and result files.")
def report_command(
    paths: ReportPathsArgument,
    out: ReportOutOption = Path("reports"),
    formats: FormatsOption = "latex,markdown,csv",
    figures: FiguresOption = True,
    paper: PaperOption = False,
    methods: MethodsOption = None,
    dataset: DatasetOption = None,
    coords: CoordsOption = CoordsChoice.auto,
    y_axis: YAxisOption = YAxisChoice.dataset,
    joint_order: JointOrderOption = None,
    frames: FramesOption = None,
    check: CheckOption = True,
    eval_dir: EvalDirOption = None,
) -> None:
    """Tables (LaTeX, Markdown, CSV) and figures from prediction files and result files."""
    from hpbench._render import show_report
    from hpbench.report import report_files

    try:
        report = report_files(paths, out, formats=parse_list(formats, "--format"), figures=figures, paper=paper,
                              methods=parse_list(methods, "--methods") if methods else None, dataset=dataset,
                              options=read_options(coords, y_axis, joint_order, frames, check), eval_dir=eval_dir,
                              progress=True)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
    if not report.tables:
        print_refused(report.refused)
        _fail("nothing to report: no file could be scored")
    show_report(report, out)


@app.command("profile", short_help="Parameters, MACs and latency of models.")
def profile_command(
    models: ModelsOption,
    dataset: JointsDatasetOption = "nyu",
    device: ProfileDeviceOption = DeviceChoice.cpu,
    threads: LatencyThreadsOption = None,
    runtimes: RuntimesOption = None,
    budget: BudgetOption = None,
    precise: PreciseOption = False,
    throughput_batch: SweepBatchOption = 32,
    rounds: ProfileRoundsOption = None,
    min_time: ProfileMinTimeOption = None,
    reference: ReferenceOption = None,
    fvcore: FvcoreOption = True,
    onnxruntime: ProfileOnnxOption = None,
    out: ProfileOutOption = Path("results/profile.csv"),
) -> None:
    """Parameters, MACs from thop / exact / fvcore counters, and timing per runtime within a budget, with spread."""
    from dataclasses import replace

    from hpbench._render_profile import show_profile
    from hpbench.cards import CardError
    from hpbench.profile import Budget, profile_report

    reference = parse_model(reference, "--reference") if reference is not None else None
    chosen = Budget.precise() if precise else Budget()
    chosen = replace(chosen, seconds=budget or chosen.seconds, rounds=rounds or chosen.rounds,
                     max_batch=chosen.max_batch if precise and throughput_batch == 32 else max(throughput_batch, 1))
    try:
        report = profile_report(
            parse_models(models), dataset=dataset, device=device.value, reference=reference, threads=threads,
            runtimes=parse_runtime_list(runtimes), budget=chosen, sweep=throughput_batch > 0, fvcore=fvcore,
            onnxruntime=onnxruntime, min_run_time_s=min_time, out=out,
            progress=lambda text: _console(stderr=True).print(text, style="dim"))
    except CardError as error:
        _fail(str(error))
    show_profile(report)


register_data_commands(app)  # synth, throughput: hpbench/cli_data.py
register_centers_command(app)  # centers: hpbench/cli_centers.py
register_bench_command(app)  # bench: hpbench/cli_bench.py


@app.command("run", short_help="Train, evaluate, profile and report models on a dataset.")
def run_command(
    models: ModelsOption = "ours,trinet",
    dataset: TrainDatasetOption = "synth",
    quick: QuickOption = False,
    epochs: EpochsOption = None,
    max_steps: MaxStepsOption = None,
    batch_size: BatchSizeOption = None,
    frames: SynthFramesOption = 2000,
    test_frames: TestFramesOption = None,
    seed: SeedOption = 0,
    data_root: DataRootOption = None,
    results: ResultsOption = Path("results"),
    reports: ReportsOption = Path("reports"),
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    compile: CompileOption = False,
    bf16: Bf16Option = False,
    profile: RunProfileOption = True,
    floor: FloorOption = True,
    eval_dir: EvalDirOption = None,
    centers: CentersOption = None,
    select: SelectOption = SelectChoice.final,
) -> None:
    """Train, evaluate, profile and report models on a dataset (synthetic by default)."""
    settings = run_settings(locals())
    from hpbench._render import show_runs
    from hpbench.runner import RunConfig, run

    config = RunConfig(models=parse_models(models), dataset=parse_dataset(dataset), seed=seed, settings=settings,
                       results_dir=results, reports_dir=reports, floor=floor, eval_dir=eval_dir)
    runs, written = run(config, echo=_console().print)
    show_runs(runs, results=results / config.dataset.name, written=written)
    if any(item.error for item in runs):
        raise typer.Exit(1)


@app.command("train", short_help="Train and evaluate one model into its run directory.")
def train_command(
    model: ModelOption,
    dataset: TrainDatasetOption = "synth",
    quick: QuickOption = False,
    epochs: EpochsOption = None,
    max_steps: MaxStepsOption = None,
    batch_size: BatchSizeOption = None,
    frames: SynthFramesOption = 2000,
    test_frames: TestFramesOption = None,
    seed: SeedOption = 0,
    data_root: DataRootOption = None,
    results: ResultsOption = Path("results"),
    device: Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per local rank, NCCL).")] = "cpu",
    threads: ThreadsOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    compile: CompileOption = False,
    bf16: Bf16Option = False,
    profile: RunProfileOption = False,
    centers: CentersOption = None,
    select: SelectOption = SelectChoice.final,
) -> None:
    """Train and evaluate one model into its run directory (the layout of `hpbench run`, no report).

    Under torchrun (`torchrun --nproc-per-node 2 -m hpbench.cli train ...`) it trains data parallel over the
    processes (gloo on CPU, NCCL on CUDA); rank 0 writes the logs, checkpoints and results.
    """
    settings = run_settings(locals())
    import torch

    from hpbench import distributed
    from hpbench.runner import run_one

    name, spec = parse_model(model, "--model"), parse_dataset(dataset)
    console = _console()
    with distributed.process_group(device):
        main = distributed.is_main()
        if main and distributed.is_distributed():
            console.print(f"data parallel over {distributed.world_size()} processes "
                          f"({torch.distributed.get_backend()})", markup=False)
        outcome = run_one(name, spec, seed, settings, results_dir=results, progress=main, echo=console.print)
    if outcome.error is not None:
        _fail(outcome.error if outcome.refused else f"{outcome.error} (traceback in {outcome.run_dir.error})")
    if main:
        console.print(f"{name}: mean error {outcome.mean_error_mm:.2f} mm; {'; '.join(outcome.notes)}", markup=False)
        console.print(f"results in {outcome.run_dir.path}", soft_wrap=True)


@app.command("export", short_help="Export a model to ONNX, check it, time it.")
def export_command(
    model: ModelOption,
    format: ExportFormatOption = ExportFormat.onnx,
    dataset: JointsDatasetOption = "nyu",
    out: ExportOutOption = None,
    checkpoint: ExportCheckpointOption = None,
    opset: OpsetOption = None,
    dynamic_batch: DynamicBatchOption = True,
    atol: AtolOption = 1e-4,
    threads: LatencyThreadsOption = None,
    min_time: MinTimeOption = 1.0,
    latency: LatencyOption = True,
) -> None:
    """Export a model to ONNX, check onnxruntime against PyTorch, and time both on the CPU."""
    from hpbench._render import show_export
    from hpbench.export import OnnxExportError, OnnxMismatchError, OnnxUnavailableError, export_model

    model = parse_model(model, "--model")
    try:
        report = export_model(model, out, dataset=dataset, checkpoint=checkpoint, opset=opset,
                              dynamic_batch=dynamic_batch, atol=atol, threads=threads, min_run_time_s=min_time,
                              latency=latency)
    except OnnxMismatchError as error:
        _fail(f"{error}; the file is kept for inspection", code=1)
    except (OnnxUnavailableError, OnnxExportError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    show_export(report)


@app.command("sweep", short_help="Models x datasets x seeds as jobs (local or Slurm), then report.")
def sweep_command(
    models: ModelsOption,
    datasets: DatasetsOption = "synth",
    seeds: SeedsOption = "0,1,2",
    executor: ExecutorOption = ExecutorChoice.local,
    quick: QuickOption = False,
    epochs: EpochsOption = None,
    max_steps: MaxStepsOption = None,
    batch_size: BatchSizeOption = None,
    frames: SynthFramesOption = 2000,
    test_frames: TestFramesOption = None,
    data_seed: DataSeedOption = 0,
    data_root: SweepDataRootOption = None,
    results: ResultsOption = Path("results"),
    reports: ReportsOption = Path("reports"),
    device: DeviceOption = "cpu",
    threads: JobThreadsOption = None,
    max_parallel: MaxParallelOption = None,
    profile: RunProfileOption = True,
    floor: FloorOption = True,
    force: ForceOption = False,
    timeout: TimeoutOption = 24 * 60,
    partition: PartitionOption = None,
    gpus: GpusOption = 0,
    cpus: CpusOption = None,
    log_dir: LogDirOption = None,
    eval_dir: EvalDirOption = None,
    centers: CentersOption = None,
    bf16: Bf16Option = False,
) -> None:
    """Train models x datasets x seeds, one job each (local or Slurm), then report mean +- std over seeds.

    Runs that already have metrics.csv are skipped and interrupted ones resume from
    their last checkpoint: submit the same sweep again to finish it.
    """
    settings = run_settings(locals(), check_device_option=executor is not ExecutorChoice.slurm)  # Slurm: GPUs on nodes
    from hpbench._render import show_sweep
    from hpbench.sweep import Jobs, SweepConfig, sweep

    try:
        config = SweepConfig(
            models=parse_models(models), datasets=tuple(map(parse_dataset, parse_list(datasets, "--datasets"))),
            seeds=parse_seeds(seeds), settings=settings, data_seed=data_seed, results_dir=results,
            reports_dir=reports, eval_dir=eval_dir, floor=floor, force=force,
            jobs=Jobs(executor=executor.value, max_parallel=max_parallel, timeout_min=timeout, partition=partition,
                      gpus_per_job=gpus, cpus_per_job=cpus, log_dir=log_dir),
        )
    except ValueError as error:
        _fail(str(error))
    try:
        outcomes = sweep(config, echo=_console().print)
    except RuntimeError as error:  # submitit: no Slurm on this machine
        _fail(str(error))
    show_sweep(outcomes, results=results, reports=[reports / spec.name for spec in config.datasets])
    if any(outcome.status == "failed" for outcome in outcomes):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    from hpbench.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
