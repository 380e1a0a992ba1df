"""Preprocessing cache: every frame of a split decoded, centred and cropped once.

Crops are stored as one memory-mapped float16 ``.npy`` (N, S, S) (normalized
depth in [-1, 1]: float16's step of 2^-11 is 0.07 mm at a 280 mm cube) next to an
``.npz`` with the crop transforms, centres and labels. The file names carry the
dataset, split, crop size and a hash of everything the crops depend on (frame
files with their sizes and modification times, labels, cube sizes, centres,
format version), so changing a setting or a file never reads a stale cache. Building is parallel over frames (worker
processes write disjoint slices of the memory map) and atomic (temporary names,
renamed when complete).

:class:`CropDataset` serves the cache to torch with augmentations applied on the
fly, deterministic per (seed, epoch, frame).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hpbench._text import plural
from hpbench.data.augment import Augmenter, adapt_input
from hpbench.data.centers import CenterFile, CentreChoice, center_from_depth, read_center_file, resolve_centers
from hpbench.data.crop import (
    AugmentParams,
    Augmentation,
    CropTransform,
    augment_crops,
    crop_depth,
    crop_transform,
    sample_augmentation,
)
from hpbench.data.formats import DatasetError, FrameIndex
from hpbench.data.specs import DatasetSpec, get_dataset
from hpbench.files import exclusive
from hpbench.protocol import BoxCrop, Centers, Crop, CubeCrop, VoxelGrid

__all__ = [
    "CACHE_DIR_ENV",
    "CENTER_DEPTH",
    "CENTER_FILE",
    "CENTER_GIVEN",
    "CENTER_INVALID",
    "CENTER_LABELS",
    "CenterFile",
    "CentreChoice",
    "CropCache",
    "CropDataset",
    "CropSettings",
    "build_crop_cache",
    "describe_center_sources",
    "open_crop_cache",
    "open_protocol_cache",
]

CACHE_DIR_ENV = "HPBENCH_CACHE_DIR"
_VERSION = 2  # bump when crops change for the same inputs (2: per-axis boxes in the key)

# How each frame's centre was obtained (``CropCache.center_source``): given as an array, read from a
# centre file, centre of mass of the depth, the labels' mean (no depth in range: a last resort), or
# none: the centre file says ``invalid`` (V2V-PoseNet), so the frame is to be dropped (its crop, around
# the centre of mass, only fills the slot).
CENTER_GIVEN, CENTER_FILE, CENTER_DEPTH, CENTER_LABELS, CENTER_INVALID = 0, 1, 2, 3, 4
_SOURCE_WORDS = {CENTER_GIVEN: "given", CENTER_FILE: "from the centre file", CENTER_DEPTH: "centre of mass",
                 CENTER_LABELS: "labels' mean (no depth in range)",
                 CENTER_INVALID: "invalid in the centre file, dropped"}


@dataclass(frozen=True)
class CropSettings:
    """Crop size S (px); the box's lateral edge ``cube_mm`` (None: the dataset's) and depth extent
    ``depth_mm`` (None: the lateral edge) in mm; test frames from 0-based index ``test_shrink_from`` on
    are cropped with a box x ``test_shrink`` (TriHorn-Net's NYU protocol)."""

    size_px: int = 128
    cube_mm: float | None = None
    depth_mm: float | None = None
    test_shrink_from: int | None = None
    test_shrink: float = 1.0

    @classmethod
    def of(cls, crop: Crop) -> CropSettings:
        """The settings of a protocol's crop (hpbench.protocol): cube and box edges, voxel cube; a point
        cloud is sampled from a crop of the dataset's cube."""
        if isinstance(crop, CubeCrop):
            x, y, z = crop.size_mm
            if x != y:
                raise ValueError(f"crops are square: x {x:g} mm != y {y:g} mm")
            return cls(crop.input_px, x, None if z == x else z, crop.test_shrink_from, crop.test_shrink)
        if isinstance(crop, BoxCrop):
            x, y = crop.half_mm
            if x != y:
                raise ValueError(f"crops are square: +-{x:g} mm != +-{y:g} mm")
            return cls(crop.input_px, 2 * x, 2 * crop.depth_half_mm)
        if isinstance(crop, VoxelGrid):
            return cls(crop.input_px, crop.cube_mm)
        return cls(crop.input_px)

    def boxes_mm(self, split: str, num_frames: int, default_cube_mm: float) -> np.ndarray:
        """(num_frames, 2) lateral edge and depth extent per frame of ``split`` (mm)."""
        cube = self.cube_mm if self.cube_mm is not None else default_cube_mm
        boxes = np.tile([cube, self.depth_mm if self.depth_mm is not None else cube], (num_frames, 1)).astype(float)
        if split == "test" and self.test_shrink_from is not None:
            boxes[self.test_shrink_from:] *= self.test_shrink
        return boxes


@dataclass(frozen=True)
class CropCache:
    """A built cache: ``crops`` (N, S, S) float16 memory map, the crops' ``transform``,
    labels ``uvd`` (N, J, 3) image and ``joints`` (N, J, 3) crop coordinates,
    ``center_source`` (N,) codes (``CENTER_*``: given, file, depth, labels as a last resort, invalid)."""

    path: Path
    dataset: str
    split: str
    crops: np.ndarray
    transform: CropTransform
    uvd: np.ndarray
    joints: np.ndarray
    center_source: np.ndarray
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: frames with a centre; False where the centre file says ``invalid`` (drop them)."""
        return self.center_source != CENTER_INVALID

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CropCache:
        """Open a cache from its ``.npy`` path (the ``.npz`` beside it holds the rest).

        A damaged file (truncated, garbled, missing arrays or ``info`` keys, sizes that
        disagree) is a :class:`DatasetError` naming it.
        """
        path = Path(path)
        meta_path = path.with_suffix(".npz")
        if not path.is_file() or not meta_path.is_file():
            raise DatasetError(path, "crop cache incomplete: expected the .npy crops and the .npz beside them")
        crops = _load_crops(path)
        info, meta = _load_meta(meta_path)
        size = info["size_px"]
        if crops.shape[1:] != (size, size):
            raise DatasetError(path, _DAMAGED.format(f"crops {crops.shape}, metadata says {size}x{size} px"))
        short = [name for name in _META_FRAME_ARRAYS if meta[name].ndim == 0 or len(meta[name]) != len(crops)]
        if short:
            found = ", ".join(f"{name} {meta[name].shape}" for name in short)
            raise DatasetError(meta_path, _DAMAGED.format(f"{len(crops)} crops but {found}"))
        transform = CropTransform(meta["matrix"], meta["center_uvd"], meta["depth_half_mm"], size)
        return cls(path, info["dataset"], info["split"], crops, transform, meta["uvd"], meta["joints"],
                   meta["center_source"], tuple(str(name) for name in meta["files"]))


_DAMAGED = "crop cache damaged ({}): delete it to rebuild"
_META_FRAME_ARRAYS = ("files", "uvd", "joints", "center_source", "matrix", "center_uvd", "depth_half_mm")
_META_INFO_KEYS = {"dataset": str, "split": str, "size_px": int}


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _load_crops(path: Path) -> np.ndarray:
    """The (N, S, S) crops memory map; a truncated or foreign ``.npy`` is a DatasetError naming it."""
    try:
        crops = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # truncated or garbled
        raise DatasetError(path, _DAMAGED.format(_one_line(error))) from None
    if not isinstance(crops, np.ndarray) or crops.ndim != 3:
        found = f"shape {crops.shape}" if isinstance(crops, np.ndarray) else type(crops).__name__
        raise DatasetError(path, _DAMAGED.format(f"{found}, expected (N, S, S) crops"))
    return crops


def _load_meta(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``.npz`` beside the crops: its JSON ``info`` (keys and types checked) and its arrays."""
    names = ("info", *_META_FRAME_ARRAYS)
    try:
        with np.load(path, allow_pickle=False) as meta:
            missing = [name for name in names if name not in meta.files]
            if missing:
                raise DatasetError(path, _DAMAGED.format(f"no {', '.join(missing)} array"))
            arrays = {name: meta[name] for name in names}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(path, _DAMAGED.format(_one_line(error))) from None
    try:
        info = json.loads(str(arrays["info"]))
    except ValueError as error:
        raise DatasetError(path, _DAMAGED.format(f"info is not JSON: {_one_line(error)}")) from None
    if not isinstance(info, dict):
        raise DatasetError(path, _DAMAGED.format(f"info is a JSON {type(info).__name__}, expected an object"))
    bad = [key for key, kind in _META_INFO_KEYS.items() if not isinstance(info.get(key), kind)]
    if bad:
        wanted = ", ".join(f"{key} ({kind.__name__})" for key, kind in _META_INFO_KEYS.items())
        found = f"info lacks {', '.join(bad)} or has the wrong type; expected {wanted}"
        raise DatasetError(path, _DAMAGED.format(found))
    return info, arrays


def _default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "hpbench" / "crops"


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _centres_requested(index: FrameIndex, centers: np.ndarray | CenterFile | None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) uvd centres known before decoding (nan where the depth must decide) and their source codes."""
    n = len(index)
    if centers is None:
        return np.full((n, 3), np.nan), np.full(n, CENTER_DEPTH)
    if isinstance(centers, CenterFile):
        whole = centers.total_lines if centers.total_lines is not None else n
        uvd, valid = read_center_file(centers.path, index.spec.camera, coords=centers.coords, y_axis=centers.y_axis,
                                      num_frames=whole)
        part = slice(centers.first_line, centers.first_line + n)
        if part.stop > whole:
            raise ValueError(f"{centers.path}: lines {part.start + 1}-{part.stop} for {n} frames, but it has {whole}")
        uvd, valid = uvd[part], valid[part]
        return np.where(valid[:, None], uvd, np.nan), np.where(valid, CENTER_FILE, CENTER_INVALID)
    uvd = np.asarray(centers, dtype=np.float64)
    if uvd.shape != (n, 3):
        raise ValueError(f"centers must be (N, 3) uvd for the {n} frames, got {uvd.shape}")
    valid = np.isfinite(uvd).all(axis=1)
    return np.where(valid[:, None], uvd, np.nan), np.where(valid, CENTER_GIVEN, CENTER_DEPTH)


_WORKER_INDEX: list[FrameIndex] = []  # set once per worker process by _init_worker


def _init_worker(index: FrameIndex) -> None:
    _WORKER_INDEX[:] = [index]


def _crop_slice(index: FrameIndex | None, path: str, start: int, stop: int, centres: np.ndarray, boxes: np.ndarray,
                size: int, com_range_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Decode, centre and crop frames [start, stop) into the memory map at ``path``; frames without a
    centre use the centre of mass of the depths inside ``com_range_mm``.

    Returns their centres and which fell back to the labels' mean (no depth in range).
    ``index`` None: the one given to this worker process at start.
    """
    index = index if index is not None else _WORKER_INDEX[0]
    crops = np.load(path, mmap_mode="r+")
    spec = index.spec
    out = centres.copy()
    from_labels = np.zeros(len(out), dtype=bool)
    for row, frame in enumerate(range(start, stop)):
        depth = index.load_depth(frame)
        if not np.isfinite(out[row]).all():
            out[row] = center_from_depth(depth, spec.camera, cube_mm=float(boxes[row, 0]), hand_range_mm=com_range_mm)
        if not np.isfinite(out[row]).all():  # nothing in range: fall back to the labels, flagged
            out[row] = np.append(index.uvd[frame, :, :2].mean(0), index.uvd[frame, :, 2].mean())
            from_labels[row] = True
        transform = crop_transform(out[row][None], boxes[row, 0], spec.camera, size, depth_mm=boxes[row, 1])
        crops[frame] = crop_depth(depth[None], transform)[0].astype(np.float16)
    crops.flush()
    return out, from_labels


def build_crop_cache(
    index: FrameIndex,
    settings: CropSettings = CropSettings(),
    *,
    centers: np.ndarray | CenterFile | None = None,
    com_range_mm: tuple[float, float] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> CropCache:
    """The crop cache of ``index`` under ``settings``: opened if built before, built otherwise.

    ``centers``: (N, 3) image uvd per frame, a :class:`CenterFile`, or None; frames
    without a centre (None, nan) use :func:`center_from_depth` of the depths inside
    ``com_range_mm`` (mm; default: the dataset's ``hand_range_mm``). Frames whose centre
    line says ``invalid`` are flagged ``CENTER_INVALID`` (:attr:`CropCache.valid`), their
    crops centred on the centre of mass only to fill the slot.
    ``cache_dir`` defaults to ``$HPBENCH_CACHE_DIR`` or ``~/.cache/hpbench/crops``.
    """
    spec, size = index.spec, settings.size_px
    boxes = settings.boxes_mm(index.split, len(index), spec.cube_mm)
    known, source = _centres_requested(index, centers)
    low, high = spec.hand_range_mm if com_range_mm is None else com_range_mm
    com_range = (float(low), float(high))
    stamps = np.array([(stat.st_size, stat.st_mtime_ns) for stat in map(os.stat, index.files)], dtype=np.int64)
    key = _digest(_VERSION, spec.name, index.split, str(index.root.resolve()), [str(f) for f in index.files],
                  stamps, index.uvd, boxes, size, np.nan_to_num(known, nan=-1.0), source, com_range)
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    path = folder / f"{spec.name}-{index.split}-s{size}-{key}.npy"
    cache = _open_whole(path)
    if cache is not None:
        return cache
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(path):  # one build per cache; waiters reuse it
        cache = _open_whole(path, remove_damaged=True)
        if cache is not None:
            return cache
        for stale in folder.glob(f"{path.stem}.partial-*"):  # left by killed builds (we hold the lock)
            stale.unlink(missing_ok=True)
        return _build(index, path, known, source, boxes, size, com_range, key, workers, progress)


def _open_whole(path: Path, *, remove_damaged: bool = False) -> CropCache | None:
    """The cache at ``path`` when both its files are there and whole; None otherwise (a damaged
    one, e.g. truncated by a kill or a full disk, is deleted when ``remove_damaged``)."""
    meta = path.with_suffix(".npz")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        return CropCache.open(path)
    except DatasetError:
        if remove_damaged:
            meta.unlink(missing_ok=True)  # the completion marker first
            path.unlink(missing_ok=True)
        return None


def _build(index: FrameIndex, path: Path, known: np.ndarray, source: np.ndarray, boxes: np.ndarray, size: int,
           com_range: tuple[float, float], key: str, workers: int | None, progress: bool) -> CropCache:
    """Crop every frame into ``<stem>.partial-<pid>.npy``, then rename the crops and (last, as the
    completion marker) their ``.npz`` into place."""
    spec, n = index.spec, len(index)
    partial = path.with_name(path.stem + f".partial-{os.getpid()}.npy")
    np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=(n, size, size)).flush()

    if workers is None:  # starting a process costs ~1 s: only worth it for large splits
        workers = min(os.cpu_count() or 1, 1 + n // 1000)
    workers = max(1, min(workers, n))
    chunk = int(np.clip(math.ceil(n / (workers * 4)), 1, 512))
    slices = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    centres, from_labels = known.copy(), np.zeros(n, dtype=bool)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"{spec.name} {index.split}: cropping {plural(n, 'frame')}", total=n)
        if workers == 1:
            for start, stop in slices:
                centres[start:stop], from_labels[start:stop] = _crop_slice(
                    index, str(partial), start, stop, known[start:stop], boxes[start:stop], size, com_range)
                bar.advance(task, stop - start)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(index,)) as pool:
                futures = {pool.submit(_crop_slice, None, str(partial), start, stop, known[start:stop],
                                       boxes[start:stop], size, com_range): (start, stop) for start, stop in slices}
                for future in as_completed(futures):
                    start, stop = futures[future]
                    centres[start:stop], from_labels[start:stop] = future.result()
                    bar.advance(task, stop - start)
    source = np.where(from_labels & (source != CENTER_INVALID), CENTER_LABELS, source)
    transform = crop_transform(centres, boxes[:, 0], spec.camera, size, depth_mm=boxes[:, 1])
    info = {"dataset": spec.name, "split": index.split, "size_px": size, "version": _VERSION,
            "root": str(index.root), "key": key}
    meta_partial = partial.with_suffix(".npz")
    with open(meta_partial, "wb") as handle:
        np.savez(handle, info=np.array(json.dumps(info)), files=np.array([str(f) for f in index.files]),
                 uvd=index.uvd, joints=transform.to_crop(index.uvd), center_source=source, **transform.as_arrays())
    os.replace(partial, path)
    os.replace(meta_partial, path.with_suffix(".npz"))
    return CropCache.open(path)


class CropDataset:
    """A torch map-style dataset over a :class:`CropCache`, augmenting on the fly.

    Items are dicts of tensors: ``depth`` (1, S, S) float32, ``joints`` (J, 3)
    float32 crop coordinates (the model target), ``visible`` (J,) bool (inside
    the crop), the crop's ``matrix`` (2, 3), ``center_uvd`` (3,) and
    ``depth_half_mm`` () in float64 to map predictions back
    (:class:`hpbench.data.crop.CropTransform`), and ``index``. Augmentations are
    drawn from ``(seed, epoch, index)``: the same for any number of loader workers;
    call :meth:`set_epoch` each epoch for fresh ones.

    ``augmentation``: a protocol's own transforms (:class:`hpbench.data.augment.Augmenter`, built from
    ``protocol.augment`` and ``protocol.crop``), hpbench's generic :class:`Augmentation`, or None.
    ``crop``: the protocol's crop, which chooses the model input (:func:`hpbench.data.augment.adapt_input`:
    A2J's box crops are standardized mm offsets; None or any other crop: the normalized crop as cached);
    an :class:`~hpbench.data.augment.Augmenter` brings its own.
    """

    def __init__(self, cache: CropCache | str | os.PathLike[str], *,
                 augmentation: Augmentation | Augmenter | None = None, crop: Crop | None = None,
                 seed: int = 0) -> None:
        if isinstance(augmentation, Augmenter):
            if crop is not None and crop != augmentation.crop:
                raise ValueError(f"crop {crop!r} differs from the augmenter's {augmentation.crop!r}")
            crop = augmentation.crop
        self.path = cache.path if isinstance(cache, CropCache) else Path(cache)
        self._cache: CropCache | None = cache if isinstance(cache, CropCache) else None
        self.augmentation = augmentation
        self.crop = crop
        self.seed = seed
        self.epoch = 0

    @property
    def cache(self) -> CropCache:
        if self._cache is None:  # opened lazily in each worker process: memory maps do not pickle
            self._cache = CropCache.open(self.path)
        return self._cache

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch of items at once (torch's DataLoader calls this when present): vectorized augmentation."""
        import torch

        cache = self.cache
        rows = np.asarray(indices)
        crops = np.asarray(cache.crops[np.sort(rows)], dtype=np.float32)[np.argsort(np.argsort(rows))]
        joints = cache.joints[rows]
        transform = cache.transform[rows]
        rngs = [np.random.default_rng([self.seed, self.epoch, int(i)]) for i in rows]
        if isinstance(self.augmentation, Augmenter):  # returns the model input (adapted)
            crops, joints, transform = self.augmentation(crops, joints, transform, rngs)
        elif self.augmentation is not None:
            params = [sample_augmentation(self.augmentation, rng, 1) for rng in rngs]
            stacked = AugmentParams(*(np.concatenate([getattr(p, name) for p in params])
                                      for name in ("rotation_rad", "scale", "shift_mm", "dropout")))
            crops, joints, transform = augment_crops(crops, joints, transform, stacked, rngs)
        if not isinstance(self.augmentation, Augmenter):
            crops = adapt_input(crops, self.crop)
        size = transform.size_px
        visible = (joints[..., :2] >= -0.5).all(-1) & (joints[..., :2] <= size - 0.5).all(-1)
        return [
            {
                "depth": torch.from_numpy(np.ascontiguousarray(crops[k][None])),
                "joints": torch.from_numpy(joints[k].astype(np.float32)),
                "visible": torch.from_numpy(visible[k]),
                "matrix": torch.from_numpy(transform.matrix[k]),
                "center_uvd": torch.from_numpy(transform.center_uvd[k]),
                "depth_half_mm": torch.tensor(float(transform.depth_half_mm[k]), dtype=torch.float64),
                "index": int(rows[k]),
            }
            for k in range(len(rows))
        ]


def open_crop_cache(
    dataset: DatasetSpec | str,
    split: str,
    settings: CropSettings = CropSettings(),
    *,
    data_root: str | os.PathLike[str] | None = None,
    centers: np.ndarray | CenterFile | Literal["auto"] | None = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> CropCache:
    """Index ``split`` of ``dataset`` on disk (:func:`hpbench.data.formats.open_split`) and build or open its cache.

    ``centers="auto"``: the spec's ``center_file`` below the root when it exists
    (the synthetic datasets write one), else centres from the depth.
    """
    from hpbench.data.formats import open_split

    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset  # a name: the public API's convenience
    index = open_split(spec, split, data_root=data_root)
    if isinstance(centers, str) and centers == "auto":
        candidate = index.root / spec.center_file.format(split=split) if spec.center_file else None
        centers = CenterFile(candidate) if candidate is not None and candidate.is_file() else None
    return build_crop_cache(index, settings, centers=centers, cache_dir=cache_dir, workers=workers, progress=progress)


def open_protocol_cache(
    dataset: DatasetSpec | str,
    split: str,
    settings: CropSettings,
    centers: Centers,
    *,
    role: Literal["train", "test"] | None = None,
    given: str | os.PathLike[str] | None = None,
    fold: int | str | None = None,
    lines: tuple[int, int] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[CropCache, CentreChoice]:
    """:func:`open_crop_cache` with the centres a protocol's ``centers`` choose for ``split``
    (:func:`hpbench.data.centers.resolve_centers`, looked up in ``given`` (``--centers``) and under the
    split's data root); returns the cache and the choice, whose ``note`` belongs in the run's protocol
    record. ``role``: the split's role in the protocol (default: ``split``, which must then be train or
    test; MSRA's subject splits name it). ``lines``: (first line, total lines) of a centre file that holds
    several splits in order (:class:`CenterFile`). Frames to drop: ``~cache.valid``."""
    from hpbench.data.formats import open_split

    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    index = open_split(spec, split, data_root=data_root)
    given_path = None if given is None else Path(given)
    choice = resolve_centers(centers, role or split, spec=spec, root=index.root, given=given_path, fold=fold)
    if choice.file is not None and lines is not None:
        choice = replace(choice, file=replace(choice.file, first_line=lines[0], total_lines=lines[1]))
    cache = build_crop_cache(index, settings, centers=choice.file, com_range_mm=choice.com_range_mm,
                             cache_dir=cache_dir, workers=workers, progress=progress)
    return cache, choice


def describe_center_sources(center_source: np.ndarray) -> str:
    """How many frames got their centre from where (a cache's ``center_source``), in words."""
    codes, counts = np.unique(np.asarray(center_source), return_counts=True)
    return "; ".join(f"{plural(int(count), 'frame')} {_SOURCE_WORDS.get(int(code), f'code {int(code)}')}"
                     for code, count in zip(codes, counts))
