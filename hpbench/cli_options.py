"""Options of the `hpbench` commands, each defined once, and the parsers that turn their strings into
typed values at the CLI edge (design/style.md: strings are parsed once)."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from hpbench._console import fail

if TYPE_CHECKING:
    from hpbench.data.specs import DatasetSpec
    from hpbench.runner import RunSettings
    from hpbench.scoring import ReadOptions

__all__ = [
    "SelectChoice",
    "SelectOption",
    "ResumeOption",
    "RunProfileOption",
    "LogDirOption",
    "CpusOption",
    "GpusOption",
    "PartitionOption",
    "TimeoutOption",
    "ForceOption",
    "MaxParallelOption",
    "JobThreadsOption",
    "SweepDataRootOption",
    "DataSeedOption",
    "ExecutorOption",
    "SeedsOption",
    "DatasetsOption",
    "CentersOption",
    "BudgetOption",
    "PreciseOption",
    "ProfileMinTimeOption",
    "ProfileOnnxOption",
    "ProfileRoundsOption",
    "RuntimesOption",
    "SweepBatchOption",
    "parse_runtime_list",
    "AtolOption", "BatchSizeOption", "Bf16Option", "CheckOption", "CompileOption", "CoordsChoice", "CoordsOption",
    "CropSizeOption", "DataRootOption", "DatasetOption", "DeviceChoice", "DeviceOption", "DynamicBatchOption",
    "EpochsOption", "EvalDirOption", "ExecutorChoice", "ExportCheckpointOption", "ExportFormat", "ExportFormatOption",
    "ExportOutOption", "FiguresOption", "FilesArgument", "FloorOption", "FormatsOption", "FramesOption",
    "FromLabelsOption", "FvcoreOption", "JointOrderOption", "JointsDatasetOption", "LabelsOption", "LatencyOption",
    "LatencyThreadsOption", "MaxStepsOption", "MinTimeOption", "ModelOption", "ModelOrPatternArgument", "ModelsOption",
    "NamesOption", "OpsetOption", "OverwriteOption", "ProfileDeviceOption", "ProfileOutOption", "QuickOption",
    "ReferenceOption", "RenderFramesOption", "ReportOutOption", "ReportPathsArgument", "ReportsOption", "ResultsOption",
    "SaveOption", "ScoredCheckpointOption", "ScoredDataRootOption", "ScoredDeviceOption",
    "ScoredModelOption", "SeedOption", "SynthDatasetOption", "SynthFramesOption", "SynthOutOption", "SynthSeedOption",
    "SynthTestFramesOption", "TestFramesOption", "ThreadsOption", "ThroughputDatasetOption",
    "TrainDatasetOption", "WorkersOption", "YAxisChoice", "YAxisOption", "check_device", "parse_joint_order",
    "parse_dataset", "parse_list", "parse_model", "parse_models", "parse_seeds", "read_options", "run_settings",
]


class CoordsChoice(str, enum.Enum):
    auto = "auto"
    uvd = "uvd"
    xyz = "xyz"


class YAxisChoice(str, enum.Enum):
    dataset = "dataset"
    up = "up"
    down = "down"


class DeviceChoice(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class SelectChoice(str, enum.Enum):
    final = "final"
    best_test = "best-test"


class ExportFormat(str, enum.Enum):
    onnx = "onnx"


ModelsOption = Annotated[str, typer.Option("--models", "-m", help="Comma-separated registered model names.")]
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registered model name.")]
DatasetOption = Annotated[
    Optional[str],
    typer.Option("--dataset", "-d", help="icvl, nyu or msra; default: from the file name or its folder."),
]
JointsDatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Joint count from this dataset: icvl, nyu, msra.")]
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
LatencyThreadsOption = Annotated[Optional[int], typer.Option(
    "--threads", min=1, help="CPU threads for latency (default: all cores torch uses).")]
WorkersOption = Annotated[Optional[int], typer.Option(min=1, help="Processes (default: all cores).")]
MinTimeOption = Annotated[float, typer.Option(
    "--min-time", min=0.05, help="Seconds of timing per model (and round, or runtime).")]


# ls
ModelOrPatternArgument = Annotated[Optional[str], typer.Argument(
    help="A model name: print its whole card; or an fnmatch pattern, e.g. 'ours*'.")]

# eval
FilesArgument = Annotated[Optional[list[Path]], typer.Argument(help="Prediction files, one line per test frame.")]
LabelsOption = Annotated[Optional[Path], typer.Option(help="Explicit test labels (J x u v d per line).")]
NamesOption = Annotated[Optional[Path], typer.Option(help="Frame names of --labels, one per line.")]
SaveOption = Annotated[Optional[Path], typer.Option(help="Write result rows as CSV into this folder.")]
ScoredModelOption = Annotated[Optional[str], typer.Option(
    "--model", help="Score a registered model on the test split (needs --dataset) instead of files.")]
ScoredCheckpointOption = Annotated[Optional[Path], typer.Option(
    help="Weights (.safetensors) for --model; default: the checkpoint its zoo card ships.")]
ScoredDataRootOption = Annotated[Optional[Path], typer.Option(
    help="Dataset root for --model (default: $HPBENCH_<DATASET>_ROOT; synthetic: rendered).")]
ScoredDeviceOption = Annotated[str, typer.Option(help="cpu or cuda, for --model.")]

# report
ReportPathsArgument = Annotated[list[Path], typer.Argument(
    help="Prediction files (.txt), results files (.csv) or folders of them.")]
ReportOutOption = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
FormatsOption = Annotated[str, typer.Option("--format", help="Comma-separated: latex, markdown, csv.")]
FiguresOption = Annotated[bool, typer.Option(
    "--figures/--no-figures",
    help="Write the figures (success-rate curve, per-joint bars and distributions, error against cost).")]
PaperOption = Annotated[bool, typer.Option("--paper", help="Also the seed paper's Table 1/2 layout, quoted next to "
                                                          "measured, with footnotes where its figures are wrong.")]
MethodsOption = Annotated[str | None, typer.Option(
    "--methods", help="Comma-separated methods the figures show (registry, file or display names); "
                      "default: this library's models, then the best, 8 in all. Tables show every method.")]

# profile
ProfileDeviceOption = Annotated[DeviceChoice, typer.Option(help="cpu, cuda, or auto (cpu and cuda when present).")]
ReferenceOption = Annotated[Optional[str], typer.Option(
    help="Model for the ratio column (default: trinet when registered).")]
FvcoreOption = Annotated[bool, typer.Option("--fvcore/--no-fvcore", help="Also count with fvcore (jit trace).")]
ProfileOutOption = Annotated[Optional[Path], typer.Option(help="Write result rows to this CSV file.")]
RuntimesOption = Annotated[Optional[str], typer.Option(
    "--runtimes", help="Comma-separated: eager, fused (hpbench.fuse), compile (torch.compile, inductor), onnx "
                       "(ONNX Runtime CPU), cudagraph, tensorrt, or all. Default: eager,fused (on a GPU also "
                       "cudagraph,tensorrt).")]
BudgetOption = Annotated[Optional[float], typer.Option(
    "--budget", min=0.1, help="Seconds per model and runtime: warm-up, latency, batch sweep (default: 6; 60 with "
                              "--precise). Counters and ONNX export come on top.")]
PreciseOption = Annotated[bool, typer.Option(
    "--precise", help="Long measurements: 60 s per model and runtime, 200 samples in 5 rounds, batches to 1024.")]
SweepBatchOption = Annotated[int, typer.Option(
    "--throughput-batch", min=0, help="Largest batch of the throughput sweep 8, 32, 128, ... where it fits the "
                                      "budget and memory (0: batch 1 only).")]
ProfileOnnxOption = Annotated[Optional[bool], typer.Option(
    "--onnxruntime/--no-onnxruntime",
    help="Also time ONNX Runtime (as onnx in --runtimes; the export takes 10-20 s per model on 2 cores).")]
ProfileRoundsOption = Annotated[Optional[int], typer.Option(
    "--rounds", min=1, help="Interleaved latency rounds (default: 3; 5 with --precise).")]
ProfileMinTimeOption = Annotated[Optional[float], typer.Option(
    "--min-time", min=0.01, help="Seconds of latency per model, runtime and round (overrides --budget's share).")]


def parse_runtime_list(text: str | None) -> tuple:  # -> tuple[hpbench.latency.Runtime, ...]
    """``--runtimes`` into runtimes (None: the default set); an unknown name fails naming the choices."""
    from hpbench.latency import DEFAULT_RUNTIMES, parse_runtimes

    if text is None:
        return DEFAULT_RUNTIMES
    try:
        return parse_runtimes(text)
    except ValueError as error:
        fail(f"--runtimes: {error}")

# synth and throughput
SynthOutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="Folder to write (new, or an earlier synth output).")]
SynthDatasetOption = Annotated[str, typer.Option(
    "--dataset", "-d", help="Format and camera: icvl (synth) or nyu (synth-nyu).")]
RenderFramesOption = Annotated[int, typer.Option(min=1, help="Training frames to render (test: a quarter more).")]
SynthTestFramesOption = Annotated[Optional[int], typer.Option(min=1, help="Test frames (default frames / 4).")]
SynthSeedOption = Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")]
FromLabelsOption = Annotated[Optional[Path], typer.Option(help="Render the test split from this label file's poses.")]
ThroughputDatasetOption = Annotated[str, typer.Option(
    "--dataset", "-d", help="Synthetic set to render: synth or synth-nyu.")]
CropSizeOption = Annotated[int, typer.Option(min=8, help="Crop size (px).")]

# export
ExportFormatOption = Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")]
ExportOutOption = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output file (default: results/export/MODEL-DATASET.onnx).")]
ExportCheckpointOption = Annotated[Optional[Path], typer.Option(
    help="Weights (.safetensors) to export; default: initial weights.")]
OpsetOption = Annotated[Optional[int], typer.Option(min=7, help="ONNX opset (default: hpbench.export.DEFAULT_OPSET).")]
DynamicBatchOption = Annotated[bool, typer.Option("--dynamic-batch/--static-batch", help="Symbolic batch axis.")]
AtolOption = Annotated[float, typer.Option(
    min=0.0, help="Largest accepted |onnxruntime - torch| (crop px, normalized depth).")]
LatencyOption = Annotated[bool, typer.Option("--latency/--no-latency", help="Time onnxruntime and torch at batch 1.")]

# run, train and sweep
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
CentersOption = Annotated[Optional[Path], typer.Option(
    "--centers", help="Hand centres: a folder holding the centre files the model's protocol names (e.g. "
                      "center_test_refined.txt), or one file for a single split (eval's test split); read in the "
                      "protocol's format (u v d lines; world x y z for v2v). Default: the protocol's files under the "
                      "data root or its centers/ folder, else the centre of mass, recorded as a fallback.")]
SelectOption = Annotated[SelectChoice, typer.Option(
    "--select", help="Checkpoint to score: final, or best-test (every epoch checkpoint scored on the test set, the "
                     "best kept, as TriHorn-Net and A2J report; its rows say so in their protocol).")]
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
Bf16Option = Annotated[bool, typer.Option(
    "--bf16", help="CPU mixed precision: forward and loss under bfloat16 autocast (weights and Adam stay float32), "
                   "for cards whose recipe allows mixed precision; CPUs with bfloat16 instructions only. Recorded "
                   "in config.json.")]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Clear a run directory that holds an earlier run, then train afresh.")]


class ExecutorChoice(str, enum.Enum):
    local = "local"
    slurm = "slurm"
    debug = "debug"


ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue from the last intact checkpoint (refused when the configuration differs).")]
RunProfileOption = Annotated[bool, typer.Option(
    "--profile/--no-profile", help="Profile each trained model (sweep: once, in its first seed's job).")]


# Options of `sweep` alone.
DatasetsOption = Annotated[str, typer.Option(
    "--datasets", "-d", help="Comma-separated datasets: synth, synth-nyu, icvl, nyu.")]
SeedsOption = Annotated[str, typer.Option(
    help="Seeds of initialisation, shuffling and augmentation: '0,1,2' or '0-4'.")]
ExecutorOption = Annotated[ExecutorChoice, typer.Option(
    help="local (subprocesses here), slurm, or debug (in this process).")]
DataSeedOption = Annotated[int, typer.Option(help="Seed of the synthetic data, the same for every run.")]
SweepDataRootOption = Annotated[Optional[Path], typer.Option(
    help="Root of the one swept dataset (default: $HPBENCH_<DATASET>_ROOT).")]
JobThreadsOption = Annotated[Optional[int], typer.Option(
    min=1, help="CPU threads per job (default: cores / --max-parallel here, --cpus on Slurm).")]
MaxParallelOption = Annotated[Optional[int], typer.Option(
    min=1, help="Jobs running at once (default: one per 4 cores here, all on Slurm).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Retrain runs that already have metrics.csv.")]
TimeoutOption = Annotated[int, typer.Option(
    min=1, help="Minutes per job before it is stopped (and requeued from its checkpoint).")]
PartitionOption = Annotated[Optional[str], typer.Option(help="Slurm partition.")]
GpusOption = Annotated[int, typer.Option(min=0, help="GPUs per job (Slurm; local: CUDA_VISIBLE_DEVICES).")]
CpusOption = Annotated[Optional[int], typer.Option(min=1, help="CPUs per job (Slurm).")]
LogDirOption = Annotated[Optional[Path], typer.Option(help="submitit job logs (default: RESULTS/sweep-logs).")]


def parse_list(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated names, in order, without repeats; none at all fails naming ``option``."""
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not items:
        fail(f"{option} needs at least one comma-separated name, got {text!r}")
    return items


def parse_models(text: str, option: str = "--models") -> tuple[str, ...]:
    """Comma-separated model specs (a registered name, or ``head@backbone``), in order, without repeats. Each
    is checked before any work: its name or head, its backbone and its card; the bad ones fail in one line,
    each with the known choices (close matches first)."""
    names = parse_list(text, option)
    problems = [problem for problem in map(_model_problem, names) if problem]
    if problems:
        fail("; ".join(problems))
    return names


def parse_model(text: str, option: str) -> str:
    """One model spec, checked as :func:`parse_models` checks each; a list fails naming ``option``."""
    names = parse_list(text, option)
    if len(names) > 1:
        fail(f"{option} takes one model, got {len(names)}: {', '.join(names)}")
    return parse_models(text, option)[0]


def _model_problem(name: str) -> str | None:
    """Why model spec ``name`` cannot run (unknown name or head, unknown backbone, no or a bad card), or None."""
    from hpbench.cards import CardError, card_names, load_card
    from hpbench.models import models
    from hpbench.models._registry import COMBINATION_SEPARATOR
    from hpbench.registry import UnknownNameError

    try:
        models.get(name)
    except UnknownNameError as error:
        return str(error) if COMBINATION_SEPARATOR not in name else f"model {name!r}: {error}"
    if COMBINATION_SEPARATOR in name and name not in models:
        from hpbench.models.backbones import backbone_problem

        problem = backbone_problem(name.partition(COMBINATION_SEPARATOR)[2])
        if problem:
            return f"model {name!r}: {problem}"
    try:
        load_card(name)
    except CardError as error:
        return f"{error} (models with cards: {', '.join(card_names())})" if "has no card" in str(error) else str(error)
    return None


def check_device(device: str) -> None:
    """Fail unless ``device`` is cpu, cuda or cuda:N, and a GPU is present for cuda."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        fail(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            fail("no GPU on this machine: use --device cpu")


def parse_joint_order(text: str | None) -> tuple[int, ...] | None:
    """'3,1,0,...' (commas or spaces) -> 0-based joint indices; None stays None."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in re.split(r"[,\s]+", text.strip()) if part)
    except ValueError:
        fail(f"--joint-order must be comma-separated 0-based joint indices, got {text!r}")


def read_options(coords: CoordsChoice, y_axis: YAxisChoice, joint_order: str | None, frames: str | None,
                 check: bool) -> ReadOptions:
    """The prediction-file reading options of eval and report."""
    from hpbench.scoring import ReadOptions

    return ReadOptions(coords=coords.value, y_axis=y_axis.value, joint_order=parse_joint_order(joint_order),
                       frames=frames, check=check)


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0-4' (inclusive) or a mix -> seeds in order, without repeats."""
    seeds: list[int] = []
    for part in parse_list(text, "--seeds"):
        first, dash, last = part.partition("-")
        try:
            seeds += range(int(first), int(last) + 1) if dash and first else [int(part)]
        except ValueError:
            fail(f"--seeds takes comma-separated integers or ranges like 0-4, got {part!r}")
    return tuple(dict.fromkeys(seeds))


def parse_dataset(name: str) -> DatasetSpec:
    """The spec of registered dataset ``name``; an unknown name fails with close matches."""
    from hpbench.data.specs import get_dataset
    from hpbench.registry import UnknownNameError

    try:
        return get_dataset(name)
    except UnknownNameError as error:
        fail(str(error))


def run_settings(options: dict[str, object], *, check_device_option: bool = True) -> RunSettings:
    """The RunSettings of `run`, `train` or `sweep` from the command's parameters (its ``locals()``, taken
    first thing): each field from the option of the same name, the others at their default; the device checked."""
    from dataclasses import fields

    from hpbench.runner import RunSettings

    if check_device_option:
        check_device(str(options["device"]))
    centers = options.get("centers")
    if isinstance(centers, Path) and not centers.is_dir():
        fail(f"--centers {centers}: " + ("a training run crops its train and test splits around different centres: "
                                         "give the folder holding the protocol's centre files (one file is for "
                                         "`hpbench eval --model`, which reads the test split only)"
                                         if centers.is_file() else "no such folder"))
    try:
        values = {field.name: options[field.name] for field in fields(RunSettings) if field.name in options}
        settings = RunSettings(**{name: value.value if isinstance(value, enum.Enum) else value
                                  for name, value in values.items()})
    except ValueError as error:  # --resume with --overwrite, --bf16 on CUDA
        fail(str(error))
    problem = settings.hardware_problem() if check_device_option else ""  # this machine runs the jobs
    if problem:
        fail(problem)  # before any work
    return settings
