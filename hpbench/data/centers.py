"""Hand centres: the 3D point a crop is centred on.

Two sources, as in the baselines:
- a centre file: the refined centres the baselines publish (V2V-PoseNet's
  ``center_{train,test}_refined.txt``: one ``x y z`` line per frame, world mm,
  ``invalid`` where their detector found nothing; TriHorn-Net's and A2J's NYU
  files: image ``u v d`` lines);
- the depth itself: the centre of mass of the near range (DeepPrior++'s
  heuristic: the hand is the nearest object), refined by re-centring a 3D cube on
  it a few times.
Centres are returned in image uvd (u, v px; d mm), the crop's native frame.
:func:`resolve_centers` picks one split's source as a model's protocol says, and
:func:`write_center_file` writes centres (e.g. :func:`centers_from_depth` of a
user's own data) in the format the readers take.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hpbench._text import plural
from hpbench.data.camera import Camera
from hpbench.data.formats import DatasetError
from hpbench.files import atomic_write_text

if TYPE_CHECKING:
    from hpbench.data.formats import FrameIndex
    from hpbench.data.specs import DatasetSpec
    from hpbench.protocol import Centers

__all__ = [
    "CenterFile", "CentreChoice", "center_from_depth", "centers_from_depth", "read_center_file", "resolve_centers",
    "write_center_file",
]


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
    from hpbench.jointtable import read_text

    lines = read_text(path, DatasetError, what="centre file").split("\n")
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


def write_center_file(
    path: str | os.PathLike[str],
    uvd: np.ndarray,
    valid: np.ndarray,
    *,
    coords: Literal["xyz", "uvd"],
    camera: Camera,
    y_axis: Literal["dataset", "up", "down"] = "dataset",
) -> Path:
    """Write centres as :func:`read_center_file` reads them, atomically; returns ``path``.

    ``uvd`` (N, 3): image u, v (px), d (mm) per frame; ``valid`` (N,) bool: frames that have a
    centre. ``coords="xyz"``: world ``x y z`` lines in mm (V2V-PoseNet's format, y as ``y_axis``
    says), ``invalid`` for frames without a centre. ``coords="uvd"``: ``u v d`` lines (TriHorn-Net's
    and A2J's format, whose readers take numbers only): a frame without a centre is refused
    (ValueError naming it), write xyz or widen the depth range instead. Six decimals (px, mm).
    """
    uvd = np.asarray(uvd, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if uvd.ndim != 2 or uvd.shape[1] != 3 or valid.shape != (len(uvd),):
        raise ValueError(f"{path}: centres must be (N, 3) uvd with an (N,) valid mask, got {uvd.shape} and "
                         f"{valid.shape}")
    bad = np.flatnonzero(valid & ~(np.isfinite(uvd).all(axis=1) & (uvd[:, 2] > 0)))
    if len(bad):
        raise ValueError(f"{path}: frame {bad[0]} (0-based) is marked valid but its centre {uvd[bad[0]].tolist()} "
                         "is not finite numbers with a depth > 0 mm")
    if coords == "uvd" and not valid.all():
        missing = np.flatnonzero(~valid)
        raise ValueError(f"{path}: {plural(len(missing), 'frame')} without a centre (first: frame {missing[0]}, 0-based); "
                         "uvd files have no 'invalid' lines: write xyz or widen the depth range")
    values = uvd if coords == "uvd" else camera.uvd_to_xyz(uvd)
    if coords == "xyz" and y_axis != "dataset" and (y_axis == "up") != camera.y_up:
        values = values * np.array([1.0, -1.0, 1.0])
    values = np.round(values, 6) + 0.0  # no "-0.000000"
    lines = [f"{a:.6f} {b:.6f} {c:.6f}\n" if ok else "invalid\n" for (a, b, c), ok in zip(values, valid)]
    return atomic_write_text(path, "".join(lines))


def centers_from_depth(
    index: FrameIndex,
    *,
    range_mm: tuple[float, float],
    cube_mm: float | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`center_from_depth` of every frame of ``index``: ``(uvd (N, 3), valid (N,) bool)``, nan and
    False where no pixel has a depth inside ``range_mm`` (mm). ``cube_mm``: the re-centring cube's edge
    (default: the dataset's)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    spec = index.spec
    cube = spec.cube_mm if cube_mm is None else cube_mm
    uvd = np.full((len(index), 3), np.nan)
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"{spec.name} {index.split}: centres of {len(index)} frames", total=len(index))
        for frame in range(len(index)):
            uvd[frame] = center_from_depth(index.load_depth(frame), spec.camera, cube_mm=cube, hand_range_mm=range_mm)
            bar.advance(task)
    return uvd, np.isfinite(uvd).all(axis=1)


# --------------------------------------------------------------------------- which centres a protocol uses


@dataclass(frozen=True)
class CenterFile:
    """A centre file (see :func:`read_center_file`): world ``xyz`` lines as V2V-PoseNet's refined
    centres, or image ``uvd``; ``y_axis`` of xyz files. A file covering several splits in order (V2V's
    per-fold MSRA training file: every training subject's frames) gives a split's frames from 0-based
    line ``first_line`` on, and must hold ``total_lines`` lines (None: exactly the split's frames)."""

    path: Path
    coords: Literal["xyz", "uvd"] = "xyz"
    y_axis: Literal["dataset", "up", "down"] = "dataset"
    first_line: int = 0
    total_lines: int | None = None


@dataclass(frozen=True)
class CentreChoice:
    """Where one split's crop centres come from, and why, for the run's protocol record.

    ``file``: the centre file to read (None: the centre of mass of the pixels with depth inside
    ``com_range_mm``, mm; with a file, that range still centres the placeholder crops of its
    ``invalid`` frames, which the cache flags for dropping). ``requested``: the protocol's source
    for the split (refined, com, joints, predicted); ``fallback``: what is used differs from what
    the protocol asks; ``note``: the choice in words."""

    split: str
    requested: str
    file: CenterFile | None
    com_range_mm: tuple[float, float]
    fallback: bool
    note: str

    @property
    def source(self) -> Literal["file", "com"]:
        """``file`` or ``com`` (centre of mass)."""
        return "com" if self.file is None else "file"

    def record(self) -> dict[str, object]:
        """The choice as JSON-ready values for a run's protocol record (range in mm)."""
        file = self.file
        return {"split": self.split, "requested": self.requested, "used": self.source,
                "file": "" if file is None else str(file.path), "format": "" if file is None else file.coords,
                "com_range_mm": list(self.com_range_mm), "fallback": self.fallback, "note": self.note}


DEFAULT_REFINED_NAME = "center_{split}_refined.txt"  # V2V-PoseNet's and TriHorn-Net's name


def resolve_centers(
    centers: Centers,
    split: str,
    *,
    spec: DatasetSpec,
    root: Path | None,
    given: Path | None = None,
    fold: int | str | None = None,
) -> CentreChoice:
    """The centres of ``split`` (the protocol's role: train or test) under protocol ``centers``.

    A file is looked up in ``given`` (``--centers``: a folder holding the protocol's file names, or one
    file, used for whichever split is resolved: pass a file for a single split only), then, for a
    ``refined`` source of a real dataset, in the data ``root`` and ``root/centers/``; a synthetic
    dataset's own refined file (``spec.center_file``, world xyz) stands in for the protocol's. A ``com``
    source uses the centre of mass unless a file is given. ``joints`` and ``predicted`` (HandFoldingNet)
    are not implemented: a given refined file (``center_<split>_refined.txt``) or the centre of mass
    replaces them, said in ``note``. No file found: the centre of mass, recorded as a fallback. The
    centre of mass's range is the protocol's ``com_range_mm`` when a split of it uses one, else the
    dataset's ``hand_range_mm``. ``fold`` fills a ``{fold}`` in the file names; FileNotFoundError when
    ``given`` does not exist."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' (the protocol's role), got {split!r}")
    if given is not None and not given.exists():
        raise FileNotFoundError(f"--centers {given}: no such file or folder")
    requested = centers.train if split == "train" else centers.test
    protocol_name = centers.train_file if split == "train" else centers.test_file
    name = _file_name(protocol_name if requested == "refined" else DEFAULT_REFINED_NAME, split, fold)
    candidates = _candidates(centers, requested, name, split, spec=spec, root=root, given=given)
    found = next(((file, how) for file, how in candidates if file.path.is_file()), None)
    com_range, range_words = _com_range(centers, spec)
    if found is not None:
        file, how = found
        used = f"{'refined' if how != 'synthetic' else 'synthetic refined'} {file.coords} centres from {file.path}"
        used += {"given": " (--centers)", "root": "", "synthetic": " (the synthetic writer's)"}[how]
    else:
        file, used = None, f"centre of mass of {range_words}"
    return CentreChoice(split=split, requested=requested, file=file, com_range_mm=com_range,
                        fallback=_is_fallback(requested, found), note=_why(requested, protocol_name, name, used,
                                                                             candidates, found))


def _file_name(name: str, split: str, fold: int | str | None) -> str:
    """``name`` with ``{split}`` and ``{fold}`` filled; a ``{fold}`` without a fold is a ValueError."""
    if "{fold}" in name and fold is None:
        raise ValueError(f"centre file {name!r} is per fold: pass the fold")
    return name.format(split=split, fold=fold)


def _candidates(centers: Centers, requested: str, name: str, split: str, *, spec: DatasetSpec, root: Path | None,
                given: Path | None) -> list[tuple[CenterFile, str]]:
    """The centre files to try, in order, each with how it was found (given, root, synthetic)."""
    coords = centers.format
    out: list[tuple[CenterFile, str]] = []
    if given is not None:
        out.append((CenterFile(given if given.is_file() else given / name, coords), "given"))
    if root is None or requested == "com":
        return out
    if spec.synthetic:
        if spec.center_file:
            out.append((CenterFile(root / spec.center_file.format(split=split), "xyz"), "synthetic"))
    elif requested == "refined":
        out += [(CenterFile(root / name, coords), "root"), (CenterFile(root / "centers" / name, coords), "root")]
    return out


def _com_range(centers: Centers, spec: DatasetSpec) -> tuple[tuple[float, float], str]:
    """The centre of mass's depth range (mm) and how to say it."""
    if "com" in (centers.train, centers.test):
        low, high = centers.com_range_mm
        return (float(low), float(high)), f"{low:g}-{high:g} mm"
    low, high = spec.hand_range_mm
    return (float(low), float(high)), f"{low:g}-{high:g} mm (the dataset's hand range; the protocol gives none)"


def _is_fallback(requested: str, found: tuple[CenterFile, str] | None) -> bool:
    """Whether the centres used differ from the protocol's."""
    if requested == "refined":
        return found is None
    if requested == "com":
        return found is not None
    return True


def _why(requested: str, protocol_name: str, name: str, used: str, candidates: list[tuple[CenterFile, str]],
         found: tuple[CenterFile, str] | None) -> str:
    """The choice in words: what is used and, where it is not the protocol's, what the protocol asks."""
    if requested == "com":
        return f"{used} (protocol)" if found is None else f"{used}, instead of the protocol's centre of mass"
    if requested == "refined":
        if found is not None:
            return used
        places = ", ".join(dict.fromkeys(str(file.path.parent) for file, _ in candidates)) or "no folder"
        return f"{name} not found in {places}: {used} (fallback)"
    asked = ("ground-truth joint regions" if requested == "joints"
             else f"regions around another model's predicted joints ({protocol_name})")
    return f"{used}: the protocol's {asked} are not implemented"
