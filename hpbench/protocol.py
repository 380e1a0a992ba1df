"""Data and training protocols: how a method's original code chose frames and centres, cropped,
normalized, augmented and weighted its loss, per dataset (facts: design/protocols.md, with sources).

A card carries one :class:`Protocol` per dataset in ``[protocol.<dataset>]`` tables (or names
another card whose protocols it follows); the data layer reads the crop, centres, frame list and
augmentation from it, never from a model's name, and every run records the one it used. Units: u,
v in image or crop pixels (px), depth and world coordinates in mm, angles in degrees. Where hpbench
cannot do what the original did, ``differences`` says so in words; where the original has no
protocol for a dataset, ``borrowed`` says whose is used instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from hpbench.schema import Count, NonNegative, Positive, PositiveInt, Probability

__all__ = [
    "Augment", "BoxCrop", "CenterJitter", "Centers", "Crop", "CubeCrop", "EdgeShift", "Frames", "Loss", "LossTerm",
    "NoiseErasing", "PixelDropout", "PointCloud", "PointPermutation", "Protocol", "Rotation", "Scale",
    "Translation", "VoxelGrid",
]


def _ordered(pair: tuple[float, float], what: str) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{what}: low {pair[0]:g} above high {pair[1]:g}")


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True, kw_only=True)
class CubeCrop:
    """A 3D box of ``size_mm`` (x, y, z) around the centre, projected at the centre depth and resized
    to ``input_px`` square (nearest; ``keep_aspect``: pasted centred). Depth (d - c_d) / (z / 2): the
    hand in [-1, 1]; missing readings, pixels outside the image and behind or before the box are
    ``background``. From test frame ``test_shrink_from`` (0-based) on, the box is x ``test_shrink``
    (TriHorn-Net on NYU); ``per_subject_mm`` gives MSRA's per-subject edges (all axes)."""

    kind: Literal["cube"] = "cube"
    size_mm: tuple[Positive, Positive, Positive]
    input_px: PositiveInt
    keep_aspect: bool = True
    background: float = 1.0
    test_shrink_from: Count | None = None
    test_shrink: Positive = 1.0
    per_subject_mm: Mapping[str, Positive] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, kw_only=True)
class BoxCrop:
    """A2J's crop: +-``half_mm`` (x, y) at the centre depth projected to a pixel box clamped to the
    image (no padding), resized to ``input_px`` square without keeping the aspect (nearest). Depth:
    readings with |d - c_d| >= ``depth_half_mm`` (missing included) become c_d, then (d - c_d) mm is
    standardized with ``mean`` and ``std``."""

    kind: Literal["box"] = "box"
    half_mm: tuple[Positive, Positive]
    depth_half_mm: Positive
    input_px: PositiveInt
    mean: float
    std: Positive


@dataclass(frozen=True, kw_only=True)
class VoxelGrid:
    """V2V-PoseNet's input: points back-projected into a ``cube_mm`` cube around the centre, binned
    into ``grid``^3 occupancy voxels (cube / grid mm each); missing depth counts as
    ``missing_depth_mm``. hpbench back-projects the pixels of an ``input_px`` crop (see the card's
    differences)."""

    kind: Literal["voxels"] = "voxels"
    cube_mm: Positive
    grid: PositiveInt
    missing_depth_mm: Positive
    input_px: PositiveInt


@dataclass(frozen=True, kw_only=True)
class PointCloud:
    """HandFoldingNet's input: ``points`` points of the hand region (joints' u, v box +-``margin_px``
    joined with the palm's +-``palm_margin_px``; depth likewise in mm), in an OBB (PCA) frame scaled
    by ``extent_scale`` x the first axis' extent, normals from ``normal_neighbours`` neighbours.
    hpbench samples them from an ``input_px`` crop (see the card's differences)."""

    kind: Literal["points"] = "points"
    points: PositiveInt
    margin_px: NonNegative
    margin_mm: NonNegative
    palm_margin_px: NonNegative
    palm_margin_mm: NonNegative
    extent_scale: Positive
    normal_neighbours: PositiveInt
    input_px: PositiveInt


Crop = CubeCrop | BoxCrop | VoxelGrid | PointCloud


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True, kw_only=True)
class CenterJitter:
    """Before cropping: clip(N(0, sigma^2), +-clip) added to the centre's (u px, v px, d mm)."""

    kind: Literal["center_jitter"] = "center_jitter"
    sigma: tuple[NonNegative, NonNegative, NonNegative]
    clip: tuple[NonNegative, NonNegative, NonNegative]


@dataclass(frozen=True, kw_only=True)
class Rotation:
    """In-plane rotation at ``stage`` with probability ``p``. The angle (degrees): ``normal``:
    mean + std * N(0, 1), unbounded; ``uniform``: U(low, high); ``integer``: uniform on the integers
    low..high; ``steps``: step * k, k uniform on the integers low..high; then, with probability
    ``half_turn_p``, a further 180 degrees."""

    kind: Literal["rotation"] = "rotation"
    stage: Literal["image", "crop", "voxels", "points"]
    law: Literal["normal", "uniform", "integer", "steps"]
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    std: NonNegative = 0.0
    step: NonNegative = 0.0
    p: Probability = 1.0
    half_turn_p: Probability = 0.0

    def __post_init__(self) -> None:
        _ordered((self.low, self.high), "rotation")


@dataclass(frozen=True, kw_only=True)
class Scale:
    """With probability ``p``, scale by s ~ U(low, high) at ``stage`` about the crop centre (depth
    offsets and targets' d too when ``depth``)."""

    kind: Literal["scale"] = "scale"
    stage: Literal["crop", "voxels", "points", "depth"]
    low: Positive
    high: Positive
    p: Probability = 1.0
    depth: bool = True

    def __post_init__(self) -> None:
        _ordered((self.low, self.high), "scale")


@dataclass(frozen=True, kw_only=True)
class Translation:
    """Shift by U(low, high) per axis in ``units`` at ``stage`` (``integer``: whole units only)."""

    kind: Literal["translation"] = "translation"
    stage: Literal["voxels", "points"]
    low: float
    high: float
    units: Literal["voxels", "mm"]
    integer: bool = False

    def __post_init__(self) -> None:
        _ordered((self.low, self.high), "translation")


@dataclass(frozen=True, kw_only=True)
class EdgeShift:
    """Before cropping: each of the pixel box's four edges moved by an integer U{low..high} px (A2J)."""

    kind: Literal["edge_shift"] = "edge_shift"
    low: int
    high: int

    def __post_init__(self) -> None:
        _ordered((self.low, self.high), "edge_shift")


@dataclass(frozen=True, kw_only=True)
class PixelDropout:
    """With probability ``p``, a fraction U(0, max_fraction) of the foreground pixels set to background."""

    kind: Literal["pixel_dropout"] = "pixel_dropout"
    p: Probability
    max_fraction: Probability


@dataclass(frozen=True, kw_only=True)
class NoiseErasing:
    """With probability ``p``, N(0, sigma^2) noise added to a rectangle of area U(area) x the crop's
    and aspect U(aspect) (A2J's "random erasing", after standardization)."""

    kind: Literal["noise_erasing"] = "noise_erasing"
    p: Probability
    area: tuple[Probability, Probability]
    aspect: tuple[Positive, Positive]
    sigma: Positive = 1.0

    def __post_init__(self) -> None:
        _ordered(self.area, "noise_erasing area")
        _ordered(self.aspect, "noise_erasing aspect")


@dataclass(frozen=True, kw_only=True)
class PointPermutation:
    """The points' order shuffled (HandFoldingNet, per batch)."""

    kind: Literal["point_permutation"] = "point_permutation"


Augment = (CenterJitter | Rotation | Scale | Translation | EdgeShift | PixelDropout | NoiseErasing
           | PointPermutation)


# --------------------------------------------------------------------------- frames, centres, loss


@dataclass(frozen=True, kw_only=True)
class Frames:
    """Which label lines each split uses. ``all``: every line; ``valid-centers``: those whose centre
    line is not ``invalid`` (V2V); ``list``: the frames named in ``train_list`` (e.g. TriHorn-Net's
    22k ICVL names); ``a2j-valid``: A2J's validIndex (330,933 of ICVL's 331,006); ``dated-folders``:
    ICVL lines in dated folders (HandFoldingNet). ``folds`` > 0: leave-one-subject-out over that many
    subjects, each fold's predictions concatenated in the original order before scoring."""

    train: Literal["all", "valid-centers", "list", "a2j-valid", "dated-folders"]
    test: Literal["all", "valid-centers"] = "all"
    train_list: str = ""
    folds: Count = 0

    def __post_init__(self) -> None:
        if (self.train == "list") != bool(self.train_list):
            raise ValueError('train_list names the list file exactly when train = "list"')


@dataclass(frozen=True, kw_only=True)
class Centers:
    """Where each split's crop centres come from. ``refined``: a file of refined centres, one line a
    frame (``format`` uvd: u px v px d mm; xyz: world mm, ``invalid`` lines drop the frame), named as
    the original names it; ``com``: centre of mass of the pixels with depth in ``com_range_mm``;
    ``joints``: the region around the ground-truth joints; ``predicted``: around another model's
    predicted joints, read from the named file (HandFoldingNet's test)."""

    train: Literal["refined", "com", "joints"]
    test: Literal["refined", "com", "joints", "predicted"]
    format: Literal["uvd", "xyz"] = "uvd"
    train_file: str = ""
    test_file: str = ""
    com_range_mm: tuple[NonNegative, Positive] = (0.0, 500.0)

    def __post_init__(self) -> None:
        for split, source, file in (("train", self.train, self.train_file), ("test", self.test, self.test_file)):
            if (source in ("refined", "predicted")) != bool(file):
                raise ValueError(f'{split}_file names the file exactly when {split} is "refined" or "predicted"')


@dataclass(frozen=True, kw_only=True)
class LossTerm:
    """One weighted term of the training loss: ``function`` (smooth L1 with ``beta``) on ``target``
    in ``units``, reduced as ``reduction`` says."""

    target: str
    function: Literal["l1", "smooth_l1", "mse"]
    weight: Positive
    units: str
    reduction: str
    beta: Positive | None = None

    def __post_init__(self) -> None:
        if (self.function == "smooth_l1") != (self.beta is not None):
            raise ValueError("beta is given exactly for smooth_l1")


@dataclass(frozen=True, kw_only=True)
class Loss:
    """The training loss: the sum of its weighted terms."""

    terms: tuple[LossTerm, ...]


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """A method's data and training protocol on one dataset (see the module docstring)."""

    origin: str
    source: str
    borrowed: str = ""
    frames: Frames
    centers: Centers
    crop: Crop
    augment: tuple[Augment, ...] = ()
    loss: Loss
    selection: Literal["final", "best-test"]
    epochs: PositiveInt | None = None
    differences: str = ""


# --------------------------------------------------------------------------- words


def _num(value: float) -> str:
    return f"{value:g}"


def describe_crop(crop: Crop) -> str:
    """The crop in a few words (mm, px)."""
    if isinstance(crop, CubeCrop):
        x, y, z = crop.size_mm
        size = _num(x) if x == y == z else f"{_num(x)} x {_num(y)} x {_num(z)}"
        text = f"cube {size} mm, {crop.input_px} px, [-1, 1] bg {_num(crop.background)}"
        if crop.test_shrink_from is not None:
            text += f"; test from frame {crop.test_shrink_from}: x {crop.test_shrink:.4g}"
        if crop.per_subject_mm:
            text += "; per subject " + "/".join(_num(v) for v in crop.per_subject_mm.values()) + " mm"
        return text
    if isinstance(crop, BoxCrop):
        return (f"box +-{_num(crop.half_mm[0])} x +-{_num(crop.half_mm[1])} mm, depth +-{_num(crop.depth_half_mm)} mm, "
                f"{crop.input_px} px, (d - mean) / std")
    if isinstance(crop, VoxelGrid):
        return f"voxels: {_num(crop.cube_mm)} mm cube, {crop.grid}^3, missing = {_num(crop.missing_depth_mm)} mm"
    return f"{crop.points} points, OBB frame, {crop.input_px} px crop"


def describe_centers(centers: Centers) -> str:
    """Train and test centre sources in a few words."""
    def one(source: str, file: str) -> str:
        if source == "com":
            low, high = centers.com_range_mm
            return f"centre of mass {_num(low)}-{_num(high)} mm"
        if source in ("refined", "predicted"):
            return f"{source} {centers.format if source == 'refined' else 'joints'} ({file})"
        return "ground-truth joints"

    train, test = one(centers.train, centers.train_file), one(centers.test, centers.test_file)
    return train if train == test else f"train: {train}; test: {test}"


def describe_frames(frames: Frames) -> str:
    """The training frame list (and folds) in a few words."""
    text = frames.train_list if frames.train == "list" else frames.train
    return text + (f"; {frames.folds}-fold leave-one-subject-out" if frames.folds else "")


def describe_augment(augment: tuple[Augment, ...]) -> str:
    """The augmentation transforms, in order, by kind."""
    return ", ".join(step.kind.replace("_", " ") for step in augment) or "none"
