"""The `hpbench` command line: parse strings into typed values, call the library, print.

Heavy imports (torch, pandas, matplotlib) happen inside the command that needs
them, so `hpbench --help` is instant. Output goes through hpbench._console (text
printed exactly as written, numbers never cut) and hpbench._render; options and
their parsers are defined once in hpbench.cli_options.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hpbench._console import console as _console
from hpbench._console import fail as _fail
from hpbench._console import print_refused
from hpbench.cli_options import (
    AtolOption, BatchOption, CheckOption, CoordsChoice, CoordsOption, CropSizeOption, DatasetOption, DeviceChoice,
    DynamicBatchOption, EvalDirOption, ExportCheckpointOption, ExportFormat, ExportFormatOption, ExportOutOption,
    FiguresOption, FilesArgument, FormatsOption, FramesOption, FromLabelsOption, FvcoreOption, JointOrderOption,
    JointsDatasetOption, LabelsOption, LatencyOption, LatencyThreadsOption, MinTimeOption, ModelOption,
    ModelOrPatternArgument, ModelsOption, NamesOption, OnnxruntimeOption, OpsetOption, ProfileDeviceOption,
    ProfileOutOption, ReferenceOption, RenderFramesOption, ReportOutOption, ReportPathsArgument, RoundsOption,
    SaveOption, ScoredCheckpointOption, ScoredDataRootOption, ScoredDeviceOption, ScoredModelOption, SynthDatasetOption,
    SynthOutOption, SynthSeedOption, SynthTestFramesOption, ThroughputBatchOption, ThroughputDatasetOption,
    WorkersOption, YAxisChoice, YAxisOption, read_options,
)
from hpbench.cli_options import check_device as _check_device
from hpbench.cli_options import parse_list as _parse_list
from hpbench.cli_options import parse_models as _parse_models

app = typer.Typer(
    name="hpbench",
    help="Benchmark 3D hand pose estimation from depth: score, profile, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps at any width, never cuts an option or a default
)


# Options shared by run, train and sweep: one spelling, one help text.
SynthFramesOption = Annotated[int, typer.Option(min=8, help="Synthetic training frames (synthetic datasets only).")]
TestFramesOption = Annotated[Optional[int], typer.Option(
    min=1, help="Synthetic test frames (default: a quarter of --frames; 200 with --quick).")]
QuickOption = Annotated[bool, typer.Option(
    "--quick", help="Short schedule: each card's quick steps, batch and learning rate (CPU minutes).")]
EpochsOption = Annotated[Optional[int], typer.Option(min=1, help="Override the recipes' epochs.")]
MaxStepsOption = Annotated[Optional[int], typer.Option(min=1, help="Stop each model after this many optimizer steps.")]
BatchSizeOption = Annotated[Optional[int], typer.Option(
    min=1, help="Override the recipes' batch size (the global batch under torchrun).")]
DataRootOption = Annotated[Optional[Path], typer.Option(help="Dataset root (default: $HPBENCH_<DATASET>_ROOT).")]
ResultsOption = Annotated[Path, typer.Option("--results", "--results-dir", help="Folder of run directories.")]
ReportsOption = Annotated[Path, typer.Option(help="Folder of reports.")]
DeviceOption = Annotated[str, typer.Option(help="cpu or cuda.")]
ThreadsOption = Annotated[Optional[int], typer.Option(min=1, help="CPU threads (per process or job).")]
TrainDatasetOption = Annotated[str, typer.Option(
    "--dataset", "-d", help="synth (embedded default), synth-nyu, icvl, nyu.")]
SeedOption = Annotated[int, typer.Option(help="Seed of data, initialisation, shuffling and augmentation.")]
FloorOption = Annotated[bool, typer.Option("--floor/--no-floor", help="Also train the mean-pose floor.")]
CompileOption = Annotated[bool, typer.Option(
    "--compile", help="Run the model through torch.compile (the first steps pay the compilation).")]


@app.command("ls", short_help="List models, one line each, or print one model's card.")
def list_command(
    name: ModelOrPatternArgument = None,
) -> None:
    """List registered models, one line each: input, parameters, thop MACs, paper; or print one model's card."""
    from hpbench._render import show_card, show_models
    from hpbench.cards import CardError, load_card
    from hpbench.models import list_models

    if name is None or set("*?[") & set(name):
        return show_models(list_models(name))
    _parse_models(name, "NAME")
    try:
        show_card(load_card(name))
    except CardError as error:
        _fail(str(error))


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
        scores, refused = [_score_model(model, checkpoint, dataset=dataset, data_root=data_root, save=save,
                                        device=device)], []
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


def _score_model(name: str, checkpoint: Path | None, *, dataset: str | None, data_root: Path | None,
                 save: Path | None, device: str):  # -> hpbench.scoring.Score
    """Run model ``name`` with ``checkpoint`` over ``dataset``'s test split; predictions go to
    ``save/<dataset>/<name>.txt`` (or a temporary folder)."""
    import tempfile

    from hpbench.cards import CardError
    from hpbench.data.formats import DatasetError
    from hpbench.evaluate import evaluate_checkpoint
    from hpbench.registry import UnknownNameError
    from hpbench.runner import RunSettings, resolve_data_root

    if dataset is None:
        _fail("--model needs --dataset (synth, synth-nyu, icvl, nyu, msra)")
    spec = _parse_dataset(dataset)
    folder = save / spec.name if save is not None else Path(tempfile.mkdtemp(prefix="hpbench-eval-"))
    try:
        root = resolve_data_root(spec, RunSettings(data_root=data_root), progress=True)
        score, used = evaluate_checkpoint(name, checkpoint, dataset=spec, data_root=root,
                                          predictions_path=folder / f"{name}.txt", device=device, progress=True)
    except (CardError, DatasetError, UnknownNameError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    _console().print(f"{name}: weights {used}, predictions {score.source}")
    if save is not None:
        from hpbench.results import write_results

        write_results(score.rows(), folder / f"{score.method}.csv")
    return score


@app.command("report", short_help="Tables and figures from prediction and result files.")
def report_command(
    paths: ReportPathsArgument,
    out: ReportOutOption = Path("reports"),
    formats: FormatsOption = "latex,markdown,csv",
    figures: FiguresOption = True,
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
        report = report_files(paths, out, formats=_parse_list(formats, "--format"), figures=figures, dataset=dataset,
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
    batch: BatchOption = 1,
    throughput_batch: ThroughputBatchOption = 32,
    rounds: RoundsOption = 3,
    min_time: MinTimeOption = 1.0,
    reference: ReferenceOption = None,
    fvcore: FvcoreOption = True,
    onnxruntime: OnnxruntimeOption = None,
    out: ProfileOutOption = Path("results/profile.csv"),
) -> None:
    """Parameters, MACs from thop / exact / fvcore counters, and latency with spread."""
    from hpbench._render import show_profile
    from hpbench.profile import profile_report

    names = _parse_models(models)
    if reference is not None:
        (reference,) = _parse_models(reference, "--reference")
    show_profile(profile_report(
        names, dataset=dataset, device=device.value, reference=reference, threads=threads, batch=batch,
        throughput_batch=throughput_batch, rounds=rounds, min_run_time_s=min_time, fvcore=fvcore,
        onnxruntime=onnxruntime, out=out, progress=lambda text: _console(stderr=True).print(text, style="dim")))


@app.command("synth", short_help="Render a synthetic hand dataset (ICVL or NYU format).")
def synth_command(
    out: SynthOutOption,
    dataset: SynthDatasetOption = "icvl",
    frames: RenderFramesOption = 2000,
    test_frames: SynthTestFramesOption = None,
    seed: SynthSeedOption = 0,
    from_labels: FromLabelsOption = None,
    workers: WorkersOption = None,
) -> None:
    """Render a synthetic hand dataset in the real ICVL or NYU on-disk format."""
    from hpbench.data.formats import DatasetError
    from hpbench.data.synth import synthesize

    try:
        summary = synthesize(dataset, out, frames=frames, test_frames=test_frames, seed=seed,
                             from_labels=from_labels, workers=workers, progress=True)
    except (DatasetError, FileExistsError, ValueError) as error:
        _fail(str(error))
    _console().print(summary.describe())


@app.command("throughput", short_help="Measure the data pipeline's rates.")
def throughput_command(
    dataset: ThroughputDatasetOption = "synth",
    frames: RenderFramesOption = 2000,
    workers: WorkersOption = None,
    size: CropSizeOption = 128,
) -> None:
    """Measure the data pipeline: rendered frames/s, crop caching frames/s, augmented crops/s into a DataLoader."""
    from hpbench._render import show_throughput
    from hpbench.data.formats import DatasetError
    from hpbench.data.throughput import measure_throughput

    try:
        show_throughput(measure_throughput(dataset, frames=frames, workers=workers, size_px=size))
    except (DatasetError, ValueError) as error:
        _fail(str(error))


@app.command("run")
def run_command(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated registered model names.")] = "ours,trinet",
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
    resume: Annotated[bool, typer.Option("--resume", help="Continue interrupted runs from their last checkpoint.")] = False,
    compile: CompileOption = False,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="Profile each trained model.")] = True,
    floor: FloorOption = True,
    eval_dir: EvalDirOption = None,
) -> None:
    """Train, evaluate, profile and report models on a dataset (synthetic by default)."""
    settings = _run_settings(locals())
    from hpbench.runner import RunConfig, run

    config = RunConfig(models=_parse_models(models), dataset=_parse_dataset(dataset), seed=seed, settings=settings,
                       results_dir=results, reports_dir=reports, floor=floor, eval_dir=eval_dir)
    console = _console()
    runs, written = run(config, echo=lambda text: console.print(text, markup=False))
    for item in runs:
        if item.error:
            console.print(f"[red]{item.model}: failed[/] {item.error}")
        else:
            console.print(f"{item.model}: mean error {item.mean_error_mm:.2f} mm; {'; '.join(item.notes)}",
                          markup=False)
    console.print(f"results in {results / config.dataset.name}, report: "
                  f"{', '.join(str(p) for p in written) or 'none'}", markup=False)
    if any(item.error for item in runs):
        raise typer.Exit(1)


@app.command("train")
def train_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
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
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
    compile: CompileOption = False,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="Also profile the trained model.")] = False,
) -> None:
    """Train and evaluate one model into its run directory (the layout of `hpbench run`, no report).

    Launched by torchrun (`torchrun --nproc-per-node 2 -m hpbench.cli train ...`) it
    trains data parallel over the processes (gloo on CPU, NCCL on CUDA); rank 0
    writes the logs, checkpoints and results.
    """
    settings = _run_settings(locals())
    import torch

    from hpbench import distributed
    from hpbench.runner import run_one

    (name,), spec = _parse_models(model), _parse_dataset(dataset)
    console = _console()
    with distributed.process_group(device):
        main = distributed.is_main()
        if main and distributed.is_distributed():
            console.print(f"data parallel over {distributed.world_size()} processes "
                          f"({torch.distributed.get_backend()})", markup=False)
        outcome = run_one(name, spec, seed, settings, results_dir=results, progress=main,
                          echo=lambda text: console.print(text, markup=False))
    if outcome.error is not None:
        _fail(f"{outcome.error} (traceback in {outcome.run_dir.error})")
    if main:
        console.print(f"{name}: mean error {outcome.mean_error_mm:.2f} mm; {'; '.join(outcome.notes)}", markup=False)
        console.print(f"results in {outcome.run_dir.path}", markup=False)


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

    (model,) = _parse_models(model, "--model")
    try:
        report = export_model(model, out, dataset=dataset, checkpoint=checkpoint, opset=opset,
                              dynamic_batch=dynamic_batch, atol=atol, threads=threads, min_run_time_s=min_time,
                              latency=latency)
    except OnnxMismatchError as error:
        _fail(f"{error}; the file is kept for inspection", code=1)
    except (OnnxUnavailableError, OnnxExportError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    show_export(report)


class ExecutorChoice(str, enum.Enum):
    local = "local"
    slurm = "slurm"
    debug = "debug"


def _parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-4' (inclusive) or a mix -> seeds in order, without repeats."""
    seeds: list[int] = []
    for part in _parse_list(text, "--seeds"):
        first, dash, last = part.partition("-")
        try:
            seeds += range(int(first), int(last) + 1) if dash and first else [int(part)]
        except ValueError:
            _fail(f"--seeds takes comma-separated integers or ranges like 0-4, got {part!r}")
    return tuple(dict.fromkeys(seeds))


def _parse_dataset(name: str):  # -> hpbench.data.specs.DatasetSpec
    """The spec of registered dataset ``name``; an unknown name fails with close matches."""
    from hpbench.data.specs import get_dataset
    from hpbench.registry import UnknownNameError

    try:
        return get_dataset(name)
    except UnknownNameError as error:
        _fail(str(error))


def _run_settings(options: dict[str, object], *, check_device: bool = True):  # -> hpbench.runner.RunSettings
    """The RunSettings of `run`, `train` or `sweep` from the command's parameters (its ``locals()``, taken
    first thing): each field from the option of the same name, the others at their default; the device checked."""
    from dataclasses import fields

    from hpbench.runner import RunSettings

    if check_device:
        _check_device(str(options["device"]))
    return RunSettings(**{field.name: options[field.name] for field in fields(RunSettings) if field.name in options})


@app.command("sweep")
def sweep_command(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated registered model names.")],
    datasets: Annotated[str, typer.Option("--datasets", "-d", help="Comma-separated datasets: synth, synth-nyu, icvl, nyu.")] = "synth",
    seeds: Annotated[str, typer.Option(help="Seeds of initialisation, shuffling and augmentation: '0,1,2' or '0-4'.")] = "0,1,2",
    executor: Annotated[ExecutorChoice, typer.Option(help="local (subprocesses here), slurm, or debug (in this process).")] = ExecutorChoice.local,
    quick: QuickOption = False,
    epochs: EpochsOption = None,
    max_steps: MaxStepsOption = None,
    batch_size: BatchSizeOption = None,
    frames: SynthFramesOption = 2000,
    test_frames: TestFramesOption = None,
    data_seed: Annotated[int, typer.Option(help="Seed of the synthetic data, the same for every run.")] = 0,
    data_root: Annotated[Optional[Path], typer.Option(help="Root of the one swept dataset (default: $HPBENCH_<DATASET>_ROOT).")] = None,
    results: ResultsOption = Path("results"),
    reports: ReportsOption = Path("reports"),
    device: DeviceOption = "cpu",
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads per job (default: cores / --max-parallel here, --cpus on Slurm).")] = None,
    max_parallel: Annotated[Optional[int], typer.Option(min=1, help="Jobs running at once (default: one per 4 cores here, all on Slurm).")] = None,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="Profile each model once (first seed).")] = True,
    floor: FloorOption = True,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs that already have metrics.csv.")] = False,
    timeout: Annotated[int, typer.Option(min=1, help="Minutes per job before it is stopped (and requeued from its checkpoint).")] = 24 * 60,
    partition: Annotated[Optional[str], typer.Option(help="Slurm partition.")] = None,
    gpus: Annotated[int, typer.Option(min=0, help="GPUs per job (Slurm; local: CUDA_VISIBLE_DEVICES).")] = 0,
    cpus: Annotated[Optional[int], typer.Option(min=1, help="CPUs per job (Slurm).")] = None,
    log_dir: Annotated[Optional[Path], typer.Option(help="submitit job logs (default: RESULTS/sweep-logs).")] = None,
    eval_dir: EvalDirOption = None,
) -> None:
    """Train models x datasets x seeds, one job each (local or Slurm), then report mean +- std over seeds.

    Runs that already have metrics.csv are skipped and interrupted ones resume from
    their last checkpoint: submit the same sweep again to finish it.
    """
    settings = _run_settings(locals(), check_device=executor is not ExecutorChoice.slurm)  # Slurm: GPUs on nodes
    from hpbench.sweep import Jobs, SweepConfig, sweep

    try:
        config = SweepConfig(
            models=_parse_models(models), datasets=tuple(map(_parse_dataset, _parse_list(datasets, "--datasets"))),
            seeds=_parse_seeds(seeds), settings=settings, data_seed=data_seed, results_dir=results,
            reports_dir=reports, eval_dir=eval_dir, floor=floor, force=force,
            jobs=Jobs(executor=executor.value, max_parallel=max_parallel, timeout_min=timeout, partition=partition,
                      gpus_per_job=gpus, cpus_per_job=cpus, log_dir=log_dir),
        )
    except ValueError as error:
        _fail(str(error))
    console = _console()
    try:
        outcomes = sweep(config, echo=lambda text: console.print(text, markup=False))
    except RuntimeError as error:  # submitit: no Slurm on this machine
        _fail(str(error))
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    console.print(f"{len(outcomes)} runs: {counts['done']} trained, {counts['skipped']} already done, "
                  f"{counts['failed']} failed; results in {results}, reports in "
                  f"{', '.join(str(reports / spec.name) for spec in config.datasets)}", markup=False)
    for outcome in outcomes:
        if outcome.status == "failed":
            console.print(f"[red]{outcome.model} on {outcome.dataset}, seed {outcome.seed}: failed[/] {outcome.error}")
    if counts["failed"]:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
