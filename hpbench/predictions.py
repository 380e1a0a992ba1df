"""Read, validate and write hand pose prediction files as they exist in the wild.

A prediction file has one line per test frame and J x 3 numbers per line: image
(u px, v px, d mm) in the community's files, or world (x, y, z) mm in some
authors' original outputs; separated by spaces or tabs; optionally led by a
frame file-name column (``test_seq_1\\image_0000.png``): a joint table, read by
:func:`hpbench.jointtable.read_joint_table`. Every defect is one
:class:`PredictionFileError` naming the file and line; nothing is skipped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hpbench.files import atomic_write_text
from hpbench.jointtable import TableFileError, _is_number, read_joint_table

__all__ = [
    "Coords",
    "PredictionFile",
    "PredictionFileError",
    "detect_coords",
    "read_prediction_file",
    "write_prediction_file",
]

Coords = Literal["uvd", "xyz"]


class PredictionFileError(TableFileError):
    """A prediction file that cannot be read or scored as asked; ``str()`` is one line naming file and line."""


@dataclass(frozen=True)
class PredictionFile:
    """The parsed content of a prediction file.

    ``joints``: (N, J, 3) float64 as written in the file (uvd or xyz, see ``coords``);
    ``names``: the frame file names of the leading column, or None;
    ``line_numbers``: 1-based line of each frame in the file.
    """

    path: Path
    joints: np.ndarray
    names: tuple[str, ...] | None
    line_numbers: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[1])


def read_prediction_file(
    path: str | os.PathLike[str], *, num_joints: int, dataset: str | None = None
) -> PredictionFile:
    """Parse ``path`` holding ``num_joints`` x 3 numbers per line (plus an optional name column).

    ``dataset`` only makes messages name the dataset the joint count came from.
    Raises :class:`PredictionFileError` on an empty or binary file, blank lines
    inside the data, a wrong number of values, non-numeric tokens, nan or inf.
    """
    owner = f"for {dataset} ({num_joints} joints)" if dataset else f"({num_joints} joints)"
    table = read_joint_table(path, num_joints=num_joints, skip_blank_lines=False, what=owner, error=PredictionFileError)
    if len(table.joints) == 0:
        raise PredictionFileError(table.path, "empty file: no prediction lines")
    return PredictionFile(path=table.path, joints=table.joints, names=table.names, line_numbers=table.lines)


def detect_coords(joints: np.ndarray) -> Coords:
    """Guess whether (N, J, 3) values are image uvd or world xyz.

    Image u and v are pixel indices, non-negative up to a few stray pixels, while
    world x and y are centred on the optical axis and about half negative. More
    than 5 % negative u/v values therefore means xyz.
    """
    negative = float((joints[..., :2] < 0).mean())
    return "xyz" if negative > 0.05 else "uvd"


def write_prediction_file(
    path: str | os.PathLike[str], joints: np.ndarray, *, names: list[str] | None = None
) -> Path:
    """Write (N, J, 3) joints one frame per line, space separated, 6 decimals (the community format).

    With ``names``, each line starts with the frame name followed by a tab.
    """
    path = Path(path)
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be (N, J, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain nan or inf")
    if names is not None and len(names) != len(joints):
        raise ValueError(f"{len(names)} names for {len(joints)} frames")
    for name in names or ():  # the reader must get each name back as the line's first token
        if not name or name != "".join(name.split()) or _is_number(name):
            raise ValueError(f"frame name {name!r} cannot be read back: empty, with whitespace or a number")
    flat = joints.reshape(len(joints), -1)
    body = [" ".join(f"{value:.6f}" for value in row) for row in flat]
    if names is not None:
        body = [f"{name}\t{line}" for name, line in zip(names, body, strict=True)]
    return atomic_write_text(path, "".join(line + "\n" for line in body))
