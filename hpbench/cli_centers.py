"""``hpbench centers``: centre-of-mass hand centres of a user's own data, written in the format the
centre readers take (registered on the app by :func:`register_centers_command`, so that hpbench/cli.py
stays one readable page)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from hpbench._console import console as _console, fail as _fail
from hpbench.cli_options import DataRootOption, parse_dataset

__all__ = ["parse_range", "register_centers_command"]


class CenterFormat(str, enum.Enum):
    uvd = "uvd"
    xyz = "xyz"


CentersDatasetOption = Annotated[str, typer.Option(
    "--dataset", "-d", help="Registered dataset whose format and camera the frames have (icvl, nyu, msra, synth).")]
CentersSplitOption = Annotated[str, typer.Option(help="Split to compute: train, test (MSRA: P0..P8).")]
CentersOutOption = Annotated[Path, typer.Option("--out", "-o", help="Centre file to write (replaced atomically).")]
CentersFormatOption = Annotated[CenterFormat, typer.Option(
    "--format", help="uvd: 'u v d' lines (px, px, mm; TriHorn-Net, A2J), refused if a frame has no depth in range; "
                     "xyz: world 'x y z' mm lines, 'invalid' where no depth is in range (V2V-PoseNet).")]
CentersRangeOption = Annotated[Optional[str], typer.Option(
    "--range", help="LOW,HIGH: depths (mm) searched for the hand, e.g. 0,500 (default: the dataset's hand range).")]


def parse_range(text: str) -> tuple[float, float]:
    """'LOW,HIGH' (mm) -> (low, high) with 0 <= low < high; anything else fails naming --range."""
    message = f"--range takes LOW,HIGH in mm with 0 <= LOW < HIGH, got {text!r}"
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:  # not two numbers
        _fail(message)
    if not 0 <= low < high < float("inf"):
        _fail(message)
    return low, high


def centers_command(
    dataset: CentersDatasetOption,
    split: CentersSplitOption,
    out: CentersOutOption,
    data_root: DataRootOption = None,
    format: CentersFormatOption = CenterFormat.uvd,
    range_mm: CentersRangeOption = None,
) -> None:
    """Compute centre-of-mass hand centres of a dataset split and write them as a centre file.

    The file is what `--centers` takes and the protocols' refined-centre files look like: one line
    per frame in the split's label order.
    """
    from hpbench.data.centers import centers_from_depth, write_center_file
    from hpbench.data.formats import DatasetError, open_split

    spec = parse_dataset(dataset)
    limits = parse_range(range_mm) if range_mm is not None else spec.hand_range_mm
    try:
        index = open_split(spec, split, data_root=data_root)
        uvd, valid = centers_from_depth(index, range_mm=limits, progress=True)
        write_center_file(out, uvd, valid, coords=format.value, camera=spec.camera)
    except (DatasetError, ValueError) as error:
        _fail(str(error))
    missing = int((~valid).sum())
    note = f"; {missing} without depth in range: invalid" if missing else ""
    _console().print(f"{len(uvd)} centres ({format.value}, centre of mass of {limits[0]:g}-{limits[1]:g} mm) "
                     f"written to {out}{note}", markup=False, soft_wrap=True)


def register_centers_command(app: typer.Typer) -> None:
    """Add ``centers`` to ``app``."""
    app.command("centers", short_help="Compute centre-of-mass hand centres and write a centre file.")(centers_command)
