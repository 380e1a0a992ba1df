"""Depth rendering of capsule hands in cluttered scenes, with depth-sensor artefacts.

Capsules (tapered, sphere-swept segments) are drawn as dense chains of spheres,
each ray-cast exactly through every pixel centre it may cover, into a z-buffer
(vectorized per size bucket). The scene adds what real frames hold around a
hand: a forearm (part of the hand's capsules), wall/floor planes, blobs of
clutter or a body behind the hand. The sensor model adds depth noise growing with
distance squared (structured light / time of flight, e.g. Khoshelham & Elberink,
Sensors 2012), holes at depth discontinuities and speckle dropouts, readings
beyond the sensor's range replaced by the format's no-reading value, and integer
millimetres as the files store them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpbench.data.camera import Camera
from hpbench.data.hand import CAPSULES, INDEX

__all__ = ["Scene", "capsule_spheres", "render_depth", "render_spheres"]

_CAPSULE_ENDS = np.array([[INDEX[a], INDEX[b]] for a, b, _, _ in CAPSULES])
_CAPSULE_RADII = np.array([[ra, rb] for _, _, ra, rb in CAPSULES])
# Half sizes of the pixel squares a sphere is tested on: few sizes (one vectorized
# pass each), none more than ~25 % larger than needed.
_BUCKETS = np.unique(np.round(1.25 ** np.arange(0, 38)).astype(int))
for _array in (_CAPSULE_ENDS, _CAPSULE_RADII, _BUCKETS):
    _array.setflags(write=False)


@dataclass(frozen=True)
class Scene:
    """Scene and sensor settings of the synthetic frames.

    ``max_range_mm``: readings beyond become the no-reading value; ``noise_mm``:
    depth noise sigma at 1 m (sigma = 0.5 + noise_mm * (z / 1 m)^2); ``edge_holes``:
    probability that a pixel at a depth jump above ``edge_jump_mm`` has no reading;
    ``speckle``: fraction of random missing pixels; ``clutter``: mean number of
    blobs behind the hand; ``walls``: probability of a background plane.
    """

    max_range_mm: float = 2000.0
    noise_mm: float = 1.5
    edge_holes: float = 0.35
    edge_jump_mm: float = 25.0
    speckle: float = 0.003
    clutter: float = 2.0
    walls: float = 0.9


def capsule_spheres(points: np.ndarray, scale: float = 1.0, *, spacing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Spheres (M, 3), radii (M,) that sweep the hand's capsules between skeleton ``points`` (P, 3).

    Consecutive spheres are at most ``spacing`` x their radius apart: the surface
    ripple between them is 1 - sqrt(1 - spacing^2 / 4) of the radius (3 % at 0.5,
    0.3 mm on a finger: below the files' 1 mm depth step).
    """
    ends = points[_CAPSULE_ENDS]  # (K, 2, 3)
    radii = _CAPSULE_RADII * scale
    length = np.linalg.norm(ends[:, 1] - ends[:, 0], axis=-1)
    counts = np.maximum(2, np.ceil(length / (spacing * radii.min(axis=1))).astype(int) + 1)
    owner = np.repeat(np.arange(len(ends)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    t = (np.arange(len(owner)) - start) / (counts[owner] - 1)
    centres = ends[owner, 0] + t[:, None] * (ends[owner, 1] - ends[owner, 0])
    return centres, radii[owner, 0] + t * (radii[owner, 1] - radii[owner, 0])


def render_spheres(zbuffer: np.ndarray, centres: np.ndarray, radii: np.ndarray, camera: Camera) -> None:
    """Ray-cast spheres (optical frame, mm) into ``zbuffer`` (H, W) in place (nearest wins).

    Rays go through pixel centres (integer u, v); a sphere only tests the pixels
    of its projected bounding square, in buckets of equal square size.
    """
    height, width = zbuffer.shape
    fy = abs(camera.fy)
    keep = centres[:, 2] - radii > 1.0
    centres, radii = centres[keep], radii[keep]
    if len(radii) == 0:
        return
    u = camera.fx * centres[:, 0] / centres[:, 2] + camera.cx
    v = fy * centres[:, 1] / centres[:, 2] + camera.cy
    reach = max(camera.fx, fy) * radii / (centres[:, 2] - radii) + 1.5
    half = _BUCKETS[np.searchsorted(_BUCKETS, np.minimum(reach, _BUCKETS[-1]))]
    flat = zbuffer.reshape(-1)
    for size in np.unique(half):
        pick = np.nonzero(half == size)[0]
        offsets = np.arange(-size, size + 1)
        cols = np.rint(u[pick])[:, None, None].astype(int) + offsets[None, None, :]
        rows = np.rint(v[pick])[:, None, None].astype(int) + offsets[None, :, None]
        a = (cols - camera.cx) / camera.fx
        b = (rows - camera.cy) / fy
        c = centres[pick]
        dot = a * c[:, 0, None, None] + b * c[:, 1, None, None] + c[:, 2, None, None]
        norm2 = a * a + b * b + 1.0
        disc = dot * dot - norm2 * ((c * c).sum(-1) - radii[pick] ** 2)[:, None, None]
        hit = (disc >= 0) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        if not hit.any():
            continue
        depth = (dot - np.sqrt(np.where(hit, disc, 0.0))) / norm2
        index = np.broadcast_to(rows * width + cols, hit.shape)[hit]
        np.minimum.at(flat, index, depth[hit])


def _planes(zbuffer: np.ndarray, camera: Camera, rng: np.random.Generator, near_mm: float, count: int) -> None:
    """Background planes (walls, a table) at least ``near_mm`` away along the optical axis."""
    height, width = zbuffer.shape
    a = (np.arange(width) - camera.cx) / camera.fx
    b = (np.arange(height) - camera.cy) / abs(camera.fy)
    for _ in range(count):
        normal = np.array([rng.normal(0, 0.35), rng.normal(0, 0.35), -1.0])
        if rng.random() < 0.3:  # a floor or table: normal mostly up the image (-y)
            normal = np.array([rng.normal(0, 0.2), -1.0, rng.normal(-0.4, 0.2)])
        normal /= np.linalg.norm(normal)
        anchor = np.array([0.0, 0.0, near_mm + rng.uniform(0, 900)])
        if normal[1] < -0.5:  # below the hand
            anchor = np.array([0.0, rng.uniform(150, 500), near_mm - 150])
        denom = normal[0] * a[None, :] + normal[1] * b[:, None] + normal[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = (normal @ anchor) / denom
        depth = np.where((depth > near_mm - 200) & np.isfinite(depth), depth, np.inf)
        np.minimum(zbuffer, depth, out=zbuffer)


def _sensor(zbuffer: np.ndarray, scene: Scene, rng: np.random.Generator, no_reading_mm: float) -> np.ndarray:
    far = ~(zbuffer <= scene.max_range_mm)
    seen = np.where(far, np.float32(1e6), zbuffer)  # beyond range: no edges among themselves
    depth = np.where(far, 0.0, zbuffer)
    sigma = 0.5 + scene.noise_mm * (depth / 1000.0) ** 2
    depth = depth + rng.standard_normal(depth.shape, dtype=np.float32) * sigma
    jump = np.zeros(depth.shape, dtype=bool)
    big_u = np.abs(np.diff(seen, axis=1)) > scene.edge_jump_mm
    big_v = np.abs(np.diff(seen, axis=0)) > scene.edge_jump_mm
    jump[:, 1:] |= big_u
    jump[:, :-1] |= big_u
    jump[1:] |= big_v
    jump[:-1] |= big_v
    holes = (jump & (rng.random(depth.shape) < scene.edge_holes)) | (rng.random(depth.shape) < scene.speckle)
    depth[holes] = 0.0
    depth[far] = no_reading_mm
    return np.rint(depth).astype(np.float32)


def render_depth(
    points: np.ndarray,
    camera: Camera,
    rng: np.random.Generator,
    *,
    hand_scale: float = 1.0,
    scene: Scene = Scene(),
    no_reading_mm: float = 0.0,
) -> np.ndarray:
    """One (H, W) float32 depth frame in integer mm: the hand of skeleton ``points`` (P, 3),
    optical frame) in a random scene drawn from ``rng``; 0 = hole, ``no_reading_mm`` = beyond range."""
    zbuffer = np.full((camera.height_px, camera.width_px), np.inf, dtype=np.float64)
    hand_far = float(points[:, 2].max())
    if rng.random() < scene.walls:
        _planes(zbuffer, camera, rng, hand_far + rng.uniform(150, 600), 1 + int(rng.random() < 0.4))
    blobs = rng.poisson(scene.clutter)
    if blobs:
        radius = rng.uniform(30, 180, blobs)
        depth = hand_far + 80 + radius + rng.uniform(0, 700, blobs)
        u = rng.uniform(0, camera.width_px, blobs)
        v = rng.uniform(0, camera.height_px, blobs)
        centres = np.stack([(u - camera.cx) * depth / camera.fx, (v - camera.cy) * depth / abs(camera.fy), depth], -1)
        render_spheres(zbuffer, centres, radius, camera)
    centres, radii = capsule_spheres(points, float(np.clip(hand_scale, 0.85, 1.15)))
    render_spheres(zbuffer, centres, radii, camera)
    return _sensor(zbuffer.astype(np.float32), scene, rng, no_reading_mm)
