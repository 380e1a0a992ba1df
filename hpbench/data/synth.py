"""Synthetic hand datasets written in the real ICVL / NYU formats (``hpbench synth``).

Random kinematic hands (``hpbench.data.hand``), or hands posed on a real label
file's joints, are rendered to depth with the dataset's camera
(``hpbench.data.render``) and written exactly as the dataset ships: ICVL's 16-bit
PNGs and label text files, NYU's RGB PNGs and ``joint_data.mat`` (all 36 joints:
the 14 evaluation joints exact, the others from the same skeleton). The real
readers (``hpbench.data.formats``) load the result, so the whole harness runs on
a machine without any dataset.

Generation is deterministic per seed whatever the number of worker processes:
poses are drawn in the parent from ``(seed, split)`` and every frame's scene and
noise from ``(seed, split, frame)``; workers render and encode chunks of frames.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hpbench._text import plural
from hpbench.data.formats import DepthFormat, formats, read_label_file
from hpbench.data.hand import INDEX, optical_from_uvd, sample_poses, skeleton, skeleton_from_labels, uvd_from_optical
from hpbench.data.render import Scene, render_depth
from hpbench.data.specs import DatasetSpec, get_dataset
from hpbench.files import exclusive

__all__ = ["SynthSummary", "ensure_synthetic", "synthesize", "synthesize_splits"]

MARKER = ".hpbench-synth.json"
"""File written last into a finished synthetic dataset root: its parameters and counts."""

BUILDING = ".hpbench-synth.building"
"""File written first into a root ``synthesize`` is filling, removed once ``MARKER`` is written: a root
holding it without ``MARKER`` is an interrupted render of hpbench's, which may be rendered over."""

_SPLITS = ("train", "test")


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote: ``frames`` per split, ``seconds`` wall time,
    ``fit_rms_mm`` (mean RMS of the kinematic fit to ``from_labels``, None without)."""

    root: Path
    dataset: str
    frames: dict[str, int]
    seed: int
    workers: int
    seconds: float
    fit_rms_mm: float | None = None
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return sum(self.frames.values()) / max(self.seconds, 1e-9)

    def describe(self) -> str:
        """One line for the terminal."""
        counts = ", ".join(f"{split} {count}" for split, count in self.frames.items())
        fit = f"; hand fitted to the labels, RMS {self.fit_rms_mm:.1f} mm" if self.fit_rms_mm is not None else ""
        return (f"wrote {self.dataset} frames ({counts}) to {self.root} in {self.seconds:.1f} s "
                f"({self.frames_per_second:.0f} frames/s, {plural(self.workers, 'worker')}, seed {self.seed}){fit}")


def _scene_for(spec: DatasetSpec) -> Scene:
    """Sensor range: past the far end of the typical hand depths, never past the format's no-reading value."""
    limit = spec.no_reading_mm - 1 if spec.no_reading_mm > 0 else math.inf
    return Scene(max_range_mm=min(limit, 2.5 * spec.typical_hand_depth_mm[1]))


def _render_chunk(
    spec: DatasetSpec, root: str, paths: list[str], points: np.ndarray, scales: np.ndarray,
    seeds: list[tuple[int, ...]], scene: Scene,
) -> int:
    """Worker: render and encode frames; returns how many were written."""
    assert spec.layout is not None
    save = formats.get(spec.layout.format).save_depth
    for path, frame_points, scale, seed in zip(paths, points, scales, seeds, strict=True):
        depth = render_depth(frame_points, spec.camera, np.random.default_rng(seed), hand_scale=float(scale),
                             scene=scene, no_reading_mm=spec.no_reading_mm)
        target = Path(root) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        save(target, depth)
    return len(paths)


def _labels_from_file(path: Path, spec: DatasetSpec, limit: int | None) -> np.ndarray:
    """(N, J, 3) uvd from a label file in the dataset's joint set (optionally led by a frame-name column)."""
    _, labels = read_label_file(path, spec.num_joints)
    return labels[:limit] if limit is not None else labels


def _skeletons(spec: DatasetSpec, split_number: int, count: int, seed: int,
               labels_uvd: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Skeleton points (N, P, 3) optical mm, hand scales (N,), and the fit RMS when posed on labels."""
    if labels_uvd is None:
        rng = np.random.default_rng([seed, split_number])
        pose = sample_poses(rng, count, spec.camera, spec.typical_hand_depth_mm)
        return skeleton(pose), pose.scale, None
    assert spec.skeleton is not None
    target = optical_from_uvd(labels_uvd, spec.camera)
    points, residual, scales = skeleton_from_labels(target, spec.skeleton)
    return points, scales, float(residual.mean())


def _source_labels(
    spec: DatasetSpec, points: np.ndarray, labels_uvd: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels to write: (N, J, 3) in the spec's joints and (N, Jsource, 3) in the files' joint set."""
    assert spec.skeleton is not None
    uvd = uvd_from_optical(points[:, [INDEX[name] for name in spec.skeleton]], spec.camera)
    if labels_uvd is not None:
        uvd = labels_uvd
    if spec.source_skeleton is None:
        return uvd, uvd
    source = uvd_from_optical(points[:, [INDEX[name] for name in spec.source_skeleton]], spec.camera)
    source[:, list(spec.source_joint_indices or ())] = uvd
    return uvd, source


DEFAULT_CENTER_FILE = "center_{split}_refined.txt"
CENTER_NOISE_MM = 3.0
"""Refined-centre files of synthetic data: the true palm centre plus this much Gaussian
noise per axis, standing in for a centre-refinement network's error."""


def _write_centres(spec: DatasetSpec, root: Path, split: str, centres_optical: np.ndarray,
                   rng: np.random.Generator) -> None:
    """V2V-PoseNet-style refined centres (world ``x y z`` mm, the dataset's axes) at the spec's
    ``center_file`` (default ``center_<split>_refined.txt``)."""
    noisy = centres_optical + rng.normal(0.0, CENTER_NOISE_MM, centres_optical.shape)
    world = spec.camera.uvd_to_xyz(uvd_from_optical(noisy, spec.camera))
    path = root / (spec.center_file or DEFAULT_CENTER_FILE).format(split=split)
    path.write_text("".join(f"{x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in world))


def synthesize(
    dataset: str | DatasetSpec,
    out: str | os.PathLike[str],
    *,
    frames: int,
    test_frames: int | None = None,
    seed: int = 0,
    from_labels: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
    scene: Scene | None = None,
    splits: Sequence[str] = _SPLITS,
) -> SynthSummary:
    """Render a synthetic dataset in ``dataset``'s format and camera into ``out``.

    ``dataset``: a registered spec with a layout and skeleton: "synth" (ICVL
    format, the default of the harness), "synth-nyu", or "icvl" / "nyu" (same
    formats). Writes the train split (``frames`` random poses) and the test split
    (``test_frames``, default ``max(1, frames // 4)``, random poses; or, with
    ``from_labels``, the poses of that label file: one line per frame, J x (u v d)
    of this dataset's joints, optionally led by a frame name, e.g. handpose-eval's
    test labels; ``test_frames`` then keeps only the first lines; the fit takes
    ~8 ms per frame). Both splits also get a refined-centre file
    (``center_<split>_refined.txt``, V2V-PoseNet's format: the palm centre with
    ``CENTER_NOISE_MM`` noise). ``workers`` processes render in parallel (default:
    one per ~200 frames up to the CPU count; 1 renders in this process). The
    output does not depend on ``workers``. ``progress`` shows a rich progress bar.
    Finishes by writing ``MARKER`` (``ensure_synthetic`` reuses finished roots).
    Refuses a non-empty ``out`` without that marker (a real dataset, say) unless it holds
    ``BUILDING`` (an interrupted render of hpbench's). ``splits``: the splits to render (("test",): only
    what a scoring run reads; each split's frames are the same whichever others are rendered).
    """
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    _check_synthesizable(spec, frames)
    if not splits or set(splits) - set(_SPLITS):
        raise ValueError(f"splits must be some of {_SPLITS}, got {tuple(splits)}")
    root = _prepare_root(Path(out))
    scene = scene or _scene_for(spec)
    if workers is None:  # starting a process costs ~1 s: only worth it for a few hundred frames
        workers = min(os.cpu_count() or 1, 1 + (frames + (test_frames or frames // 4)) // 200)
    workers = max(1, workers)
    labels_uvd = _labels_from_file(Path(from_labels), spec, test_frames) if from_labels is not None else None
    counts = {"train": frames,
              "test": len(labels_uvd) if labels_uvd is not None else (test_frames or max(1, frames // 4))}
    counts = {name: count for name, count in counts.items() if name in splits}

    start = time.perf_counter()
    assert spec.layout is not None
    writer = formats.get(spec.layout.format)
    jobs, finals, fit_rms = _pose_splits(spec, writer, counts, seed, labels_uvd, progress)
    total = sum(counts.values())
    chunk = int(np.clip(math.ceil(total / (workers * 4)), 4, 256))
    tasks = [
        (spec, str(root), [frame.path for frame in plan[i:i + chunk]], points[i:i + chunk], scales[i:i + chunk],
         seeds[i:i + chunk], scene)
        for plan, points, scales, seeds in jobs for i in range(0, len(plan), chunk)
    ]
    _run(tasks, workers, total, progress, f"{spec.name}: rendering {plural(total, 'frame')}")
    for number, (split, plan, source, centres) in enumerate(finals):
        writer.write_labels(spec, root, split, plan, source)
        _write_centres(spec, root, split.name, centres, np.random.default_rng([seed, _SPLITS.index(split.name), 2]))
    seconds = time.perf_counter() - start
    summary = SynthSummary(root=root, dataset=spec.name, frames=counts, seed=seed, workers=workers, seconds=seconds,
                           fit_rms_mm=fit_rms,
                           settings={"from_labels": str(from_labels) if from_labels else None, "scene": vars(scene)})
    marker = {"dataset": spec.name, "format": spec.layout.format, "frames": counts, "seed": seed,
              "from_labels": summary.settings["from_labels"], "seconds": round(seconds, 3)}
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    (root / BUILDING).unlink(missing_ok=True)
    return summary


def _check_synthesizable(spec: DatasetSpec, frames: int) -> None:
    """Refuse a spec without layout, skeleton map or train/test splits, and a non-positive frame count."""
    if spec.layout is None or spec.skeleton is None:
        raise ValueError(f"dataset {spec.name!r} has no on-disk layout or skeleton map: cannot synthesize it")
    missing = [name for name in _SPLITS if name not in {split.name for split in spec.layout.splits}]
    if missing:
        raise ValueError(f"dataset {spec.name!r} has no {', '.join(missing)} split: synth writes train and test")
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")


def _refuse_foreign(root: Path) -> None:
    """Refuse a non-empty folder that is neither a finished nor an interrupted synthetic root."""
    if root.is_dir() and any(root.iterdir()) and not ((root / MARKER).is_file() or (root / BUILDING).is_file()):
        raise FileExistsError(f"{root} is not empty and holds no {MARKER}: refusing to write synthetic frames "
                              "into it (not a synthetic root; delete it or choose another folder)")


def _prepare_root(root: Path) -> Path:
    """``root`` created, marked ``BUILDING``, its old marker removed; refuses a foreign non-empty folder."""
    _refuse_foreign(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / BUILDING).touch()
    (root / MARKER).unlink(missing_ok=True)
    return root


def _pose_splits(
    spec: DatasetSpec, writer: DepthFormat, counts: dict[str, int], seed: int, labels_uvd: np.ndarray | None,
    progress: bool,
) -> tuple[list[tuple], list[tuple], float | None]:
    """Per split, the hands to render and the labels to write.

    Returns the render jobs ``(plan, points, scales, seeds)``, the label jobs
    ``(split, plan, source labels, palm centres)`` and the fit RMS (mm) when the
    test split is posed on ``labels_uvd``.
    """
    assert spec.layout is not None
    jobs, finals, fit_rms = [], [], None
    for number, split_name in enumerate(_SPLITS):  # split number n draws from (seed, n): splits independent
        if split_name not in counts:
            continue
        split = spec.layout.split(split_name)
        count = counts[split_name]
        posed = labels_uvd if split_name == "test" else None
        with _status(progress, f"posing the hand on {plural(count, 'labelled frame')}" if posed is not None else ""):
            points, scales, rms = _skeletons(spec, number, count, seed, posed)
        fit_rms = rms if rms is not None else fit_rms
        plan = writer.plan_frames(split, count)
        _, source = _source_labels(spec, points, posed)
        finals.append((split, plan, source, points[:, INDEX["palm_centre"]]))
        seeds = [(seed, number, index, 1) for index in range(count)]
        jobs.append((plan, points, scales, seeds))
    return jobs, finals, fit_rms


def _status(show: bool, text: str):  # -> context manager
    """A spinner with ``text`` as written (never read as rich markup) while ``show``; else nothing."""
    from contextlib import nullcontext

    if not show or not text:
        return nullcontext()
    from rich.console import Console
    from rich.text import Text

    return Console(stderr=True).status(Text(text))


def _run(tasks: list[tuple], workers: int, total: int, progress: bool, title: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), disable=not progress, transient=False)
    with bar:
        task = bar.add_task(title, total=total)
        if workers == 1 or len(tasks) == 1:
            for arguments in tasks:
                bar.advance(task, _render_chunk(*arguments))
            return
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_render_chunk, *arguments) for arguments in tasks]):
                bar.advance(task, future.result())


def ensure_synthetic(
    dataset: DatasetSpec | str = "synth",
    root: str | os.PathLike[str] | None = None,
    *,
    frames: int = 2000,
    test_frames: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    test_only: bool = False,
) -> Path:
    """A synthetic dataset root ready for the readers: reused when its marker matches (format,
    frame counts, seed), rendered otherwise (never over a non-empty folder without a marker,
    except an interrupted render of hpbench's, see ``BUILDING``).

    Rendering happens in a temporary folder beside ``root`` that is renamed into place when
    finished, under an exclusive lock on ``<root>.lock``: a killed render leaves ``root`` as it
    was, and processes asking for the same root at once wait for one render and reuse it.

    ``root`` defaults to ``$<spec.root_env>`` or
    ``~/.cache/hpbench/<dataset>-<frames>-<test frames>-s<seed>``.

    ``test_only``: the test split is all the caller reads (scoring a model): a root holding it (a full
    render included) is reused, else only the test split is rendered (default root
    ``<dataset>-test<test frames>-s<seed>``); its frames equal a full render's.
    """
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset  # a name: the public API's convenience
    wanted_test = test_frames or max(1, frames // 4)
    wanted = {"test": wanted_test} if test_only else {"train": frames, "test": wanted_test}
    if root is None:
        env = os.environ.get(spec.root_env or "")
        cache = Path.home() / ".cache" / "hpbench"
        full = cache / f"{spec.name}-{frames}-{wanted_test}-s{seed}"
        if test_only and not _finished(spec, full, wanted, seed):
            full = cache / f"{spec.name}-test{wanted_test}-s{seed}"
        root = Path(env) if env else full
    root = Path(root)
    if _finished(spec, root, wanted, seed):
        return root
    target = Path(os.path.realpath(root))  # a link to the root: replace what it points to, not the link
    with exclusive(target):
        if not _finished(spec, target, wanted, seed):  # else another process rendered it while we waited
            _render_into_place(spec, target, frames=frames, test_frames=wanted_test, seed=seed, workers=workers,
                               progress=progress, splits=tuple(wanted))
    return root


def _finished(spec: DatasetSpec, root: Path, frames: dict[str, int], seed: int) -> bool:
    """Whether ``root`` holds a finished render with these parameters (its marker says so)."""
    try:
        meta = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    assert spec.layout is not None
    if not (isinstance(meta, dict) and meta.get("format") == spec.layout.format and meta.get("seed") == seed
            and meta.get("from_labels") is None and isinstance(meta.get("frames"), dict)):
        return False
    held = meta["frames"]
    return all(held.get(split) == count for split, count in frames.items())  # a full render serves a test-only use


def _render_into_place(spec: DatasetSpec, root: Path, **options) -> None:
    """Render into ``.<name>.building-<pid>`` beside ``root``, then swap it in (the caller holds the lock,
    so leftovers of killed renders beside ``root`` are stale and removed first)."""
    _refuse_foreign(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    for stale in root.parent.iterdir():
        if stale.name.startswith((f".{root.name}.building-", f".{root.name}.old-")):
            shutil.rmtree(stale, ignore_errors=True)
    temporary = root.parent / f".{root.name}.building-{os.getpid()}"
    try:
        synthesize(spec, temporary, **options)
        if root.is_dir() and any(root.iterdir()):  # an older render: moved aside, then removed
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.rename(root, old)
            os.rename(temporary, root)
            shutil.rmtree(old, ignore_errors=True)
        else:  # absent, or an empty folder (rename replaces an empty directory)
            os.replace(temporary, root)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def synthesize_splits(dataset: str | DatasetSpec, out: str | os.PathLike[str], *, frames: int | Mapping[str, int],
                      seed: int = 0) -> Path:
    """Render random hands into every split of ``dataset``'s layout (MSRA: P0..P8, each spread over its
    17 gesture folders) in this process, and write their label files; returns ``out``.

    ``frames``: per split, one count for all or a count per split name. For tests of protocols over
    named splits (leave-one-subject-out); no centre files, no marker. Deterministic per ``seed``:
    split number ``s`` draws its poses from ``(seed, s)``."""
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    if spec.layout is None or spec.skeleton is None:
        raise ValueError(f"dataset {spec.name!r} has no on-disk layout or skeleton map: cannot synthesize it")
    counts = {split.name: frames if isinstance(frames, int) else frames[split.name] for split in spec.layout.splits}
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one frame, got {counts}")
    root = Path(out)
    writer = formats.get(spec.layout.format)
    scene = _scene_for(spec)
    for number, split in enumerate(spec.layout.splits):
        count = counts[split.name]
        points, scales, _ = _skeletons(spec, number, count, seed, None)
        plan = writer.plan_frames(split, count)
        seeds = [(seed, number, index, 1) for index in range(count)]
        _render_chunk(spec, str(root), [frame.path for frame in plan], points, scales, seeds, scene)
        writer.write_labels(spec, root, split, plan, _source_labels(spec, points, None)[1])
    return root
