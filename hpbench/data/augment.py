"""Each protocol's own training augmentation and input normalization, on batches of cached crops.

The crop cache (:mod:`hpbench.data.cache`) holds crops normalized to [-1, 1] (background +1, nearer
than the box clamped to -1), their :class:`~hpbench.data.crop.CropTransform` and the joints in crop
coordinates (u, v crop px; d normalized). :class:`Augmenter` turns a protocol's ``augment`` tuple
(:mod:`hpbench.protocol`, facts: design/protocols.md) into one vectorized pass over such a batch;
every transform reads its law, probability and range from its dataclass, nothing per model. Joints
and the crop transform move with the pixels, so a prediction still maps back to the same image uvd.

Geometric transforms are maps "new crop px -> old crop px". Consecutive ones of one stage are
composed and the crop is resampled once (A2J's scale and rotation are one cv2.warpAffine in the
original too): before-crop transforms (centre jitter, image rotation, edge shifts) with nearest
neighbour (the originals rotate and crop with nearest), crop transforms (scale, crop rotation) with
bilinear interpolation (cv2.warpAffine in both TriHorn-Net and A2J). Depth changes are an affine map of
the normalized depth, applied to the joints' d too; a scale's foreground values are not clipped
afterwards (TriHorn-Net's d x s may pass 1, as in the original). Pixel dropout sets int(f x n) of a
crop's n foreground pixels, drawn without replacement, to background.

What a cached crop cannot do exactly (:func:`transform_status` says it per transform, and the run's
protocol record repeats it):

- centre jitter and image-stage rotation happen before cropping in the original: pixels the original
  would bring in from outside the box (a rotation's corners, a jitter's edge) are background here.
  The jitter's depth shift re-crops the depth range (outside [-1, 1] becomes background, as
  TriHorn-Net sets pixels outside the cube to background) and the window shrinks or grows with the
  centre depth, as a crop at the jittered centre would.
- A2J's edge shifts move the box's four edges in image px before its (nearest, aspect-free) resize:
  here an anisotropic rescale and shift of the cached crop, content outside the cached box background.
- V2V-PoseNet's integer voxel translation, on a crop with one pixel per voxel column
  (:class:`~hpbench.protocol.VoxelGrid` with ``input_px == grid``), is an integer pixel shift plus a
  whole number of depth layers: the voxels inside the cube move exactly, but the original picks its 88^3
  window out of a 96^3 frame, so points up to 4 voxels outside the cube can come in; here that margin
  is background. Its scale and rotation move points before rounding them into voxels; a resampled crop
  gives another occupancy, so they are not applied. HandFoldingNet's point-stage
  transforms need the points and their PCA frame, which exist only inside the model: not applied.

A2J (:class:`~hpbench.protocol.BoxCrop`): readings with |d - c_d| >= the box's depth half-extent
become offset 0 before anything else (the cache's exact +-1); depth scaling multiplies all offsets
(and the joints' d); the crop-stage warp fills with the standardized 0 (the original warps after
standardization with border 0); :func:`adapt_input` then gives (offset mm - mean) / std, and noise
erasing comes last, on the standardized input. The original rotates about (88, 88) on its 176 crop,
hpbench about the crop's middle (87.5, 87.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hpbench.data.crop import CropTransform
from hpbench.protocol import (
    Augment,
    BoxCrop,
    CenterJitter,
    Crop,
    EdgeShift,
    NoiseErasing,
    PixelDropout,
    Rotation,
    Scale,
    Translation,
    VoxelGrid,
)

__all__ = ["APPLIED", "APPROXIMATED", "NOT_APPLIED", "Augmenter", "adapt_input", "to_working", "transform_status"]

APPLIED, APPROXIMATED, NOT_APPLIED = "applied", "approximated", "not applied"
"""The three verdicts of :func:`transform_status` (the record adds how, or why)."""

Rngs = Sequence[np.random.Generator]


# --------------------------------------------------------------------------- input normalization


def to_working(crops: np.ndarray, crop: Crop | None) -> np.ndarray:
    """Cached normalized crops (n, S, S) -> the values augmentation works on: unchanged, except for a
    :class:`BoxCrop`, whose readings outside +-``depth_half_mm`` (the cache's exact +-1) become offset 0
    (A2J: d -> c_d), so that the background is 0."""
    crops = np.asarray(crops, dtype=np.float32)
    if isinstance(crop, BoxCrop):
        return np.where(np.abs(crops) >= 1.0, np.float32(0.0), crops)
    return crops


def _standardize(working: np.ndarray, crop: Crop | None) -> np.ndarray:
    if not isinstance(crop, BoxCrop):
        return np.asarray(working, dtype=np.float32)
    offset_mm = np.asarray(working, dtype=np.float64) * crop.depth_half_mm
    return ((offset_mm - crop.mean) / crop.std).astype(np.float32)


def adapt_input(crops: np.ndarray, crop: Crop | None) -> np.ndarray:
    """The model input of cached normalized crops (n, S, S) under a protocol's ``crop``.

    :class:`BoxCrop` (A2J): x = d - c_d in mm, 0 where |d - c_d| >= ``depth_half_mm`` (missing readings
    included), then (x - ``mean``) / ``std``. Any other crop (or None): the normalized crop as it is.
    """
    return _standardize(to_working(crops, crop), crop)


# --------------------------------------------------------------------------- what a cached crop can do


def transform_status(step: Augment, crop: Crop) -> str:
    """``"applied"``, ``"approximated (how)"`` or ``"not applied (why)"``: what :class:`Augmenter` does
    with ``step`` on cached crops of ``crop``."""
    verdict, words = _verdict(step, crop)
    return verdict if not words else f"{verdict} ({words})"


def _verdict(step: Augment, crop: Crop) -> tuple[str, str]:
    if isinstance(step, CenterJitter):
        return APPROXIMATED, ("on the cached crop: in-plane shift (image px converted with the crop's px scale), "
                              "window rescaled for the new centre depth and depth offset; pixels from outside "
                              "the cached box are background")
    if isinstance(step, Rotation):
        if step.stage == "image":
            return APPROXIMATED, ("the cached crop turned about its centre (nearest); corners the original fills "
                                  "from outside the box are background")
        if step.stage == "crop":
            return APPLIED, ""
        return NOT_APPLIED, _INSIDE_MODEL[step.stage]
    if isinstance(step, Scale):
        if step.stage in ("crop", "depth"):
            return APPLIED, ""
        return NOT_APPLIED, _INSIDE_MODEL[step.stage]
    if isinstance(step, Translation):
        if _exact_voxel_shift(step, crop):
            return APPROXIMATED, ("an integer shift of the crop's pixels and depth layers, exact inside the cube; "
                                  "the 4-voxel margin of the original's 96^3 frame is background here")
        return NOT_APPLIED, _INSIDE_MODEL[step.stage]
    if isinstance(step, EdgeShift):
        return APPROXIMATED, ("each box edge moved by an integer of image px, converted to crop px: an anisotropic "
                              "rescale and shift of the cached crop (nearest); content outside the cached box is "
                              "background")
    if isinstance(step, PixelDropout | NoiseErasing):
        return APPLIED, ""
    return NOT_APPLIED, "points exist only inside the model (sampled from the crop in its forward)"


_INSIDE_MODEL = {
    "voxels": "the model voxelizes the crop inside its forward; scaling or turning points before rounding them "
              "into voxels is not a resampling of the crop",
    "points": "the points and their PCA frame exist only inside the model's forward",
}


def _exact_voxel_shift(step: Translation, crop: Crop) -> bool:
    """An integer voxel translation on a crop of one pixel per voxel column: a whole-pixel shift."""
    return (step.stage == "voxels" and step.units == "voxels" and step.integer and isinstance(crop, VoxelGrid)
            and crop.input_px == crop.grid)


# --------------------------------------------------------------------------- the augmenter


@dataclass(frozen=True)
class _Geometry:
    """One geometric step for n crops: ``to_old`` (n, 3, 3) new crop px -> old crop px; depth d -> ``a`` d + ``b``
    (n,); ``recrop``: depth outside [-1, 1] becomes background afterwards (a new crop's depth range)."""

    to_old: np.ndarray
    a: np.ndarray
    b: np.ndarray
    recrop: bool = False


_NEAREST, _BILINEAR = "nearest", "bilinear"


class Augmenter:
    """A protocol's ``augment`` tuple as one batched transform of cached crops (see the module docstring).

    ``Augmenter(protocol.augment, protocol.crop)(crops, joints, transform, rngs)`` takes cached crops
    (n, S, S), joints (n, J, 3) in crop coordinates, their :class:`CropTransform` and one generator per
    crop, and returns the model input (:func:`adapt_input` applied), the joints and the transform of the
    augmented crops. ``statuses``: per transform, what :func:`transform_status` says.
    """

    def __init__(self, augment: Sequence[Augment], crop: Crop) -> None:
        self.augment = tuple(augment)
        self.crop = crop
        self.statuses = tuple(transform_status(step, crop) for step in self.augment)
        box = isinstance(crop, BoxCrop)
        self._background = 0.0 if box else 1.0
        # A2J warps after standardization with border 0, i.e. offset = mean mm; others fill with background
        self._border = crop.mean / crop.depth_half_mm if box else 1.0
        self._exempt = not box  # normalized crops: depth maps leave exact-background pixels alone

    def __repr__(self) -> str:
        return f"Augmenter({', '.join(step.kind for step in self.augment) or 'nothing'} on {self.crop.kind} crops)"

    def __call__(self, crops: np.ndarray, joints: np.ndarray, transform: CropTransform,
                 rngs: Rngs) -> tuple[np.ndarray, np.ndarray, CropTransform]:
        values = to_working(crops, self.crop).astype(np.float64)
        joints = np.asarray(joints, dtype=np.float64)
        n, size = values.shape[0], values.shape[-1]
        if len(rngs) != n:
            raise ValueError(f"one generator per crop: {n} crops, {len(rngs)} generators")
        pending: tuple[str, np.ndarray, np.ndarray, np.ndarray, bool] | None = None  # stage, to_old, a, b, recrop
        post: list[Callable[[np.ndarray], np.ndarray]] = []
        for step in self.augment:
            stage, geometry = self._geometry(step, transform, rngs, size)
            if geometry is not None:
                if pending is not None and pending[0] != stage:
                    values = self._resample(values, *pending)
                    pending = None
                joints, transform = _move(joints, transform, geometry)
                if pending is None:
                    pending = (stage, geometry.to_old, geometry.a, geometry.b, geometry.recrop)
                else:  # composed: the earlier step's map is applied last (new -> older -> oldest)
                    _, to_old, a, b, recrop = pending
                    pending = (stage, to_old @ geometry.to_old, geometry.a * a, geometry.a * b + geometry.b,
                               recrop or geometry.recrop)
            elif isinstance(step, PixelDropout):
                if pending is not None:
                    values, pending = self._resample(values, *pending), None
                values = self._dropout(step, values, rngs)
            elif isinstance(step, NoiseErasing):
                draws = [_erasing_box(step, size, rng) for rng in rngs]  # drawn in order, added after standardizing
                post.append(lambda x, draws=draws: _add_noise(x, draws))
        if pending is not None:
            values = self._resample(values, *pending)
        inputs = _standardize(values, self.crop)
        for add in post:
            inputs = add(inputs)
        return inputs.astype(np.float32), joints, transform

    # ----------------------------------------------------------------------- steps

    def _geometry(self, step: Augment, transform: CropTransform, rngs: Rngs, size: int) -> tuple[str, _Geometry | None]:
        """The stage (resampling) and geometry of ``step``; None for value steps and those not applied."""
        verdict, _ = _verdict(step, self.crop)
        if verdict == NOT_APPLIED or isinstance(step, PixelDropout | NoiseErasing):
            return "", None
        n, middle = len(rngs), (size - 1) / 2.0
        ones, zeros = np.ones(n), np.zeros(n)
        if isinstance(step, CenterJitter):
            draws = np.array([rng.normal(size=3) for rng in rngs]) * np.asarray(step.sigma)
            draws = np.clip(draws, -np.asarray(step.clip), np.asarray(step.clip))
            # the image px shift in old crop px, and the window's size at the new centre depth (f / d)
            shift = np.linalg.solve(transform.matrix[:, :, :2], draws[:, :2, None])[..., 0]
            depth = transform.center_uvd[:, 2]
            zoom = depth / (depth + draws[:, 2])
            to_old = _affine(zoom[:, None, None] * np.eye(2), middle + shift - zoom[:, None] * middle)
            return _NEAREST, _Geometry(to_old, ones, -draws[:, 2] / transform.depth_half_mm, recrop=True)
        if isinstance(step, Rotation):
            angle = np.deg2rad(np.array([_angle(step, rng) for rng in rngs]))
            # old = middle + R(angle) (new - middle): content turns counter-clockwise as displayed (rows down)
            cos, sin = np.cos(angle), np.sin(angle)
            linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
            to_old = _affine(linear, middle - linear @ np.array([middle, middle]))
            return (_NEAREST if step.stage == "image" else _BILINEAR), _Geometry(to_old, ones, zeros)
        if isinstance(step, Scale):
            scale = np.array([rng.uniform(step.low, step.high) if rng.random() < step.p else 1.0 for rng in rngs])
            in_plane = scale if step.stage != "depth" else np.ones(n)  # "depth": the offsets alone
            linear = np.eye(2) / in_plane[:, None, None]  # content magnified by s about the middle
            to_old = _affine(linear, middle - linear @ np.array([middle, middle]))
            return _BILINEAR, _Geometry(to_old, scale if step.depth else ones, zeros)
        if isinstance(step, Translation):  # integer voxel shift (checked by _verdict)
            assert isinstance(self.crop, VoxelGrid)
            voxels = np.array([rng.integers(int(np.ceil(step.low)), int(np.floor(step.high)) + 1, size=3)
                               for rng in rngs]).astype(np.float64)
            px_per_voxel = self.crop.input_px / self.crop.grid
            to_old = _affine(np.broadcast_to(np.eye(2), (n, 2, 2)), -voxels[:, :2] * px_per_voxel)
            return _NEAREST, _Geometry(to_old, ones, voxels[:, 2] * 2.0 / self.crop.grid, recrop=True)
        if isinstance(step, EdgeShift):
            edges = np.array([rng.integers(step.low, step.high + 1, size=4) for rng in rngs]).astype(np.float64)
            # image px per crop px along the crop's u and v axes; edges: left, right, top, bottom
            step_u = np.linalg.norm(transform.matrix[:, :, 0], axis=-1)
            step_v = np.linalg.norm(transform.matrix[:, :, 1], axis=-1)
            first = np.stack([edges[:, 0] / step_u, edges[:, 2] / step_v], -1) - 0.5  # new box edge, old crop px
            span = np.stack([size + (edges[:, 1] - edges[:, 0]) / step_u,
                             size + (edges[:, 3] - edges[:, 2]) / step_v], -1) / size
            linear = span[:, :, None] * np.eye(2)
            return _NEAREST, _Geometry(_affine(linear, first + 0.5 * span), ones, zeros)
        raise TypeError(f"no geometry for {step!r}")  # pragma: no cover - _verdict covers every kind

    def _resample(self, values: np.ndarray, stage: str, to_old: np.ndarray, a: np.ndarray, b: np.ndarray,
                  recrop: bool) -> np.ndarray:
        """Resample ``values`` at ``to_old`` (nearest or bilinear), then map depth d -> a d + b."""
        background = self._background
        a3, b3 = a[:, None, None], b[:, None, None]
        if stage == _NEAREST:
            fill = np.full(len(values), background)
        elif self._exempt:
            fill = np.full(len(values), self._border)
        else:  # all pixels get a d + b afterwards: fill so that the border ends as it should
            fill = (self._border - b) / a
        out = _warp(values, to_old, stage, fill)
        if self._exempt:
            out = np.where(out == background, background, a3 * out + b3)
            if recrop:
                out = np.where((out < -1.0) | (out > 1.0), background, out)
        else:
            out = a3 * out + b3
        return out

    def _dropout(self, step: PixelDropout, values: np.ndarray, rngs: Rngs) -> np.ndarray:
        out = values.copy()
        flat = out.reshape(len(out), -1)
        for row, rng in zip(flat, rngs):
            apply, fraction = rng.random() < step.p, rng.uniform(0.0, step.max_fraction)
            foreground = np.flatnonzero(row != self._background)
            count = int(fraction * len(foreground))
            if apply and count:
                row[rng.choice(foreground, count, replace=False)] = self._background
        return out


def _angle(step: Rotation, rng: np.random.Generator) -> float:
    """One angle (degrees) under ``step``'s law; 0 with probability 1 - p."""
    if step.law == "normal":
        angle = step.mean + step.std * rng.normal()
    elif step.law == "uniform":
        angle = rng.uniform(step.low, step.high)
    elif step.law == "integer":
        angle = float(rng.integers(int(step.low), int(step.high) + 1))
    else:
        angle = step.step * float(rng.integers(int(step.low), int(step.high) + 1))
    if rng.random() < step.half_turn_p:
        angle += 180.0
    return angle if rng.random() < step.p else 0.0


def _affine(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(n, 3, 3) homogeneous maps from (n, 2, 2) linear parts and (n, 2) offsets."""
    linear = np.asarray(linear, dtype=np.float64)
    n = max(len(linear) if linear.ndim == 3 else 1, len(offset))
    out = np.zeros((n, 3, 3))
    out[:, :2, :2] = linear
    out[:, :2, 2] = offset
    out[:, 2, 2] = 1.0
    return out


def _move(joints: np.ndarray, transform: CropTransform, geometry: _Geometry) -> tuple[np.ndarray, CropTransform]:
    """Joints and crop transform after ``geometry``: u, v by the inverse map, d -> a d + b; the new
    transform sends the new joints to the same image uvd."""
    to_new = np.linalg.inv(geometry.to_old)
    uv = np.einsum("nij,nkj->nki", to_new[:, :2, :2], joints[..., :2]) + to_new[:, None, :2, 2]
    d = geometry.a[:, None] * joints[..., 2] + geometry.b[:, None]
    matrix = np.einsum("nij,njk->nik", transform.matrix, geometry.to_old)
    middle = (transform.size_px - 1) / 2.0
    centre_uv = matrix[:, :, :2] @ np.array([middle, middle]) + matrix[:, :, 2]
    half = transform.depth_half_mm / geometry.a
    centre_d = transform.center_uvd[:, 2] - geometry.b * half
    moved = CropTransform(matrix, np.concatenate([centre_uv, centre_d[:, None]], -1), half, transform.size_px)
    return np.concatenate([uv, d[..., None]], -1), moved


def _warp(values: np.ndarray, to_old: np.ndarray, stage: str, fill: np.ndarray) -> np.ndarray:
    """values (n, S, S) sampled at to_old @ (u, v, 1) of each new pixel; outside the crop: ``fill`` (n,)."""
    n, size = values.shape[0], values.shape[-1]
    if np.allclose(to_old, np.eye(3), rtol=0.0, atol=1e-12):
        return values
    grid = np.arange(size, dtype=np.float64)
    m = to_old[:, None, None, :, :]
    x = m[..., 0, 0] * grid + m[..., 0, 1] * grid[:, None] + m[..., 0, 2]
    y = m[..., 1, 0] * grid + m[..., 1, 1] * grid[:, None] + m[..., 1, 2]
    flat = values.reshape(n, -1)

    def take(cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
        index = np.where(inside, rows * size + cols, 0).reshape(n, -1)
        picked = np.take_along_axis(flat, index, axis=-1).reshape(cols.shape)
        return np.where(inside, picked, fill[:, None, None])

    if stage == _NEAREST:
        return take(np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64))
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    c, r = x0.astype(np.int64), y0.astype(np.int64)
    return ((1 - fx) * (1 - fy) * take(c, r) + fx * (1 - fy) * take(c + 1, r)
            + (1 - fx) * fy * take(c, r + 1) + fx * fy * take(c + 1, r + 1))


def _erasing_box(step: NoiseErasing, size: int, rng: np.random.Generator,
                 attempts: int = 100) -> tuple[int, int, int, int, np.ndarray] | None:
    """A2J's random erasing: with probability p, a rectangle of area U(area) x S^2 and aspect U(aspect)
    that fits (up to ``attempts`` draws, as random_erasing.py), and its N(0, sigma^2) noise."""
    if rng.random() >= step.p:
        return None
    for _ in range(attempts):
        area = rng.uniform(*step.area) * size * size
        aspect = rng.uniform(*step.aspect)
        height, width = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < height < size and 0 < width < size:
            top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
            return top, left, height, width, rng.normal(0.0, step.sigma, (height, width))
    return None


def _add_noise(inputs: np.ndarray, draws: list[tuple[int, int, int, int, np.ndarray] | None]) -> np.ndarray:
    out = inputs.copy()
    for k, draw in enumerate(draws):
        if draw is not None:
            top, left, height, width, noise = draw
            out[k, top:top + height, left:left + width] += noise
    return out
