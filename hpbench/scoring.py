"""Score prediction files against a dataset's public test labels.

The path from a file to numbers: read (hpbench.predictions), match its lines to
test frames (by file name, by an explicit range, or all), bring it to world xyz
in the dataset's convention, compute errors (hpbench.metrics), and emit tidy
rows (hpbench.results). A file that reads wrongly as asked (world y flipped,
joints in another order, uvd taken for xyz) is refused with the option that
fixes it, instead of being scored into a meaningless number.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hpbench import metrics
from hpbench._text import plural
from hpbench.data.specs import DatasetSpec, FrameRange
from hpbench.predictions import Coords, PredictionFile, PredictionFileError, detect_coords, read_prediction_file

__all__ = [
    "EVAL_DIR_ENV",
    "Collected",
    "GroundTruth",
    "ReadOptions",
    "Score",
    "collect",
    "collect_results",
    "find_eval_dir",
    "infer_dataset",
    "load_ground_truth",
    "score_file",
    "score_predictions",
    "score_rows",
]

EVAL_DIR_ENV = "HPBENCH_EVAL_DIR"
"""Environment variable naming a handpose-eval folder (groundtruth/, results/)."""

YAxis = Literal["dataset", "up", "down"]


def find_eval_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The handpose-eval folder: ``explicit``, else $HPBENCH_EVAL_DIR, else ../shared/handpose-eval.

    The last is looked up next to the current directory and next to a source
    checkout of hpbench. Returns None when none exists (explicit ones must exist).
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_dir():
            raise FileNotFoundError(f"evaluation folder {path} does not exist")
        return path
    if os.environ.get(EVAL_DIR_ENV):
        path = Path(os.environ[EVAL_DIR_ENV])
        if not path.is_dir():
            raise FileNotFoundError(f"${EVAL_DIR_ENV}={path} is not a folder")
        return path
    checkout = Path(__file__).resolve().parents[1]
    for base in (Path.cwd(), checkout):
        candidate = base.parent / "shared" / "handpose-eval"
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class GroundTruth:
    """Test labels of one dataset: ``uvd`` (N, J, 3) in (px, px, mm) and frame names."""

    dataset: DatasetSpec
    uvd: np.ndarray
    names: tuple[str, ...]
    source: Path

    @functools.cached_property
    def xyz(self) -> np.ndarray:
        """(N, J, 3) world positions, mm, in the dataset's axis convention: computed once, read-only."""
        xyz = self.dataset.camera.uvd_to_xyz(self.uvd)
        xyz.flags.writeable = False
        return xyz


def load_ground_truth(
    dataset: DatasetSpec,
    *,
    eval_dir: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
) -> GroundTruth:
    """Test labels of ``dataset`` from a handpose-eval folder, or from explicit files.

    ``labels``: one line per frame, J x (u, v, d); ``names``: one frame file name
    per line (optional with explicit labels: frames are then named by index).
    """
    if labels is None:
        if dataset.test_labels is None or dataset.test_list is None:
            raise FileNotFoundError(f"{dataset.name} has no public test labels in the toolkit: pass --labels FILE")
        root = find_eval_dir(eval_dir)
        if root is None:
            raise FileNotFoundError(
                f"test labels of {dataset.name} not found: set ${EVAL_DIR_ENV} to a handpose-eval folder "
                f"(holding {dataset.test_labels}) or pass --labels FILE"
            )
        labels, names = root / dataset.test_labels, root / dataset.test_list
        for path in (labels, names):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path} is missing: the evaluation folder {root} is incomplete")
    label_file = read_prediction_file(labels, num_joints=dataset.num_joints, dataset=dataset.name)
    if label_file.names is not None:
        frame_names = label_file.names
    elif names is not None:
        frame_names = tuple(line.strip() for line in Path(names).read_text().splitlines() if line.strip())
        if len(frame_names) != label_file.num_frames:
            raise PredictionFileError(
                names, f"{plural(len(frame_names), 'frame name')} for "
                       f"{plural(label_file.num_frames, 'label line')} in {labels}"
            )
    else:
        frame_names = tuple(f"frame_{index:06d}" for index in range(label_file.num_frames))
    if dataset.num_test_frames is not None and labels is not None and label_file.num_frames != dataset.num_test_frames:
        raise PredictionFileError(
            labels, f"{plural(label_file.num_frames, 'frame')}, the {dataset.name} test set has "
                    f"{dataset.num_test_frames}"
        )
    return GroundTruth(dataset=dataset, uvd=label_file.joints, names=frame_names, source=Path(labels))


@dataclass(frozen=True)
class ReadOptions:
    """How to read a prediction file (all defaults: detect and check).

    coords: "auto" detects uvd vs world xyz (see predictions.detect_coords).
    y_axis: world y of an xyz file: "dataset" (the dataset's own convention, NYU y up,
        ICVL y down), "up" or "down" (image rows, as authors' original outputs).
    joint_order: for each dataset joint, the 0-based index of that joint in the file.
    frames: None matches the whole test set or, by row count, one named range;
        "all", "START:STOP" (0-based, stop exclusive) or a range name force it.
    check: refuse files that score far better when read another way.
    """

    coords: Literal["auto", "uvd", "xyz"] = "auto"
    y_axis: YAxis = "dataset"
    joint_order: tuple[int, ...] | None = None
    frames: str | None = None
    check: bool = True


@dataclass(frozen=True)
class Score:
    """Errors of one prediction file: ``errors_mm`` (n, J) over the matched test frames."""

    method: str
    source: Path
    dataset: DatasetSpec
    errors_mm: np.ndarray
    frame_indices: np.ndarray
    frames: str
    reading: str

    @property
    def mean_error_mm(self) -> float:
        return metrics.mean_error_mm(self.errors_mm)

    def success_rate(self, threshold_mm: float, *, criterion: str = "max") -> float:
        """Fraction of frames whose max (or mean) joint error is <= ``threshold_mm``."""
        return float(metrics.success_rate(self.errors_mm, np.array([threshold_mm]), criterion=criterion)[0])

    def rows(self):  # -> pandas.DataFrame
        """Tidy result rows (hpbench.results) of this score."""
        return score_rows([self])

    def records(self) -> list[dict[str, object]]:
        """This score's result rows as records: mean error, per-joint errors, success-rate curves
        (max and mean joint) over :data:`~hpbench.metrics.THRESHOLDS_MM` and their AUCs, each with the
        fields that name the method, dataset and frames. Computed once (the scoring threads do it for the
        report), each call a new list of new records."""
        return [dict(record) for record in self._records]

    @functools.cached_property
    def _records(self) -> tuple[dict[str, object], ...]:
        common = {"model": self.method, "dataset": self.dataset.name, "split": "test", "n": len(self.frame_indices),
                  "frames": self.frames, "source": str(self.source)}
        thresholds = metrics.THRESHOLDS_MM
        records: list[dict[str, object]] = [{"metric": "mean_error", "value": self.mean_error_mm, "unit": "mm"}]
        per_joint = metrics.per_joint_error_mm(self.errors_mm)
        records += [
            {"metric": "joint_error", "joint": name, "value": value, "unit": "mm"}
            for name, value in zip(self.dataset.joint_names, per_joint.tolist(), strict=True)
        ]
        for criterion in ("max", "mean"):
            curve = metrics.success_rate(self.errors_mm, thresholds, criterion=criterion)
            records += [
                {"metric": f"success_rate_{criterion}", "threshold_mm": t, "value": r, "unit": "fraction"}
                for t, r in zip(thresholds.tolist(), curve.tolist(), strict=True)
            ]
            records.append({"metric": f"auc_{criterion}", "value": metrics.auc(thresholds, curve), "unit": "fraction"})
        return tuple({**common, **record} for record in records)


def score_rows(scores: Sequence[Score]):  # -> pandas.DataFrame
    """Tidy result rows (hpbench.results) of ``scores``, in order, built as one frame: a frame per score
    would cost more than scoring it."""
    from hpbench.results import make_rows

    return make_rows(record for score in scores for record in score.records())


def _normalize_name(name: str) -> tuple[str, ...]:
    return tuple(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


def _match_by_name(prediction: PredictionFile, gt: GroundTruth) -> np.ndarray:
    """Indices of the test frames named in the file; the most specific path suffix wins."""
    lookup: dict[tuple[str, ...], int] = {}
    for index, name in enumerate(gt.names):
        parts = _normalize_name(name)
        for k in range(1, len(parts) + 1):
            key = parts[-k:]
            lookup[key] = -1 if key in lookup else index  # -1: ambiguous suffix
    assert prediction.names is not None
    indices = np.empty(prediction.num_frames, dtype=np.int64)
    first_line: dict[int, int] = {}
    for row, (name, line) in enumerate(zip(prediction.names, prediction.line_numbers, strict=True)):
        parts = _normalize_name(name)
        found = None
        for k in range(len(parts), 0, -1):
            if parts[-k:] in lookup:
                found = lookup[parts[-k:]]
                break
        if found is None:
            raise PredictionFileError(
                prediction.path, f"frame {name!r} is not a {gt.dataset.name} test frame (e.g. {gt.names[0]!r})",
                line=int(line),
            )
        if found == -1:
            raise PredictionFileError(
                prediction.path, f"frame name {name!r} matches several test frames: give its folder too",
                line=int(line),
            )
        if found in first_line:
            raise PredictionFileError(
                prediction.path, f"frame {name!r} appears twice (first on line {first_line[found]})", line=int(line)
            )
        first_line[found] = int(line)
        indices[row] = found
    return indices


def _range_hint(dataset: DatasetSpec) -> str:
    named = ", ".join(f"{r.name} = {r.start}:{r.stop} ({plural(len(r), 'frame')})" for r in dataset.test_ranges)
    return "pass --frames START:STOP (0-based, stop exclusive)" + (f" or a named range: {named}" if named else "")


def _select_frames(prediction: PredictionFile, gt: GroundTruth, frames: str | None) -> tuple[np.ndarray, str]:
    """Test-frame indices of the file's lines and a note saying which frames were scored."""
    total = len(gt.names)
    count = prediction.num_frames
    if prediction.names is not None:
        if frames is not None:
            raise PredictionFileError(prediction.path, "the file names its frames: drop --frames")
        indices = _match_by_name(prediction, gt)
        return indices, f"{count}/{total} (matched by file name)"
    ranges = {r.name: r for r in gt.dataset.test_ranges}
    if frames is None:
        if count == total:
            return np.arange(total), f"{total}/{total}"
        fits = [r for r in gt.dataset.test_ranges if len(r) == count]
        if len(fits) == 1:
            chosen = fits[0]
            return np.arange(chosen.start, chosen.stop), f"{count}/{total} ({chosen.name}, by line count)"
        raise PredictionFileError(
            prediction.path,
            f"{plural(count, 'line')} but the {gt.dataset.name} test set has {plural(total, 'frame')}: "
            f"{_range_hint(gt.dataset)}",
        )
    if frames == "all":
        chosen = FrameRange("all", 0, total)
    elif frames in ranges:
        chosen = ranges[frames]
    else:
        start_text, sep, stop_text = frames.partition(":")
        try:
            chosen = FrameRange(frames, int(start_text or 0), int(stop_text) if stop_text else total)
        except ValueError:
            chosen = None
        if not sep or chosen is None or not 0 <= chosen.start < chosen.stop <= total:
            raise PredictionFileError(
                prediction.path, f"--frames {frames!r} is not 'all', START:STOP within 0:{total} or a range name"
            )
    if len(chosen) != count:
        raise PredictionFileError(
            prediction.path, f"{plural(count, 'line')} but --frames {frames} selects {plural(len(chosen), 'frame')}"
        )
    label = "" if frames == "all" else f" ({frames})"
    return np.arange(chosen.start, chosen.stop), f"{count}/{total}{label}"


def _to_world(joints: np.ndarray, coords: Coords, y_up: bool, dataset: DatasetSpec) -> np.ndarray:
    """File values -> world xyz in the dataset's convention (mm)."""
    if coords == "uvd":
        return dataset.camera.uvd_to_xyz(joints)
    world = np.array(joints, dtype=np.float64)
    if y_up != dataset.camera.y_up:
        world[..., 1] *= -1.0
    return world


def _describe(coords: Coords, y_up: bool, order: tuple[int, ...] | None) -> str:
    text = "uvd" if coords == "uvd" else f"xyz, y {'up' if y_up else 'down'}"
    return text + ("" if order is None else ", joints reordered")


DIAGNOSIS_FRAMES = 512
"""Frames (evenly spaced) on which the misread check compares readings: a diagnosis, not a score."""


def _best_order(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> tuple[int, ...]:
    """Joint order minimising the mean error (Hungarian assignment over joint pairs)."""
    # cost[i, j]: mean distance of file joint i to true joint j
    cost = metrics.distance_mm(pred_xyz[:, :, None, :], gt_xyz[:, None, :, :]).mean(axis=0)
    true_joint = min_cost_assignment(cost)
    order = np.empty(len(cost), dtype=np.int64)
    order[true_joint] = np.arange(len(cost))
    return tuple(int(i) for i in order)


def _order_free_bound(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> float:
    """A lower bound of the mean distance (mm) of (n, J, 3) ``pred_xyz`` to ``gt_xyz`` under every joint order:
    each file joint's distance from its mean position to the nearest true joint's mean position, averaged (a
    mean of distances is at least the distance of the means, the norm being convex)."""
    means = metrics.distance_mm(pred_xyz.mean(axis=0)[:, None, :], gt_xyz.mean(axis=0)[None, :, :])
    return float(means.min(axis=1).mean())


def min_cost_assignment(cost: np.ndarray) -> np.ndarray:
    """For each row of a square ``cost`` matrix, its column in the assignment of least total cost.

    The Hungarian method with potentials and shortest augmenting paths (Kuhn 1955; Jonker and
    Volgenant 1987), O(n^3): exact, like scipy.optimize.linear_sum_assignment (ties may pick another
    assignment of equal cost), and fast for the J x J joint costs here (J <= 21), where importing
    scipy.optimize alone would take longer than scoring a file.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n = len(cost)
    if cost.shape != (n, n) or not np.isfinite(cost).all():
        raise ValueError(f"need a finite square cost matrix, got shape {cost.shape}")
    nearest = cost.argmin(axis=1)
    if len(np.unique(nearest)) == n:  # every row's least cost in its own column: no assignment costs less
        return nearest
    # 1-based columns, column 0 a sentinel; row_of[j]: the 1-based row assigned to column j (0: none)
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    row_of = np.zeros(n + 1, dtype=np.int64)
    padded = np.hstack([np.zeros((n, 1)), cost])  # padded[i, j]: cost of 0-based row i, 1-based column j
    for row in range(1, n + 1):
        row_of[0], column = row, 0
        slack = np.full(n + 1, np.inf)  # least reduced cost of reaching each column on the path tree
        previous = np.zeros(n + 1, dtype=np.int64)
        used = np.zeros(n + 1, dtype=bool)
        while row_of[column] != 0:
            used[column] = True
            tail = row_of[column]
            free = ~used
            reduced = np.where(free, padded[tail - 1] - u[tail] - v, np.inf)
            closer = reduced < slack
            slack[closer], previous[closer] = reduced[closer], column
            nearest = int(np.argmin(np.where(free, slack, np.inf)))
            delta = slack[nearest]
            u[row_of[used]] += delta
            v[used] -= delta
            slack[free] -= delta
            column = nearest
        while column:  # flip the augmenting path
            row_of[column] = row_of[previous[column]]
            column = previous[column]
    assigned = np.empty(n, dtype=np.int64)
    assigned[row_of[1:] - 1] = np.arange(n)
    return assigned


def _refuse_if_misread(
    prediction: PredictionFile, joints: np.ndarray, gt_xyz: np.ndarray, dataset: DatasetSpec,
    current: tuple[Coords, bool, tuple[int, ...] | None], error_mm: float,
) -> None:
    """Raise when another reading (coords, y axis, joint order) scores far better than this one.

    The readings are compared on :data:`DIAGNOSIS_FRAMES` evenly spaced frames; the best of them is
    then scored on every frame, and that full mean decides, as the score itself does.
    """
    rows = np.unique(np.linspace(0, len(joints) - 1, min(len(joints), DIAGNOSIS_FRAMES)).astype(np.int64))
    sample, sample_gt = joints[rows], gt_xyz[rows]
    readings: list[tuple[Coords, bool]] = [("uvd", dataset.camera.y_up), ("xyz", True), ("xyz", False)]
    best: tuple[float, Coords, bool, tuple[int, ...] | None] | None = None
    for coords, y_up in readings:
        world = _to_world(sample, coords, y_up, dataset)
        if best is not None and _order_free_bound(world, sample_gt) > best[0] * (1 + 1e-6):
            continue  # no joint order of this reading can beat the best so far: no costs, no assignment
        order = _best_order(world, sample_gt)
        for candidate in (None, order):
            if candidate is not None and candidate == tuple(range(len(candidate))):
                continue
            moved = world if candidate is None else world[:, list(candidate)]
            sample_mm = float(metrics.distance_mm(moved, sample_gt).mean())
            if best is None or sample_mm < best[0]:
                best = (sample_mm, coords, y_up, candidate)
    assert best is not None
    _, coords, y_up, order = best
    if order is None and coords == current[0] and (coords == "uvd" or y_up == current[1]):
        return  # the reading as asked is the best
    world = _to_world(joints, coords, y_up, dataset)
    mean_mm = float(metrics.distance_mm(world if order is None else world[:, list(order)], gt_xyz).mean())
    if not (mean_mm < 0.5 * error_mm and error_mm - mean_mm > 5.0):
        return
    flags = [f"--coords {coords}"] if coords != current[0] else []
    if coords == "xyz" and (current[0] != "xyz" or y_up != current[1]):
        flags.append(f"--y-axis {'up' if y_up else 'down'}")
    if order is not None:
        composed = order if current[2] is None else tuple(current[2][i] for i in order)
        flags.append(f"--joint-order {','.join(map(str, composed))}")
    raise PredictionFileError(
        prediction.path,
        f"mean error {error_mm:.1f} mm read as {_describe(*current)}, but {mean_mm:.1f} mm read as "
        f"{_describe(coords, y_up, order)}: pass {' '.join(flags)} (or --no-check to score it as read)",
    )


MAX_DEPTH_MM = 10_000.0
"""Depths (uvd d, xyz z) beyond this are no hand in front of a depth camera."""
MAX_ABS_VALUE = 1e6
"""Any coordinate beyond this (px or mm) is implausible."""


def _implausible(joints: np.ndarray, coords: Coords, dataset: DatasetSpec) -> tuple[np.ndarray, list[str]]:
    """Mask (N, J, 3) of implausible values and, per coordinate, what each one breaks."""
    camera = dataset.camera
    if coords == "uvd":  # within one image size of the image (well inside MAX_ABS_VALUE)
        low, high, axes = [-camera.width_px, -camera.height_px], [2 * camera.width_px, 2 * camera.height_px], ["u", "v"]
    else:
        low, high, axes = [-MAX_ABS_VALUE] * 2, [MAX_ABS_VALUE] * 2, ["x", "y"]
    # depth: positive (the smallest positive double is the lowest allowed) up to MAX_DEPTH_MM
    low_bound, high_bound = np.array([*low, np.nextafter(0.0, 1.0)]), np.array([*high, MAX_DEPTH_MM])
    return (joints < low_bound) | (joints > high_bound), [*axes, "depth"]


def _refuse_if_implausible(prediction: PredictionFile, joints: np.ndarray, coords: Coords,
                           dataset: DatasetSpec) -> None:
    """Raise on values no hand in front of the camera can have (non-positive or huge depth, far off the image)."""
    bad, axes = _implausible(joints, coords, dataset)
    if not bad.any():
        return
    frame, joint, axis = (int(i) for i in np.argwhere(bad)[0])
    value = float(joints[frame, joint, axis])
    unit = "px" if coords == "uvd" and axis < 2 else "mm"
    image = f"{dataset.camera.width_px}x{dataset.camera.height_px}"
    raise PredictionFileError(
        prediction.path,
        f"{plural(int(bad.sum()), 'implausible value')} (first: joint {joint + 1} {axes[axis]} {value:g} {unit}): "
        f"predictions must lie in front of the camera (depth 0-{MAX_DEPTH_MM:g} mm, |value| <= {MAX_ABS_VALUE:g}, "
        f"u/v within one image size of the {image} image); pass --no-check to score as read",
        line=int(prediction.line_numbers[frame]),
    )


def score_predictions(
    prediction: PredictionFile, gt: GroundTruth, options: ReadOptions = ReadOptions(), *, method: str | None = None
) -> Score:
    """Score a parsed prediction file against ``gt``; raises PredictionFileError to refuse it."""
    dataset = gt.dataset
    if prediction.num_joints != dataset.num_joints:
        raise PredictionFileError(
            prediction.path, f"{prediction.num_joints} joints per line, {dataset.name} has {dataset.num_joints}"
        )
    indices, frames_note = _select_frames(prediction, gt, options.frames)
    joints = prediction.joints
    order = options.joint_order
    if order is not None:
        if sorted(order) != list(range(dataset.num_joints)):
            raise PredictionFileError(
                prediction.path,
                f"--joint-order must list each of the {dataset.num_joints} joint indices 0..{dataset.num_joints - 1} once",
            )
        joints = joints[:, list(order)]
    coords: Coords = detect_coords(joints) if options.coords == "auto" else options.coords
    y_up = {"dataset": dataset.camera.y_up, "up": True, "down": False}[options.y_axis]
    if options.check:  # before the misread diagnosis, which absurd values would mislead
        _refuse_if_implausible(prediction, joints, coords, dataset)
    with np.errstate(over="ignore", invalid="ignore"):  # --no-check lets huge values through: errors may be inf
        pred_xyz = _to_world(joints, coords, y_up, dataset)
        gt_xyz = gt.xyz[indices]
        errors = metrics.joint_errors_mm(pred_xyz, gt_xyz)
    if options.check:
        _refuse_if_misread(prediction, joints, gt_xyz, dataset,
                           (coords, y_up, order), float(errors.mean()))
    return Score(
        method=method or prediction.path.stem,
        source=prediction.path,
        dataset=dataset,
        errors_mm=errors,
        frame_indices=indices,
        frames=frames_note,
        reading=_describe(coords, y_up, order).replace(coords, f"{coords} (detected)" if options.coords == "auto" else coords, 1),
    )


def score_file(
    path: str | os.PathLike[str], gt: GroundTruth, options: ReadOptions = ReadOptions(), *, method: str | None = None
) -> Score:
    """Read and score one prediction file; raises PredictionFileError with a one-line reason."""
    prediction = read_prediction_file(path, num_joints=gt.dataset.num_joints, dataset=gt.dataset.name)
    return score_predictions(prediction, gt, options, method=method)


def _score_with_records(path: Path, gt: GroundTruth, options: ReadOptions) -> Score:
    """:func:`score_file` with its result records computed too (on the scoring thread, beside other files'
    parsing, not on the thread that waits for them)."""
    score = score_file(path, gt, options)
    score.records()
    return score


def infer_dataset(path: str | os.PathLike[str], explicit: str | None = None) -> DatasetSpec:
    """The dataset a prediction file belongs to: ``explicit``, else the one dataset name
    among the underscore-separated words of the file name or its folder names."""
    from hpbench.data.specs import datasets, get_dataset

    if explicit is not None:
        return get_dataset(explicit)
    path = Path(path)
    words = set(re.split(r"[_\-. ]+", path.stem.lower())) | {part.lower() for part in path.parent.parts[-2:]}
    found = sorted(words & set(datasets.names()))
    if len(found) != 1:
        raise PredictionFileError(path, "cannot tell the dataset from the file name or folder: pass --dataset")
    return get_dataset(found[0])


def _tracked(files: list[Path], progress: bool):  # -> Iterator[Path]
    """``files`` one by one, under a transient progress bar while ``progress`` (its text as written, never
    read as rich markup)."""
    if not progress:
        yield from files
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        yield from bar.track(files, description=f"scoring {plural(len(files), 'file')}")


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` found: ``rows`` (tidy results rows of every file kept), ``refused`` (one line per
    file or method left out) and ``scores`` (the prediction files scored, their rows among ``rows``)."""

    rows: object  # pandas.DataFrame
    refused: tuple[str, ...]
    scores: tuple[Score, ...]


def collect_results(
    paths: list[Path], *, dataset: str | None = None, options: ReadOptions = ReadOptions(),
    eval_dir: str | os.PathLike[str] | None = None, progress: bool = False,
):  # -> tuple[pandas.DataFrame, list[str]]
    """The rows and refusals of :func:`collect`."""
    found = collect(paths, dataset=dataset, options=options, eval_dir=eval_dir, progress=progress)
    return found.rows, list(found.refused)


def _in_a_fold(path: Path) -> bool:
    """Whether ``path`` lies in a fold of a leave-one-subject-out run (``<run>/folds/<subject>/``), whose
    rows the run's own metrics.csv combines."""
    from hpbench.rundir import FOLDS_DIR, RunDir

    fold = path.parent
    return fold.parent.name == FOLDS_DIR and RunDir(fold.parent.parent).exists()


def _report_files(paths: list[Path]) -> list[Path]:
    from hpbench.rundir import RunDir

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".csv") and p.is_file())
            files += [p for p in found if (not RunDir(p.parent).exists() or p in RunDir(p.parent).result_files())
                      and not _in_a_fold(p)]
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return files


def collect(
    paths: list[Path], *, dataset: str | None = None, options: ReadOptions = ReadOptions(),
    eval_dir: str | os.PathLike[str] | None = None, progress: bool = False,
) -> Collected:
    """Result rows from prediction files (*.txt, each read and scored once here) and results files (*.csv),
    with the scores of the prediction files.

    Folders are searched recursively; in a run directory (:class:`hpbench.rundir.RunDir`)
    only its result files count: its predictions are already scored in its
    metrics.csv, and its failure record is no prediction file. A method found twice
    for one dataset is kept once (the first) and the other is listed as refused. Rows of one method with
    different splits (test errors, profile costs) are complementary and all kept,
    and so are rows with different seeds (runs of a sweep: the report aggregates
    them as mean +- std); rows with a seed and rows without one for the same method and split cannot be
    aggregated, and the later ones are refused. Rows keep the order of the files.
    """
    import pandas as pd

    from hpbench.results import read_results

    parts: list[pd.DataFrame | Score] = []
    refused: list[str] = []
    seen: dict[tuple[str, str, str], dict[str, Path]] = {}  # (model, dataset, split) -> seed ("": none) -> file
    files = _report_files(paths)
    refusable = (PredictionFileError, ValueError)
    with _scores([path for path in files if path.suffix != ".csv"], dataset, options, refusable,
                 lambda spec: load_ground_truth(spec, eval_dir=eval_dir)) as score_of:
        for path in _tracked(files, progress):
            try:
                part, keys = _part(path, score_of)
            except refusable as error:
                refused.append(str(error))
                continue
            part = _first_seen(part, keys, path, seen, refused)
            if part is not None:
                parts.append(part)
    scores = [part for part in parts if isinstance(part, Score)]
    scored = iter(_split_rows(scores))
    frames = [next(scored) if isinstance(part, Score) else part for part in parts]
    rows = pd.concat(frames, ignore_index=True) if frames else read_results([])
    return Collected(rows=rows, refused=tuple(refused), scores=tuple(scores))


def _part(path: Path, score_of: Callable[[Path], Score]):  # -> tuple[DataFrame | Score, list[tuple]]
    """A results file's rows or a prediction file's score, and its (model, dataset, split, seed) keys."""
    if path.suffix == ".csv":
        from hpbench.results import read_results

        rows = read_results([path])
        seeds = rows["seed"].astype("string").fillna("")
        return rows, sorted(set(zip(rows["model"], rows["dataset"], rows["split"], seeds, strict=True)))
    score = score_of(path)
    return score, [(score.method, score.dataset.name, "test", "")]


def _first_seen(part, keys: list[tuple], path: Path, seen: dict[tuple[str, str, str], dict[str, Path]],
                refused: list[str]):  # -> DataFrame | Score | None
    """``part`` without what an earlier file gave (each dropped key said in ``refused``; a score goes whole)."""
    for model, name, split, seed in keys:
        known = seen.setdefault((model, name, split), {})
        # the same seed twice is a duplicate; a seeded and an unseeded result cannot be averaged together
        if seed in known or (bool(known) and (seed == "" or "" in known)):
            first = known.get(seed, next(iter(known.values())))
            refused.append(f"{path}: {model} on {name} ({split or 'no split'}{f', seed {seed}' if seed else ''}) "
                           f"already comes from {first}; kept that one")
            if isinstance(part, Score):
                return None
            seeds = part["seed"].astype("string").fillna("")
            part = part[~((part["model"] == model) & (part["dataset"] == name) & (part["split"] == split)
                          & (seeds == seed))]
        else:
            known[seed] = path
    return part


def _split_rows(scores: list[Score]) -> list:  # -> list[pandas.DataFrame]
    """The rows of each score, built as one frame and cut back into one per score."""
    from hpbench.results import make_rows

    if not scores:
        return []
    records: list[dict[str, object]] = []
    ends = []
    for score in scores:
        records += score.records()
        ends.append(len(records))
    rows = make_rows(records)
    return [rows.iloc[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def score_files(
    paths: list[str | os.PathLike[str]], *, dataset: str | None = None, options: ReadOptions = ReadOptions(),
    eval_dir: str | os.PathLike[str] | None = None, labels: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None, save: str | os.PathLike[str] | None = None,
) -> tuple[list[Score], list[str]]:
    """Score prediction files, each against its dataset's test labels (loaded once per dataset); returns
    the scores and one line per refused file (bad file, unknown dataset). ``save``: also write each
    score's result rows to ``save/<dataset>/<method>.csv``. Missing labels raise FileNotFoundError."""
    from hpbench.registry import UnknownNameError
    from hpbench.results import write_results

    refusable = (PredictionFileError, UnknownNameError)
    scores, refused = [], []
    with _scores([Path(path) for path in paths], dataset, options, refusable,
                 lambda spec: load_ground_truth(spec, eval_dir=eval_dir, labels=labels, names=names)) as score_of:
        for path in map(Path, paths):
            try:
                score = score_of(path)
            except refusable as error:
                refused.append(str(error))
                continue
            scores.append(score)
            if save is not None:
                write_results(score.rows(), Path(save) / score.dataset.name / f"{score.method}.csv")
    return scores, refused


SCORING_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
"""Threads that read and score prediction files side by side (pandas' parser releases the GIL: the 26 NYU
files scored in 0.62 s on two threads, 0.81 s on one; past 4 the GIL-held scoring dominates)."""


@contextlib.contextmanager
def _scores(paths: Sequence[Path], dataset: str | None, options: ReadOptions,
            refusable: tuple[type[Exception], ...], load: Callable[[DatasetSpec], GroundTruth]):
    """``score_of(path)``: the Score of each prediction file among ``paths``, read and scored on up to
    :data:`SCORING_THREADS` threads from the start, or the ``refusable`` error that refuses it (no dataset,
    bad labels: ground truth is loaded by ``load`` once per dataset, here). Unstarted work is cancelled on
    exit."""
    from concurrent.futures import ThreadPoolExecutor

    truths: dict[str, GroundTruth | Exception] = {}
    jobs: dict[Path, GroundTruth | Exception] = {}
    for path in paths:
        try:
            spec = infer_dataset(path, dataset)
        except refusable as error:
            jobs[path] = error
            continue
        if spec.name not in truths:
            try:
                truths[spec.name] = load(spec)
            except refusable as error:
                truths[spec.name] = error
        jobs[path] = truths[spec.name]
    pool = ThreadPoolExecutor(max_workers=max(1, min(SCORING_THREADS, len(jobs))), thread_name_prefix="hpbench-score")
    pending = {path: pool.submit(_score_with_records, path, job, options) for path, job in jobs.items()
               if not isinstance(job, Exception)}

    def score_of(path: Path) -> Score:
        if path in pending:
            return pending[path].result()
        raise jobs[path]

    try:
        yield score_of
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
