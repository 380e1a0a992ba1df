"""Read, validate and write hand pose prediction files as they exist in the wild.

A prediction file has one line per test frame and J x 3 numbers per line: image
(u px, v px, d mm) in the community's files, or world (x, y, z) mm in some
authors' original outputs; separated by spaces or tabs; optionally led by a
frame file-name column (``test_seq_1\\image_0000.png``). Every defect is one
:class:`PredictionFileError` naming the file and line; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "Coords",
    "PredictionFile",
    "PredictionFileError",
    "detect_coords",
    "read_prediction_file",
    "write_prediction_file",
]

Coords = Literal["uvd", "xyz"]


class PredictionFileError(ValueError):
    """A prediction file that cannot be read as asked; ``str()`` is one line naming file and line."""

    def __init__(self, path: str | os.PathLike[str], message: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")


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


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_prediction_file(
    path: str | os.PathLike[str], *, num_joints: int, dataset: str | None = None
) -> PredictionFile:
    """Parse ``path`` holding ``num_joints`` x 3 numbers per line (plus an optional name column).

    ``dataset`` only makes messages name the dataset the joint count came from.
    Raises :class:`PredictionFileError` on an empty or binary file, blank lines
    inside the data, a wrong number of values, non-numeric tokens, nan or inf.
    """
    path = Path(path)
    expected = 3 * num_joints
    owner = f" for {dataset} ({num_joints} joints)" if dataset else f" ({num_joints} joints)"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise PredictionFileError(path, f"cannot read: {error.strerror or error}") from None
    if b"\x00" in raw:
        raise PredictionFileError(path, "binary content (NUL bytes): not a text prediction file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise PredictionFileError(path, "not UTF-8 text", line=line) from None

    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PredictionFileError(path, "empty file: no prediction lines")

    first = lines[0].split()
    has_names = bool(first) and not _is_number(first[0])
    width = expected + int(has_names)
    parsed = _parse_fast(lines, has_names, width)
    if parsed is None:  # the careful pass finds and names the first defect
        parsed = _parse_checked(path, lines, has_names, width, expected, owner)
    names, values = parsed
    joints = values.reshape(len(lines), num_joints, 3)
    finite = np.isfinite(joints)
    if not finite.all():
        frame, joint, axis = (int(i) for i in np.argwhere(~finite)[0])
        raise PredictionFileError(
            path,
            f"joint {joint + 1}, coordinate {'xyz'[axis]}/{'uvd'[axis]} is {float(joints[frame, joint, axis])} "
            f"({int((~finite).sum())} non-finite values in the file)",
            line=frame + 1,
        )
    return PredictionFile(
        path=path,
        joints=joints,
        names=names,
        line_numbers=np.arange(1, len(lines) + 1),
    )


def _parse_fast(lines: list[str], has_names: bool, width: int) -> tuple[tuple[str, ...] | None, np.ndarray] | None:
    """pandas' C parser for well-formed files (~5x faster than Python); None if anything is off."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(lines)), sep=r"\s+", header=None, engine="c", quoting=csv.QUOTE_NONE,
            skip_blank_lines=False, dtype={0: str} if has_names else None,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if frame.shape != (len(lines), width):
        return None
    block = frame.iloc[:, int(has_names):]
    if not all(kind in "fi" for kind in (dtype.kind for dtype in block.dtypes)):
        return None
    values = block.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    names = tuple(frame.iloc[:, 0].astype(str)) if has_names else None
    if names is not None and any(_is_number(name) for name in names):
        return None
    return names, values.reshape(-1)


def _parse_checked(
    path: Path, lines: list[str], has_names: bool, width: int, expected: int, owner: str
) -> tuple[tuple[str, ...] | None, np.ndarray]:
    """Line-by-line parse that raises on the first defect, naming its line."""
    names: list[str] = []
    numbers: list[float] = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            raise PredictionFileError(path, "blank line inside the data", line=number)
        if has_names and _is_number(tokens[0]):
            raise PredictionFileError(
                path, f"line 1 starts with a frame name but this line starts with the number {tokens[0]!r}",
                line=number,
            )
        if len(tokens) != width:
            raise PredictionFileError(path, _count_message(tokens, has_names, expected, owner), line=number)
        if has_names:
            names.append(tokens[0])
        for column, token in enumerate(tokens[int(has_names):], start=1 + int(has_names)):
            try:
                numbers.append(float(token))
            except ValueError:
                raise PredictionFileError(path, f"column {column}: {token!r} is not a number", line=number) from None
    return (tuple(names) if has_names else None), np.array(numbers, dtype=np.float64)


def _count_message(tokens: list[str], has_names: bool, expected: int, owner: str) -> str:
    values = len(tokens) - int(has_names)
    message = f"{values} values, expected {expected}{owner}"
    if values % 3 == 0 and values > 0:
        message += f"; the line holds {values // 3} joints x 3: wrong --dataset or a different joint set?"
    if not has_names and values == expected + 1 and not _is_number(tokens[0]):
        message += "; first token is a frame name but line 1 has none"
    return message


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
    flat = joints.reshape(len(joints), -1)
    body = [" ".join(f"{value:.6f}" for value in row) for row in flat]
    if names is not None:
        body = [f"{name}\t{line}" for name, line in zip(names, body, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in body))
    return path
