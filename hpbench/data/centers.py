"""Hand centres: the 3D point a crop is centred on.

Two sources, as in the baselines:
- a centre file: the refined centres the baselines publish (V2V-PoseNet's
  ``center_{train,test}_refined.txt``: one ``x y z`` line per frame, world mm,
  ``invalid`` where their detector found nothing), or image ``u v d`` lines;
- the depth itself: the centre of mass of the near range (DeepPrior++'s
  heuristic: the hand is the nearest object), refined by re-centring a 3D cube on
  it a few times.
Centres are returned in image uvd (u, v px; d mm), the crop's native frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from hpbench.data.camera import Camera
from hpbench.data.formats import DatasetError

__all__ = ["center_from_depth", "read_center_file"]


def center_from_depth(
    depth_mm: np.ndarray,
    camera: Camera,
    *,
    cube_mm: float,
    hand_range_mm: tuple[float, float] = (10.0, 1500.0),
    iterations: int = 6,
) -> np.ndarray:
    """(3,) hand centre (u px, v px, d mm) of one (H, W) depth frame; all nan when no pixel is in range.

    1. pixels with depth inside ``hand_range_mm`` are candidates; the nearest
       surface is their 0.1 % depth quantile (robust to flying pixels);
    2. the centre of mass (mean u, v, d) of the candidates within ``cube_mm / 2``
       behind that surface starts the estimate;
    3. it is refined ``iterations`` times: the centre of mass of the candidates
       inside the ``cube_mm`` cube around the current centre, where the cube's
       lateral extent uses the candidates' own world x, y.
    """
    depth = np.asarray(depth_mm, dtype=np.float32)
    near, far = hand_range_mm
    rows, cols = np.nonzero((depth > near) & (depth < far))
    if len(rows) == 0:
        return np.full(3, np.nan)
    d = depth[rows, cols].astype(np.float64)
    u = cols.astype(np.float64)
    v = rows.astype(np.float64)
    k = min(len(d) - 1, max(5, len(d) // 1000))
    front = np.partition(d, k)[k]
    half = cube_mm / 2.0
    selected = d < front + half
    centre = np.array([u[selected].mean(), v[selected].mean(), d[selected].mean()])
    x = (u - camera.cx) * d / camera.fx
    y = (v - camera.cy) * d / camera.fy
    for _ in range(iterations):
        cx, cy, _ = camera.uvd_to_xyz(centre)
        inside = (np.abs(x - cx) < half) & (np.abs(y - cy) < half) & (np.abs(d - centre[2]) < half)
        if not inside.any():
            break
        updated = np.array([u[inside].mean(), v[inside].mean(), d[inside].mean()])
        if np.allclose(updated, centre, atol=0.05):
            centre = updated
            break
        centre = updated
    return centre


def read_center_file(
    path: str | os.PathLike[str],
    camera: Camera,
    *,
    coords: Literal["xyz", "uvd"] = "xyz",
    y_axis: Literal["dataset", "up", "down"] = "dataset",
    num_frames: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres from a text file, one frame per line: ``(uvd (N, 3), valid (N,) bool)``.

    ``coords="xyz"``: world ``x y z`` mm as V2V-PoseNet's refined centre files;
    ``y_axis`` says which way their y points ("dataset": the camera's own
    convention, see Camera; V2V-PoseNet's files have y up). ``coords="uvd"``:
    image ``u v d``. A line reading ``invalid`` (V2V's marker) gives an invalid,
    nan centre. ``num_frames`` checks the line count. Errors name the file and line:
    an unreadable, binary or non-UTF-8 file, a line that is not three finite numbers
    (nan and inf are refused: ``invalid`` says "no centre"), a depth not in front of
    the camera.
    """
    path = Path(path)
    lines = _text_lines(path)
    values = np.full((len(lines), 3), np.nan)
    for index, line in enumerate(lines):
        values[index] = _center_line(path, line, index + 1, coords)
    if num_frames is not None and len(lines) != num_frames:
        raise DatasetError(path, f"{len(lines)} centre lines for {num_frames} frames")
    valid = np.isfinite(values).all(axis=1)
    if coords == "uvd":
        return values, valid
    if y_axis != "dataset" and (y_axis == "up") != camera.y_up:
        values = values * np.array([1.0, -1.0, 1.0])
    return camera.xyz_to_uvd(values), valid


def _text_lines(path: Path) -> list[str]:
    """The lines of a text file without trailing blank ones; unreadable, binary or non-UTF-8 files refused."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(path, f"cannot read centre file: {error.strerror or error}") from None
    if b"\x00" in raw:
        raise DatasetError(path, "binary content (NUL bytes), expected a text centre file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DatasetError(path, "not UTF-8 text, expected a text centre file", line=line) from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _center_line(path: Path, line: str, number: int, coords: str) -> np.ndarray:
    """(3,) values of one centre line; nan for ``invalid``."""
    tokens = line.split()
    if len(tokens) == 1 and tokens[0].lower() == "invalid":
        return np.full(3, np.nan)
    if len(tokens) != 3:
        raise DatasetError(path, f"{len(tokens)} values, expected 3 ({' '.join(coords)}) or 'invalid'", line=number)
    try:
        values = np.array([float(token) for token in tokens])
    except ValueError:
        raise DatasetError(path, f"not numbers: {line.strip()!r}", line=number) from None
    if not np.isfinite(values).all():
        raise DatasetError(path, f"{line.strip()!r} holds nan or inf, expected finite numbers or 'invalid'",
                           line=number)
    if values[2] <= 0:
        raise DatasetError(path, f"depth {tokens[2]} mm, expected a centre in front of the camera (> 0)",
                           line=number)
    return values
