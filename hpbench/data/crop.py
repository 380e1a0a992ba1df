"""Cube crops around the hand centre (DeepPrior++ style), their inverse, and augmentations.

A crop of size S covers the projection of a ``cube_mm`` cube centred on the hand
centre (u_c, v_c, d_c): ``cube_mm * f / d_c`` image pixels per side, sampled
with nearest neighbour (Oberweger & Lepetit, "DeepPrior++", ICCVW 2017). Depth
is normalized to ``(d - d_c) / (cube_mm / 2)``: nearer than the cube's front
face clamps to -1 (as DeepPrior++), behind its back face, missing readings and
pixels outside the image are background, +1.

Coordinates: crop pixel centres sit at integers 0..S-1 and the crop's middle,
(S - 1) / 2, maps to the centre's image position (image pixel centres are at
integers too). A :class:`CropTransform` holds the affine crop px -> image px and
the depth normalization, so joints go to crop coordinates (u, v crop px, d
normalized: the model output contract of ``hpbench.models.base``) and back to
image uvd and world xyz exactly, whatever augmentation built the crop.

Augmentations (in-plane rotation, scale, 3D centre jitter, pixel dropout) are one
affine map in crop pixels plus a depth shift and rescale, applied to depth and
joints alike; :func:`augment_crops` applies them to cached crops. This is hpbench's generic
augmentation; a protocol's own transforms (TriHorn-Net's, A2J's, ...) are in :mod:`hpbench.data.augment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpbench.data.camera import Camera

__all__ = [
    "AugmentParams",
    "Augmentation",
    "CropTransform",
    "augment_crops",
    "crop_depth",
    "crop_transform",
    "sample_augmentation",
]


@dataclass(frozen=True)
class CropTransform:
    """Crops' geometry, batched over leading dimensions ``...``.

    ``matrix``: (..., 2, 3) affine crop px -> image px; ``center_uvd``: (..., 3) the
    crop centre (u, v px; d mm); ``depth_half_mm``: (...,) the depth that maps to 1
    (half the cube); ``size_px``: S.
    """

    matrix: np.ndarray
    center_uvd: np.ndarray
    depth_half_mm: np.ndarray
    size_px: int

    def __len__(self) -> int:
        return len(self.depth_half_mm)

    def __getitem__(self, index: int | slice | np.ndarray) -> CropTransform:
        return CropTransform(self.matrix[index], self.center_uvd[index], self.depth_half_mm[index], self.size_px)

    @property
    def inverse_matrix(self) -> np.ndarray:
        """(..., 2, 3) affine image px -> crop px."""
        linear = np.linalg.inv(self.matrix[..., :2])
        offset = -np.einsum("...ij,...j->...i", linear, self.matrix[..., 2])
        return np.concatenate([linear, offset[..., None]], axis=-1)

    def to_crop(self, uvd: np.ndarray) -> np.ndarray:
        """(..., J, 3) image (u, v px; d mm) -> crop (u, v crop px; d normalized)."""
        uvd = np.asarray(uvd, dtype=np.float64)
        uv = _apply(self.inverse_matrix, uvd[..., :2])
        d = (uvd[..., 2] - self.center_uvd[..., None, 2]) / self.depth_half_mm[..., None]
        return np.concatenate([uv, d[..., None]], axis=-1)

    def to_image(self, crop_uvd: np.ndarray) -> np.ndarray:
        """(..., J, 3) crop coordinates -> image (u, v px; d mm)."""
        crop_uvd = np.asarray(crop_uvd, dtype=np.float64)
        uv = _apply(self.matrix, crop_uvd[..., :2])
        d = crop_uvd[..., 2] * self.depth_half_mm[..., None] + self.center_uvd[..., None, 2]
        return np.concatenate([uv, d[..., None]], axis=-1)

    def to_world(self, crop_uvd: np.ndarray, camera: Camera) -> np.ndarray:
        """(..., J, 3) crop coordinates -> world (x, y, z) mm with ``camera``."""
        return camera.uvd_to_xyz(self.to_image(crop_uvd))

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for caches and torch batches)."""
        return {"matrix": self.matrix, "center_uvd": self.center_uvd, "depth_half_mm": self.depth_half_mm}


def _apply(matrix: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Affine (..., 2, 3) on points (..., J, 2)."""
    x, y = uv[..., 0], uv[..., 1]
    m = matrix[..., None, :, :]
    return np.stack([m[..., 0, 0] * x + m[..., 0, 1] * y + m[..., 0, 2],
                     m[..., 1, 0] * x + m[..., 1, 1] * y + m[..., 1, 2]], -1)


def _nearest_source(matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., S, S) integer column and row of the source pixel nearest to each crop pixel's image."""
    grid = np.arange(size, dtype=np.float64)
    m = matrix[..., None, None, :, :]
    cols = m[..., 0, 0] * grid + m[..., 0, 1] * grid[:, None] + m[..., 0, 2]
    rows = m[..., 1, 0] * grid + m[..., 1, 1] * grid[:, None] + m[..., 1, 2]
    return np.floor(cols + 0.5).astype(np.int64), np.floor(rows + 0.5).astype(np.int64)


def _rotation(angle: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def crop_transform(
    center_uvd: np.ndarray,
    cube_mm: float | np.ndarray,
    camera: Camera,
    size_px: int,
    *,
    rotation_rad: float | np.ndarray = 0.0,
    scale: float | np.ndarray = 1.0,
    depth_mm: float | np.ndarray | None = None,
) -> CropTransform:
    """The crop of a ``cube_mm`` cube around ``center_uvd`` (..., 3), S = ``size_px``.

    ``rotation_rad`` turns the crop window about the centre, counter-clockwise in
    the displayed image (rows down), so its content appears turned clockwise;
    ``scale`` multiplies the cube (field of view and depth range); ``depth_mm``: the
    box's depth extent when it differs from its lateral edge (A2J: 220 mm wide, 300 mm deep).
    """
    center = np.asarray(center_uvd, dtype=np.float64)
    batch = center.shape[:-1]
    cube = np.broadcast_to(np.asarray(cube_mm, dtype=np.float64) * scale, batch)
    if not np.all(center[..., 2] > 0):
        raise ValueError("crop centres need a positive depth (d mm); got a centre at or behind the camera")
    half_u = cube / 2.0 * camera.fx / center[..., 2]
    half_v = cube / 2.0 * abs(camera.fy) / center[..., 2]
    step = np.stack([2.0 * half_u / size_px, 2.0 * half_v / size_px], -1)  # image px per crop px
    linear = step[..., :, None] * _rotation(np.broadcast_to(-np.asarray(rotation_rad, dtype=np.float64), batch))
    middle = (size_px - 1) / 2.0
    offset = center[..., :2] - linear @ np.array([middle, middle])
    matrix = np.concatenate([linear, offset[..., None]], axis=-1)
    depth = cube if depth_mm is None else np.broadcast_to(np.asarray(depth_mm, dtype=np.float64) * scale, batch)
    return CropTransform(matrix, center.copy(), depth / 2.0, size_px)


def normalize_depth(depth_mm: np.ndarray, center_d_mm: np.ndarray, depth_half_mm: np.ndarray) -> np.ndarray:
    """Raw depth (mm, 0 = none) -> normalized: nearer than the cube clamps to -1, the rest outside is +1."""
    normalized = (depth_mm - center_d_mm) / depth_half_mm
    normalized = np.where((depth_mm <= 0) | (normalized > 1.0), 1.0, normalized)
    return np.maximum(normalized, -1.0).astype(np.float32)


def crop_depth(depth_mm: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Crops (..., S, S) float32 of depth frames (..., H, W) in mm (0 = no reading).

    Nearest neighbour: crop pixel q takes the image pixel nearest to ``matrix @ q``.
    Leading dimensions of ``depth_mm`` and ``transform`` must match.
    """
    depth = np.asarray(depth_mm)
    batch = depth.shape[:-2]
    height, width = depth.shape[-2:]
    size = transform.size_px
    cols, rows = _nearest_source(np.broadcast_to(transform.matrix, batch + (2, 3)), size)
    cols, rows = cols.reshape(batch + (-1,)), rows.reshape(batch + (-1,))
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = depth.reshape(batch + (height * width,))
    raw = np.take_along_axis(flat, np.where(inside, rows * width + cols, 0), axis=-1)
    raw = np.where(inside, raw, 0)
    crops = normalize_depth(raw, transform.center_uvd[..., 2:3], transform.depth_half_mm[..., None])
    return crops.reshape(batch + (size, size))


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the on-the-fly augmentations (all uniform).

    ``rotation_deg``: in-plane rotation in [-r, r]; ``scale``: cube scale range;
    ``shift_mm``: centre jitter in [-s, s] mm per axis; ``dropout``: fraction of
    crop pixels set to background, drawn in [0, dropout].
    """

    rotation_deg: float = 180.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift_mm: float = 8.0
    dropout: float = 0.0


@dataclass(frozen=True)
class AugmentParams:
    """Drawn augmentations for n crops: ``rotation_rad`` (n,), ``scale`` (n,), ``shift_mm`` (n, 3), ``dropout`` (n,)."""

    rotation_rad: np.ndarray
    scale: np.ndarray
    shift_mm: np.ndarray
    dropout: np.ndarray


def sample_augmentation(settings: Augmentation, rng: np.random.Generator, n: int) -> AugmentParams:
    """Draw ``n`` augmentations from ``settings``."""
    rotation = np.deg2rad(rng.uniform(-settings.rotation_deg, settings.rotation_deg, n))
    scale = rng.uniform(settings.scale[0], settings.scale[1], n)
    shift = rng.uniform(-settings.shift_mm, settings.shift_mm, (n, 3))
    dropout = rng.uniform(0.0, settings.dropout, n)
    return AugmentParams(rotation, scale, shift, dropout)


def augment_crops(
    crops: np.ndarray,
    joints_crop: np.ndarray,
    transform: CropTransform,
    params: AugmentParams,
    rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
) -> tuple[np.ndarray, np.ndarray, CropTransform]:
    """Augment crops (n, S, S) and their joints (n, J, 3) consistently.

    Each new crop is the old one rotated by ``rotation_rad`` about the centre,
    zoomed out by ``scale`` (the cube grows; depth is renormalized by the new
    half cube) and re-centred ``shift_mm`` away (x, y in the crop's pixel axes at
    the old cube's mm-per-pixel, z in depth). Content that was outside the cached
    crop becomes background. Returns the new crops, joints in the new crop
    coordinates and the new :class:`CropTransform` (whose inverse maps the new
    joints back to the same image uvd). ``rng`` draws the dropout pixels: one
    generator, or one per crop (results then independent of the batch's make-up).
    """
    crops = np.asarray(crops, dtype=np.float32)
    n, size = crops.shape[0], transform.size_px
    middle = (size - 1) / 2.0
    px_per_mm = size / (2.0 * transform.depth_half_mm)
    # A: new crop px -> old crop px, p = middle + s R (q - middle) + t
    linear = _rotation(-params.rotation_rad) * params.scale[:, None, None]
    shift_px = params.shift_mm[:, :2] * px_per_mm[:, None]
    offset = middle + shift_px - linear @ np.array([middle, middle])
    to_old = np.concatenate([linear, offset[..., None]], axis=-1)

    cols, rows = _nearest_source(to_old, size)
    cols, rows = cols.reshape(n, -1), rows.reshape(n, -1)
    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    values = np.take_along_axis(crops.reshape(n, -1), np.where(inside, rows * size + cols, 0), axis=-1)
    background = ~inside | (values >= 1.0)
    half_old = transform.depth_half_mm[:, None]
    half_new = half_old * params.scale[:, None]
    renorm = (values * half_old - params.shift_mm[:, 2:3]) / half_new
    renorm = np.where(background | (renorm > 1.0), 1.0, np.maximum(renorm, -1.0))
    if rng is not None and np.any(params.dropout > 0):
        if isinstance(rng, np.random.Generator):
            noise = rng.random(renorm.shape)
        else:
            noise = np.stack([generator.random(renorm.shape[1]) for generator in rng])
        renorm = np.where(noise < params.dropout[:, None], 1.0, renorm)
    new_crops = renorm.astype(np.float32).reshape(n, size, size)

    matrix = np.concatenate(
        [transform.matrix[:, :, :2] @ linear,
         (transform.matrix[:, :, :2] @ offset[..., None] + transform.matrix[:, :, 2:3])], axis=-1)
    centre_uv = matrix[:, :, :2] @ np.array([middle, middle]) + matrix[:, :, 2]
    centre_d = transform.center_uvd[:, 2] + params.shift_mm[:, 2]
    new_transform = CropTransform(matrix, np.concatenate([centre_uv, centre_d[:, None]], -1), half_new[:, 0], size)

    image_uvd = transform.to_image(joints_crop)
    return new_crops, new_transform.to_crop(image_uvd), new_transform
