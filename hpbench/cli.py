"""The `hpbench` command line: parse strings into typed values, call the library, print.

Heavy imports (torch, pandas, matplotlib) happen inside the command that needs
them, so `hpbench --help` is instant.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="hpbench",
    help="Benchmark 3D hand pose estimation from depth: score, profile, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CoordsChoice(str, enum.Enum):
    auto = "auto"
    uvd = "uvd"
    xyz = "xyz"


class YAxisChoice(str, enum.Enum):
    dataset = "dataset"
    up = "up"
    down = "down"


def _console(stderr: bool = False):  # -> rich.console.Console
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # logs and pipes: never truncate method names to a guessed width
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


def _fail(message: str, code: int = 2) -> None:
    _console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def _parse_joint_order(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in re.split(r"[,\s]+", text.strip()) if part)
    except ValueError:
        _fail(f"--joint-order must be comma-separated 0-based joint indices, got {text!r}")
    raise AssertionError  # unreachable


DatasetOption = Annotated[
    Optional[str],
    typer.Option("--dataset", "-d", help="icvl, nyu or msra; default: from the file name or its folder."),
]
CoordsOption = Annotated[
    CoordsChoice, typer.Option("--coords", help="Values in the file: image uvd, world xyz, or detect.")
]
YAxisOption = Annotated[
    YAxisChoice,
    typer.Option("--y-axis", help="World y of xyz files: the dataset's convention (NYU up, ICVL down), up or down."),
]
JointOrderOption = Annotated[
    Optional[str],
    typer.Option("--joint-order", help="For each dataset joint, its 0-based index in the file: '3,1,0,...'."),
]
FramesOption = Annotated[
    Optional[str],
    typer.Option("--frames", help="Test frames the lines cover: all, START:STOP (0-based) or a range name."),
]
CheckOption = Annotated[
    bool, typer.Option("--check/--no-check", help="Refuse files that score far better read another way.")
]
EvalDirOption = Annotated[
    Optional[Path],
    typer.Option("--eval-dir", help="handpose-eval folder (default: $HPBENCH_EVAL_DIR, ../shared/handpose-eval)."),
]


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


def _parse_models(text: str) -> tuple[str, ...]:
    """Comma-separated registered model names, in order, without repeats; unknown ones fail with close matches."""
    from hpbench.registry import UnknownNameError, models

    names = _parse_list(text, "--models")
    problems = []
    for name in names:
        try:
            models.get(name)
        except UnknownNameError as error:
            problems.append(str(error))
    if problems:
        _fail("; ".join(problems))
    return names


def _parse_list(text: str, option: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not items:
        _fail(f"{option} needs at least one comma-separated name, got {text!r}")
    return items


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        _fail(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            _fail("no GPU on this machine: use --device cpu")


def _read_options(coords, y_axis, joint_order, frames, check):  # -> ReadOptions
    from hpbench.scoring import ReadOptions

    return ReadOptions(
        coords=coords.value, y_axis=y_axis.value, joint_order=_parse_joint_order(joint_order), frames=frames,
        check=check,
    )


@app.command("ls")
def list_command(
    pattern: Annotated[Optional[str], typer.Argument(help="fnmatch pattern, e.g. 'ours*'.")] = None,
) -> None:
    """List registered models with their card: joints, input, parameters, thop MACs, paper."""
    from rich.table import Table

    from hpbench.cards import CardError, load_card
    from hpbench.registry import list_models, models

    table = Table("model", "input", "params (ICVL / NYU)", "thop GMAC (ICVL / NYU)", "paper", "summary")
    table.columns[0].no_wrap = True
    for name in list_models(pattern):
        try:
            card = load_card(name)
        except CardError as error:
            table.add_row(name, "", "", "", "", f"[red]{error}[/]")
            continue
        declared = [card.declared.get(d) for d in ("icvl", "nyu")]
        params = " / ".join("-" if c is None else f"{c.params:,}" for c in declared)
        macs = " / ".join("-" if c is None else f"{c.thop_macs / 1e9:.3f}" for c in declared)
        table.add_row(name, "x".join(map(str, card.input_shape)), params, macs, card.paper, card.summary)
    console = _console()
    console.print(table)
    for name, reason in models.plugin_errors.items():
        console.print(f"[yellow]skipped plugin {name}:[/] {reason}")


@app.command("eval")
def eval_command(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Prediction files, one line per test frame.")] = None,
    dataset: DatasetOption = None,
    coords: CoordsOption = CoordsChoice.auto,
    y_axis: YAxisOption = YAxisChoice.dataset,
    joint_order: JointOrderOption = None,
    frames: FramesOption = None,
    check: CheckOption = True,
    eval_dir: EvalDirOption = None,
    labels: Annotated[Optional[Path], typer.Option(help="Explicit test labels (J x u v d per line).")] = None,
    names: Annotated[Optional[Path], typer.Option(help="Frame names of --labels, one per line.")] = None,
    save: Annotated[Optional[Path], typer.Option(help="Write result rows as CSV into this folder.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Score a registered model on the test split (needs --dataset) instead of files.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="Weights (.safetensors) for --model; default: the checkpoint its zoo card ships.")] = None,
    data_root: Annotated[Optional[Path], typer.Option(
        help="Dataset root for --model (default: $HPBENCH_<DATASET>_ROOT; synthetic: rendered).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda, for --model.")] = "cpu",
) -> None:
    """Score prediction files against the real test labels: mean 3D error, success rates, AUC.

    With --model, run a trained model over the dataset's test split first
    (`hpbench eval --model ours --dataset synth` uses the zoo's checkpoint).
    """
    from rich.table import Table

    from hpbench.predictions import PredictionFileError
    from hpbench.registry import UnknownNameError
    from hpbench.results import write_results
    from hpbench.scoring import infer_dataset, load_ground_truth, score_file

    files = list(files or [])
    if model is None and not files:
        _fail("give prediction files, or --model NAME --dataset DATASET")
    if model is not None and files:
        _fail("give either prediction files or --model, not both")
    options = _read_options(coords, y_axis, joint_order, frames, check)
    table = Table("method", "dataset", "frames", "read as", "mean error (mm)", "<=20 mm (%)", "<=40 mm (%)",
                  "AUC 0-80 mm (%)", title="3D joint error")
    table.columns[0].no_wrap = True
    refused: list[str] = []
    truths = {}
    scores = []
    if model is not None:
        scores.append(_score_model(model, checkpoint, dataset=dataset, data_root=data_root, save=save, device=device))
    for path in files:
        try:
            spec = infer_dataset(path, dataset)
            name = spec.name
            if name not in truths:
                truths[name] = load_ground_truth(spec, eval_dir=eval_dir, labels=labels, names=names)
            score = score_file(path, truths[name], options)
        except (PredictionFileError, UnknownNameError) as error:
            refused.append(str(error))
            continue
        except FileNotFoundError as error:
            _fail(str(error))
        scores.append(score)
    for score in scores:
        rows = score.rows()
        auc = float(rows.loc[rows["metric"] == "auc_max", "value"].iloc[0])
        table.add_row(
            score.method, score.dataset.name, score.frames, score.reading, f"{score.mean_error_mm:.3f}",
            f"{100 * score.success_rate(20):.1f}", f"{100 * score.success_rate(40):.1f}", f"{100 * auc:.1f}",
        )
        if save is not None:
            write_results(rows, save / score.dataset.name / f"{score.method}.csv")
    console = _console()
    if table.row_count:
        console.print(table)
    for reason in refused:
        _console(stderr=True).print(f"[bold red]refused[/] {reason}", markup=True)
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
    from hpbench.runner import resolve_data_root

    if dataset is None:
        _fail("--model needs --dataset (synth, synth-nyu, icvl, nyu, msra)")
    folder = save / dataset if save is not None else Path(tempfile.mkdtemp(prefix="hpbench-eval-"))
    try:
        root = resolve_data_root(dataset, data_root, progress=True)
        score, used = evaluate_checkpoint(name, checkpoint, dataset=dataset, data_root=root,
                                          predictions_path=folder / f"{name}.txt", device=device, progress=True)
    except (CardError, DatasetError, UnknownNameError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    _console().print(f"{name}: weights {used}, predictions {score.source}", markup=False)
    return score


@app.command("report")
def report_command(
    paths: Annotated[list[Path], typer.Argument(help="Prediction files (.txt), results files (.csv) or folders of them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("reports"),
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: latex, markdown, csv.")] = "latex,markdown,csv",
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Write curve and bar figures.")] = True,
    dataset: DatasetOption = None,
    coords: CoordsOption = CoordsChoice.auto,
    y_axis: YAxisOption = YAxisChoice.dataset,
    joint_order: JointOrderOption = None,
    frames: FramesOption = None,
    check: CheckOption = True,
    eval_dir: EvalDirOption = None,
) -> None:
    """Tables (LaTeX, Markdown, CSV) and figures from prediction files and result files."""
    from hpbench.report import summary_table, write_report
    from hpbench.scoring import collect_results

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    unknown = set(chosen) - {"latex", "markdown", "csv"}
    if unknown or not chosen:
        _fail(f"--format takes latex, markdown, csv; got {formats!r}")
    options = _read_options(coords, y_axis, joint_order, frames, check)
    try:
        results, refused = collect_results(paths, dataset=dataset, options=options, eval_dir=eval_dir, progress=True)
    except FileNotFoundError as error:
        _fail(str(error))
    if results.empty:
        for reason in refused:
            _console(stderr=True).print(f"[bold red]refused[/] {reason}", markup=True)
        _fail("nothing to report: no file could be scored")
    written = write_report(results, out, formats=chosen, figures=figures)
    if refused:
        out.mkdir(parents=True, exist_ok=True)
        (out / "refused.txt").write_text("".join(reason + "\n" for reason in refused))
        written.append(out / "refused.txt")
    console = _console()
    for name in sorted(results["dataset"].unique()):
        table = summary_table(results, dataset=name)
        console.print(f"[bold]{name}[/]: {len(table)} methods")
        console.print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"), markup=False)
    for reason in refused:
        _console(stderr=True).print(f"[bold red]refused[/] {reason}", markup=True)
    console.print(f"wrote {len(written)} files to {out}", markup=False)


class DeviceChoice(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


@app.command("profile")
def profile_command(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated registered model names.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Joint count from this dataset: icvl, nyu, msra.")] = "nyu",
    device: Annotated[DeviceChoice, typer.Option(help="cpu, cuda, or auto (cpu and cuda when present).")] = DeviceChoice.cpu,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for latency (default: all cores torch uses).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Batch size for latency.")] = 1,
    throughput_batch: Annotated[int, typer.Option(min=0, help="Batch size for throughput (0: skip).")] = 32,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved timing rounds per model.")] = 3,
    min_time: Annotated[float, typer.Option(min=0.05, help="Seconds of timing per model and round.")] = 1.0,
    reference: Annotated[Optional[str], typer.Option(help="Model for the ratio column (default: trinet when registered).")] = None,
    fvcore: Annotated[bool, typer.Option("--fvcore/--no-fvcore", help="Also count with fvcore (jit trace).")] = True,
    onnxruntime: Annotated[Optional[bool], typer.Option(
        "--onnxruntime/--no-onnxruntime",
        help="Also time each model's ONNX export on ONNX Runtime's CPU provider (default: when installed).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write result rows to this CSV file.")] = Path("results/profile.csv"),
) -> None:
    """Parameters, MACs from thop / exact / fvcore counters, and latency with spread."""
    import importlib.util

    import torch
    from rich.table import Table

    from hpbench.profile import ONNXRUNTIME, COUNTER_CONVENTIONS, profile_models, profile_rows, summarize_rounds
    from hpbench.registry import UnknownNameError, list_models
    from hpbench.results import write_results

    names = [name.strip() for name in models.split(",") if name.strip()]
    if reference is None and "trinet" in list_models():
        reference = "trinet"
    if reference is not None and reference not in names:
        names.insert(0, reference)
    console, errors = _console(), _console(stderr=True)
    devices = ["cpu"] if device is DeviceChoice.cpu else ["cuda"] if device is DeviceChoice.cuda else ["cpu", "cuda"]
    if "cuda" in devices and not torch.cuda.is_available():
        errors.print("[yellow]no GPU:[/] CUDA latency skipped on this machine", markup=True)
        devices.remove("cuda")
    try:
        profiles = profile_models(
            names, dataset=dataset, devices=devices, threads=threads, batch=batch, throughput_batch=throughput_batch,
            rounds=rounds, min_run_time_s=min_time, fvcore=fvcore,
            onnxruntime=importlib.util.find_spec("onnxruntime") is not None if onnxruntime is None else onnxruntime,
            progress=lambda text: errors.print(text, style="dim"),
        )
    except UnknownNameError as error:
        _fail(str(error))
    table = Table("model", "params", "thop GMAC", "exact GMAC", "fvcore GMAC", title=f"cost at {dataset} joints")
    table.columns[0].no_wrap = True
    reference_latency = {}
    for profile in profiles:
        if profile.model == reference:
            reference_latency = {d: summarize_rounds(v)["median_ms"] for d, v in profile.latency.items()}
    if any(ONNXRUNTIME in profile.latency for profile in profiles):  # ONNX Runtime next to PyTorch's cpu
        devices.insert(devices.index("cpu") + 1 if "cpu" in devices else 0, ONNXRUNTIME)
    for dev in devices:
        table.add_column(f"{dev} ms median [p10-p90]")
        table.add_column(f"{dev} spread")
        if reference is not None:
            table.add_column(f"{dev} x {reference}")
        if throughput_batch and dev != ONNXRUNTIME:
            table.add_column(f"{dev} samples/s @{throughput_batch}")
    for profile in profiles:
        macs = profile.macs
        cells = [profile.model + (" (!)" if macs.disagree else ""), f"{profile.params:,}", f"{macs.thop / 1e9:.3f}",
                 f"{macs.exact / 1e9:.3f}", "-" if macs.fvcore is None else f"{macs.fvcore / 1e9:.3f}"]
        for dev in devices:
            if dev not in profile.latency:  # its ONNX export failed: see the notes
                cells += ["-"] * (2 + (reference is not None))
                continue
            summary = summarize_rounds(profile.latency[dev])
            cells += [f"{summary['median_ms']:.2f} [{summary['p10_ms']:.2f}-{summary['p90_ms']:.2f}]",
                      f"{100 * summary['spread']:.0f} %"]
            if reference is not None:
                cells.append(f"{summary['median_ms'] / reference_latency[dev]:.2f}" if dev in reference_latency else "-")
            if throughput_batch and dev != ONNXRUNTIME:
                cells.append(f"{profile.throughput[dev].throughput:.0f}")
        table.add_row(*cells)
    console.print(table)
    first = next(iter(profiles[0].latency.values()), None)
    if first:
        env = first[0].env
        console.print(f"latency: {first[0].method}, batch {batch}, {env.dtype}, {env.threads} threads, "
                      f"{env.device_name}, torch {env.torch}; spread = (max - min) / median of {rounds} "
                      "interleaved rounds", markup=False)
    ort = next((p.latency[ONNXRUNTIME][0] for p in profiles if ONNXRUNTIME in p.latency), None)
    if ort:
        console.print(f"{ONNXRUNTIME}: {ort.method}, each model's ONNX export at the same batch and "
                      f"{ort.env.threads} threads", markup=False)
    for name, convention in COUNTER_CONVENTIONS.items():
        console.print(f"{name}: {convention}", markup=False)
    for profile in profiles:
        for note in profile.macs.notes:
            console.print(f"(!) {profile.model}: {note}" if profile.macs.disagree else f"{profile.model}: {note}",
                          markup=False)
        if profile.excluded_params:
            console.print(f"{profile.model}: parameters exclude {profile.excluded_params}", markup=False)
        if profile.onnx_max_abs_diff is not None:
            console.print(f"{profile.model}: ONNX export, max |onnxruntime - torch| = {profile.onnx_max_abs_diff:.2g}",
                          markup=False)
        for note in profile.notes:
            console.print(f"{profile.model}: {note}", markup=False)
        if profile.unused:
            console.print(f"{profile.model}: {len(profile.unused)} parameter tensors get no gradient: "
                          f"{', '.join(profile.unused[:5])}", markup=False)
        if profile.declared_params is not None and profile.declared_params != profile.params:
            errors.print(f"{profile.model}: card declares {profile.declared_params:,} parameters, "
                         f"the model has {profile.params:,}", markup=False)
    if out is not None:
        write_results(profile_rows(profiles), out)
        console.print(f"wrote {out}", markup=False)


@app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (new, or an earlier synth output).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Format and camera: icvl (synth) or nyu (synth-nyu).")] = "icvl",
    frames: Annotated[int, typer.Option(min=1, help="Training frames.")] = 2000,
    test_frames: Annotated[Optional[int], typer.Option(min=1, help="Test frames (default frames / 4).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    from_labels: Annotated[Optional[Path], typer.Option(help="Render the test split from this label file's poses.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Processes (default: all cores).")] = None,
) -> None:
    """Render a synthetic hand dataset in the real ICVL or NYU on-disk format."""
    from hpbench.data.formats import DatasetError
    from hpbench.data.synth import synthesize

    try:
        summary = synthesize(dataset, out, frames=frames, test_frames=test_frames, seed=seed,
                             from_labels=from_labels, workers=workers, progress=True)
    except (DatasetError, FileExistsError, ValueError) as error:
        _fail(str(error))
    _console().print(summary.describe(), markup=False)


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
    from hpbench.runner import RunConfig, run

    names = _parse_models(models)
    _check_device(device)
    config = RunConfig(models=names, dataset=dataset, seed=seed, epochs=epochs, max_steps=max_steps,
                       batch_size=batch_size, frames=frames, test_frames=test_frames, quick=quick, data_root=data_root,
                       results_dir=results, reports_dir=reports, device=device, threads=threads, resume=resume, profile=profile, compile=compile,
                       floor=floor, eval_dir=eval_dir)
    console = _console()
    runs, written = run(config, echo=lambda text: console.print(text, markup=False))
    for item in runs:
        if item.error:
            console.print(f"[red]{item.model}: failed[/] {item.error}")
        else:
            console.print(f"{item.model}: mean error {item.mean_error_mm:.2f} mm; {'; '.join(item.notes)}",
                          markup=False)
    console.print(f"results in {results / dataset}, report: {', '.join(str(p) for p in written) or 'none'}",
                  markup=False)
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
    import torch

    from hpbench import distributed
    from hpbench.data.formats import DatasetError
    from hpbench.runner import RunConfig, config_data_root, run_model

    (model,) = _parse_models(model)
    _check_device(device)
    if threads:
        torch.set_num_threads(threads)
    config = RunConfig(models=(model,), dataset=dataset, seed=seed, epochs=epochs, max_steps=max_steps,
                       batch_size=batch_size, frames=frames, test_frames=test_frames, quick=quick, data_root=data_root,
                       results_dir=results, device=device, threads=threads, resume=resume, profile=profile, compile=compile, floor=False)
    console = _console()
    try:
        with distributed.process_group(device):
            main = distributed.is_main()
            if main and distributed.is_distributed():
                console.print(f"data parallel over {distributed.world_size()} processes "
                              f"({torch.distributed.get_backend()})", markup=False)
            with distributed.main_first():  # rank 0 renders a synthetic set once; the others reuse it
                root = config_data_root(config, progress=main)
            outcome = run_model(model, config, data_root=root, progress=main,
                                echo=lambda text: console.print(text, markup=False))
    except (DatasetError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    if main:
        console.print(f"{model}: mean error {outcome.mean_error_mm:.2f} mm; {'; '.join(outcome.notes)}", markup=False)
        console.print(f"results in {outcome.run_dir}", markup=False)


class ExportFormat(str, enum.Enum):
    onnx = "onnx"


@app.command("export")
def export_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.onnx,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Joint count from this dataset: icvl, nyu, msra.")] = "nyu",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (default: ./MODEL-DATASET.onnx).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Weights (.safetensors) to export; default: initial weights.")] = None,
    opset: Annotated[Optional[int], typer.Option(min=7, help="ONNX opset (default: hpbench.export.DEFAULT_OPSET).")] = None,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch/--static-batch", help="Symbolic batch axis.")] = True,
    atol: Annotated[float, typer.Option(min=0.0, help="Largest accepted |onnxruntime - torch| (crop px, normalized depth).")] = 1e-4,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for latency (default: all cores torch uses).")] = None,
    min_time: Annotated[float, typer.Option(min=0.05, help="Seconds of timing per runtime.")] = 1.0,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Time onnxruntime and torch at batch 1.")] = True,
) -> None:
    """Export a model to ONNX, check onnxruntime against PyTorch, and time both on the CPU."""
    from hpbench.cards import CardError, load_card
    from hpbench.export import (
        DEFAULT_OPSET,
        OnnxExportError,
        OnnxMismatchError,
        OnnxUnavailableError,
        check_onnx,
        example_input,
        export_onnx,
    )
    from hpbench.profile import measure_latency, onnxruntime_latency
    from hpbench.registry import UnknownNameError, create_model
    from hpbench.train import load_checkpoint_weights

    try:
        network = create_model(model, dataset=dataset).eval()
        if checkpoint is not None:
            load_checkpoint_weights(network, checkpoint)
    except (UnknownNameError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    try:
        shape = load_card(model).input_shape
    except CardError:
        shape = (1, network.input_size, network.input_size)
    path = out if out is not None else Path(f"{model}-{dataset}.{format.value}")
    opset = opset or DEFAULT_OPSET
    batches = (1, 3) if dynamic_batch else (1,)
    try:
        export_onnx(network, example_input(shape), path, opset=opset, dynamic_batch=dynamic_batch)
        diffs = {b: check_onnx(network, path, example_input(shape, batch=b, seed=b), atol=atol) for b in batches}
    except (OnnxUnavailableError, OnnxExportError) as error:
        _fail(str(error))
    except OnnxMismatchError as error:
        _fail(f"{error}; the file is kept for inspection", code=1)
    console = _console()
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, opset {opset}, "
                  f"{'dynamic' if dynamic_batch else 'static'} batch, input {'x'.join(map(str, shape))})", markup=False)
    console.print("max |onnxruntime - torch| = " + ", ".join(f"{d:.2g} at batch {b}" for b, d in diffs.items())
                  + f" (atol {atol:g})", markup=False)
    if latency:
        example = example_input(shape)
        timed = {"torch": measure_latency(network, example, threads=threads, min_run_time_s=min_time),
                 "onnxruntime": onnxruntime_latency(path, example, threads=threads, min_run_time_s=min_time)}
        env = timed["torch"].env
        console.print(f"cpu latency at batch 1, {env.threads} threads, {env.device_name}:", markup=False)
        for name, measured in timed.items():
            ratio = measured.median_ms / timed["torch"].median_ms
            console.print(f"  {name:12s} {measured.median_ms:8.2f} ms [{measured.p10_ms:.2f}-{measured.p90_ms:.2f}]"
                          f"  x{ratio:.2f}  ({measured.method})", markup=False)


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
    from hpbench.sweep import SweepConfig, sweep

    names = _parse_models(models)
    if executor is not ExecutorChoice.slurm:  # on Slurm the GPUs are on the nodes, not here
        _check_device(device)
    try:
        config = SweepConfig(
            models=names, datasets=_parse_list(datasets, "--datasets"), seeds=_parse_seeds(seeds), epochs=epochs,
            max_steps=max_steps, batch_size=batch_size, quick=quick, frames=frames, test_frames=test_frames,
            data_seed=data_seed, data_root=data_root, results_dir=results, reports_dir=reports, device=device,
            threads=threads, profile=profile, floor=floor, force=force, eval_dir=eval_dir, executor=executor.value,
            max_parallel=max_parallel, timeout_min=timeout, partition=partition, gpus_per_job=gpus, cpus_per_job=cpus,
            log_dir=log_dir,
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
                  f"{', '.join(str(reports / name) for name in config.datasets)}", markup=False)
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
