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
    from hpbench.scoring import ReadOptions

__all__ = [
    "AtolOption", "BatchOption", "CheckOption", "CoordsChoice", "CoordsOption", "CropSizeOption", "DatasetOption",
    "DeviceChoice", "DynamicBatchOption", "EvalDirOption", "ExportCheckpointOption", "ExportFormat",
    "ExportFormatOption", "ExportOutOption", "FiguresOption", "FilesArgument", "FormatsOption", "FramesOption",
    "FromLabelsOption", "FvcoreOption", "JointOrderOption", "JointsDatasetOption", "LabelsOption", "LatencyOption",
    "LatencyThreadsOption", "MinTimeOption", "ModelOption", "ModelOrPatternArgument", "ModelsOption", "NamesOption",
    "OnnxruntimeOption", "OpsetOption", "ProfileDeviceOption", "ProfileOutOption", "ReferenceOption",
    "RenderFramesOption", "ReportOutOption", "ReportPathsArgument", "RoundsOption", "SaveOption",
    "ScoredCheckpointOption", "ScoredDataRootOption", "ScoredDeviceOption", "ScoredModelOption", "SynthDatasetOption",
    "SynthOutOption", "SynthSeedOption", "SynthTestFramesOption", "ThroughputBatchOption", "ThroughputDatasetOption",
    "WorkersOption", "YAxisChoice", "YAxisOption", "check_device", "parse_joint_order", "parse_list", "parse_models",
    "read_options",
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
FiguresOption = Annotated[bool, typer.Option("--figures/--no-figures", help="Write curve and bar figures.")]

# profile
ProfileDeviceOption = Annotated[DeviceChoice, typer.Option(help="cpu, cuda, or auto (cpu and cuda when present).")]
BatchOption = Annotated[int, typer.Option(min=1, help="Batch size for latency.")]
ThroughputBatchOption = Annotated[int, typer.Option(min=0, help="Batch size for throughput (0: skip).")]
RoundsOption = Annotated[int, typer.Option(min=1, help="Interleaved timing rounds per model.")]
ReferenceOption = Annotated[Optional[str], typer.Option(
    help="Model for the ratio column (default: trinet when registered).")]
FvcoreOption = Annotated[bool, typer.Option("--fvcore/--no-fvcore", help="Also count with fvcore (jit trace).")]
OnnxruntimeOption = Annotated[Optional[bool], typer.Option(
    "--onnxruntime/--no-onnxruntime",
    help="Also time each model's ONNX export on ONNX Runtime's CPU provider (default: when installed).")]
ProfileOutOption = Annotated[Optional[Path], typer.Option(help="Write result rows to this CSV file.")]

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
    "--out", "-o", help="Output file (default: ./MODEL-DATASET.onnx).")]
ExportCheckpointOption = Annotated[Optional[Path], typer.Option(
    help="Weights (.safetensors) to export; default: initial weights.")]
OpsetOption = Annotated[Optional[int], typer.Option(min=7, help="ONNX opset (default: hpbench.export.DEFAULT_OPSET).")]
DynamicBatchOption = Annotated[bool, typer.Option("--dynamic-batch/--static-batch", help="Symbolic batch axis.")]
AtolOption = Annotated[float, typer.Option(
    min=0.0, help="Largest accepted |onnxruntime - torch| (crop px, normalized depth).")]
LatencyOption = Annotated[bool, typer.Option("--latency/--no-latency", help="Time onnxruntime and torch at batch 1.")]

def parse_list(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated names, in order, without repeats; none at all fails naming ``option``."""
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not items:
        fail(f"{option} needs at least one comma-separated name, got {text!r}")
    return items


def parse_models(text: str, option: str = "--models") -> tuple[str, ...]:
    """Comma-separated registered model names, in order, without repeats; unknown ones fail with close matches."""
    from hpbench.models import models
    from hpbench.registry import UnknownNameError

    names = parse_list(text, option)
    problems = []
    for name in names:
        try:
            models.get(name)
        except UnknownNameError as error:
            problems.append(str(error))
    if problems:
        fail("; ".join(problems))
    return names


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
