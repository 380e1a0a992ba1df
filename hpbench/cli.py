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
    files: Annotated[list[Path], typer.Argument(help="Prediction files, one line per test frame.")],
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
) -> None:
    """Score prediction files against the real test labels: mean 3D error, success rates, AUC."""
    from rich.table import Table

    from hpbench.predictions import PredictionFileError
    from hpbench.registry import UnknownNameError
    from hpbench.results import write_results
    from hpbench.scoring import infer_dataset, load_ground_truth, score_file

    options = _read_options(coords, y_axis, joint_order, frames, check)
    table = Table("method", "dataset", "frames", "read as", "mean error (mm)", "<=20 mm (%)", "<=40 mm (%)",
                  "AUC 0-80 mm (%)", title="3D joint error")
    table.columns[0].no_wrap = True
    refused: list[str] = []
    truths = {}
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
        rows = score.rows()
        auc = float(rows.loc[rows["metric"] == "auc_max", "value"].iloc[0])
        table.add_row(
            score.method, name, score.frames, score.reading, f"{score.mean_error_mm:.3f}",
            f"{100 * score.success_rate(20):.1f}", f"{100 * score.success_rate(40):.1f}", f"{100 * auc:.1f}",
        )
        if save is not None:
            write_results(rows, save / name / f"{score.method}.csv")
    console = _console()
    if table.row_count:
        console.print(table)
    for reason in refused:
        _console(stderr=True).print(f"[bold red]refused[/] {reason}", markup=True)
    if refused:
        raise typer.Exit(1)


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
    out: Annotated[Optional[Path], typer.Option(help="Write result rows to this CSV file.")] = Path("results/profile.csv"),
) -> None:
    """Parameters, MACs from thop / exact / fvcore counters, and latency with spread."""
    import torch
    from rich.table import Table

    from hpbench.profile import COUNTER_CONVENTIONS, profile_models, profile_rows, summarize_rounds
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
            rounds=rounds, min_run_time_s=min_time, fvcore=fvcore, progress=lambda text: errors.print(text, style="dim"),
        )
    except UnknownNameError as error:
        _fail(str(error))
    table = Table("model", "params", "thop GMAC", "exact GMAC", "fvcore GMAC", title=f"cost at {dataset} joints")
    table.columns[0].no_wrap = True
    reference_latency = {}
    for profile in profiles:
        if profile.model == reference:
            reference_latency = {d: summarize_rounds(v)["median_ms"] for d, v in profile.latency.items()}
    for dev in devices:
        table.add_column(f"{dev} ms median [p10-p90]")
        table.add_column(f"{dev} spread")
        if reference is not None:
            table.add_column(f"{dev} x {reference}")
        if throughput_batch:
            table.add_column(f"{dev} samples/s @{throughput_batch}")
    for profile in profiles:
        macs = profile.macs
        cells = [profile.model + (" (!)" if macs.disagree else ""), f"{profile.params:,}", f"{macs.thop / 1e9:.3f}",
                 f"{macs.exact / 1e9:.3f}", "-" if macs.fvcore is None else f"{macs.fvcore / 1e9:.3f}"]
        for dev in devices:
            summary = summarize_rounds(profile.latency[dev])
            cells += [f"{summary['median_ms']:.2f} [{summary['p10_ms']:.2f}-{summary['p90_ms']:.2f}]",
                      f"{100 * summary['spread']:.0f} %"]
            if reference is not None:
                cells.append(f"{summary['median_ms'] / reference_latency[dev]:.2f}")
            if throughput_batch:
                cells.append(f"{profile.throughput[dev].throughput:.0f}")
        table.add_row(*cells)
    console.print(table)
    first = next(iter(profiles[0].latency.values()), None)
    if first:
        env = first[0].env
        console.print(f"latency: {first[0].method}, batch {batch}, {env.dtype}, {env.threads} threads, "
                      f"{env.device_name}, torch {env.torch}; spread = (max - min) / median of {rounds} "
                      "interleaved rounds", markup=False)
    for name, convention in COUNTER_CONVENTIONS.items():
        console.print(f"{name}: {convention}", markup=False)
    for profile in profiles:
        for note in profile.macs.notes:
            console.print(f"(!) {profile.model}: {note}" if profile.macs.disagree else f"{profile.model}: {note}",
                          markup=False)
        if profile.excluded_params:
            console.print(f"{profile.model}: parameters exclude {profile.excluded_params}", markup=False)
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
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="synth (embedded default), synth-nyu, icvl, nyu.")] = "synth",
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's epochs (quick runs).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop each model after this many steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's batch size.")] = None,
    frames: Annotated[int, typer.Option(min=8, help="Synthetic training frames (synthetic datasets only).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of data, initialisation, shuffling and augmentation.")] = 0,
    data_root: Annotated[Optional[Path], typer.Option(help="Dataset root (default: $HPBENCH_<DATASET>_ROOT).")] = None,
    results: Annotated[Path, typer.Option(help="Folder of run directories.")] = Path("results"),
    reports: Annotated[Path, typer.Option(help="Folder of reports.")] = Path("reports"),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue interrupted runs from their last checkpoint.")] = False,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="Profile each trained model.")] = True,
    floor: Annotated[bool, typer.Option("--floor/--no-floor", help="Also train the mean-pose floor.")] = True,
    eval_dir: EvalDirOption = None,
) -> None:
    """Train, evaluate, profile and report models on a dataset (synthetic by default)."""
    from hpbench.registry import list_models
    from hpbench.runner import RunConfig, run

    names = tuple(name.strip() for name in models.split(",") if name.strip())
    known = set(list_models())
    unknown = [name for name in names if name not in known]
    if unknown:
        from hpbench.registry import models as registry

        _fail("; ".join(registry._unknown_message(name) for name in unknown))
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            _fail("no GPU on this machine: use --device cpu")
    config = RunConfig(models=names, dataset=dataset, seed=seed, epochs=epochs, max_steps=max_steps,
                       batch_size=batch_size, frames=frames, data_root=data_root, results_dir=results,
                       reports_dir=reports, device=device, threads=threads, resume=resume, profile=profile,
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
