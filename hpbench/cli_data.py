"""CLI commands that make or measure data: ``hpbench synth`` and ``hpbench throughput`` (registered on the
app by :func:`register_data_commands`, so that hpbench/cli.py stays one readable page)."""

from __future__ import annotations

import typer

from hpbench._console import console as _console, fail as _fail
from hpbench.cli_options import (
    CropSizeOption, FromLabelsOption, RenderFramesOption, SynthDatasetOption, SynthOutOption, SynthSeedOption,
    SynthTestFramesOption, ThroughputDatasetOption, WorkersOption,
)

__all__ = ["register_data_commands"]


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
    from hpbench.registry import UnknownNameError

    try:
        summary = synthesize(dataset, out, frames=frames, test_frames=test_frames, seed=seed,
                             from_labels=from_labels, workers=workers, progress=True)
    except (DatasetError, FileExistsError, UnknownNameError, ValueError) as error:
        _fail(str(error))
    _console().print(summary.describe())


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
    from hpbench.registry import UnknownNameError

    try:
        show_throughput(measure_throughput(dataset, frames=frames, workers=workers, size_px=size))
    except (DatasetError, UnknownNameError, ValueError) as error:
        _fail(str(error))


def register_data_commands(app: typer.Typer) -> None:
    """Add ``synth`` and ``throughput`` to ``app``."""
    app.command("synth", short_help="Render a synthetic hand dataset (ICVL or NYU format).")(synth_command)
    app.command("throughput", short_help="Measure the data pipeline's rates.")(throughput_command)
