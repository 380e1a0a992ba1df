"""A kinematic hand: palm + five fingers, joint limits, random poses, and fitting to labels.

Geometry and limits are typical adult values (wrist to middle knuckle 90 mm,
knuckles ~20 mm apart, phalanges 19-45 mm, finger radii 6-10 mm) and the usual
active ranges of motion (MCP flexion -15..90 deg, abduction +-20, PIP 0..110,
DIP 0..80; thumb CMC flexion -20..50 and abduction -15..55, MCP -10..60, IP
-15..85; wrist flexion +-60, deviation -20..30). Everything is in mm.

Frames. The hand frame has its origin at the wrist centre, +y towards the
middle knuckle, +z out of the back of the hand, thumb towards -x (a right hand).
Poses place it in the camera's *optical* frame (x right, y down the image, z
forward; ``optical_from_uvd`` converts from a dataset's image uvd whatever the
sign of its fy). ``mirror = -1`` flips hand x (a left hand).

The forward kinematics is written once in torch so that the same code samples
random poses (no gradients) and fits a pose to labelled joints (autograd);
torch is imported inside those functions, so that the renderer's worker
processes, which only need the constants, start without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpbench.data.camera import Camera

if TYPE_CHECKING:
    import torch

__all__ = [
    "CAPSULES",
    "FINGERS",
    "POINTS",
    "HandPose",
    "fit_pose",
    "forward_kinematics",
    "optical_from_uvd",
    "sample_poses",
    "skeleton_from_labels",
    "uvd_from_optical",
]

def _constant(values: object) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


FINGERS = ("index", "middle", "ring", "pinky")
_FINGER_PARTS = ("mcp", "pip", "dip", "tip")

# Hand-frame geometry, mm (thumb towards -x).
_MCP = _constant([[-22.0, 86.0, 1.0], [0.0, 90.0, 1.0], [19.0, 85.0, 0.0], [36.0, 75.0, -3.0]])
_SPLAY_DEG = _constant([8.0, 0.0, -7.0, -14.0])  # rest direction in the palm plane, + towards the thumb
_PHALANX = _constant([[40.0, 24.0, 20.0], [45.0, 28.0, 21.0], [42.0, 27.0, 21.0], [33.0, 20.0, 19.0]])
_THUMB_CMC = _constant([-20.0, 22.0, -8.0])
_THUMB_BONES = _constant([42.0, 32.0, 26.0])  # metacarpal, proximal, distal
_FOREARM_MM = 230.0
_PALM_POINTS = {  # rigid with the palm
    "wrist": (0.0, 0.0, 0.0),
    "wrist_radial": (-24.0, 2.0, 0.0),
    "wrist_ulnar": (24.0, 2.0, 0.0),
    "palm_base": (0.0, 30.0, 0.0),
    "palm_centre": (0.0, 50.0, 0.0),
    "palm_index": (-12.0, 62.0, 0.0),
    "palm_pinky": (22.0, 55.0, -1.0),
}

# Angles (B, 22): per finger (index..pinky) MCP flexion, MCP abduction, PIP, DIP;
# thumb CMC flexion, CMC abduction, MCP, IP; wrist flexion, deviation. Radians.
_LIMITS_DEG = np.array(
    [[-15, 90], [-20, 20], [0, 110], [0, 80]] * 4
    + [[-20, 50], [-15, 55], [-10, 60], [-15, 85]]
    + [[-60, 60], [-20, 30]],
    dtype=np.float64,
)
LIMITS = _constant(np.deg2rad(_LIMITS_DEG))
NUM_ANGLES = len(LIMITS)

_MIDPOINTS = tuple(
    (f"{finger}_{name}", f"{finger}_{a}", f"{finger}_{b}")
    for finger in FINGERS for name, a, b in (("proximal_mid", "mcp", "pip"), ("distal_mid", "dip", "tip"))
) + (
    ("thumb_metacarpal_mid", "thumb_cmc", "thumb_mcp"),
    ("thumb_proximal_mid", "thumb_mcp", "thumb_ip"),
)
POINTS: tuple[str, ...] = (
    tuple(_PALM_POINTS)
    + tuple(f"{finger}_{part}" for finger in FINGERS for part in _FINGER_PARTS)
    + ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "forearm")
    + tuple(name for name, _, _ in _MIDPOINTS)
)
"""Names of the skeleton points, in the order of :func:`forward_kinematics`' output."""
INDEX = {name: i for i, name in enumerate(POINTS)}

# Kinematic chains from the wrist outwards (used to bend unlabelled points onto labels).
CHAINS = tuple(("wrist",) + tuple(f"{finger}_{part}" for part in _FINGER_PARTS) for finger in FINGERS) + (
    ("wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"),
)

# Capsules (start point, end point, start radius, end radius) in mm: the rendered volume.
_FINGER_RADII = _constant([[9.5, 8.6, 8.0, 7.2, 7.0, 6.4], [9.8, 8.9, 8.3, 7.5, 7.2, 6.6],
                          [9.3, 8.5, 7.9, 7.2, 6.9, 6.3], [8.3, 7.6, 7.0, 6.5, 6.3, 5.8]])
CAPSULES: tuple[tuple[str, str, float, float], ...] = (
    ("wrist_radial", "index_mcp", 12.5, 10.5),
    ("wrist", "middle_mcp", 13.0, 10.5),
    ("wrist", "ring_mcp", 12.5, 10.0),
    ("wrist_ulnar", "pinky_mcp", 12.0, 9.5),
    ("index_mcp", "pinky_mcp", 10.5, 9.5),
    ("palm_index", "palm_pinky", 12.5, 12.0),
    ("wrist_radial", "wrist_ulnar", 15.0, 15.0),
    ("thumb_cmc", "thumb_mcp", 13.5, 10.0),
    ("wrist_radial", "thumb_mcp", 11.0, 9.5),
    ("thumb_mcp", "thumb_ip", 9.8, 8.8),
    ("thumb_ip", "thumb_tip", 8.6, 7.6),
    ("wrist", "forearm", 25.0, 34.0),
) + tuple(
    (f"{finger}_{a}", f"{finger}_{b}", float(_FINGER_RADII[i, 2 * k]), float(_FINGER_RADII[i, 2 * k + 1]))
    for i, finger in enumerate(FINGERS)
    for k, (a, b) in enumerate((("mcp", "pip"), ("pip", "dip"), ("dip", "tip")))
)
"""The capsules that make the rendered hand, forearm included: (point, point, radius mm, radius mm)."""


def optical_from_uvd(uvd: np.ndarray, camera: Camera) -> np.ndarray:
    """(..., 3) image uvd -> optical-frame xyz mm (x right, y down the image, z forward)."""
    xyz = camera.uvd_to_xyz(uvd)
    return xyz * np.array([1.0, np.sign(camera.fy), 1.0])


def uvd_from_optical(xyz: np.ndarray, camera: Camera) -> np.ndarray:
    """(..., 3) optical-frame xyz mm -> image uvd."""
    return camera.xyz_to_uvd(np.asarray(xyz, dtype=np.float64) * np.array([1.0, np.sign(camera.fy), 1.0]))


@dataclass(frozen=True)
class HandPose:
    """Batched hand poses (numpy): ``angles`` (B, 22) rad, ``rotation`` (B, 3, 3) hand -> optical,
    ``translation`` (B, 3) wrist position mm, ``scale`` (B,), ``mirror`` (B,) +-1."""

    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    mirror: np.ndarray


# --------------------------------------------------------------------------- kinematics


def _rot_x(angle: torch.Tensor) -> torch.Tensor:
    import torch

    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
                        torch.stack([zero, sin, cos], -1)], -2)


def _rot_y(angle: torch.Tensor) -> torch.Tensor:
    import torch

    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, zero, sin], -1), torch.stack([zero, one, zero], -1),
                        torch.stack([-sin, zero, cos], -1)], -2)


def _rot_z(angle: torch.Tensor) -> torch.Tensor:
    import torch

    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def _hand_frame_points(angles: torch.Tensor) -> torch.Tensor:
    """(B, 22) angles -> (B, P, 3) skeleton points in the hand frame (mm, right hand, unit scale)."""
    import torch

    dtype = angles.dtype
    batch = angles.shape[0]
    def const(values: object) -> torch.Tensor:  # a copy: the module constants are read-only arrays
        return torch.tensor(np.asarray(values), dtype=dtype)
    y_axis = const([0.0, 1.0, 0.0])
    finger = angles[:, :16].reshape(batch, 4, 4)
    splay = const(np.deg2rad(_SPLAY_DEG))
    # Flexion turns +y towards the palm (-z): a rotation about x by minus the angle.
    r1 = _rot_z(splay + finger[..., 1]) @ _rot_x(-finger[..., 0])
    r2 = r1 @ _rot_x(-finger[..., 2])
    r3 = r2 @ _rot_x(-finger[..., 3])
    lengths = const(_PHALANX)
    mcp = const(_MCP).expand(batch, 4, 3)
    pip = mcp + (r1 @ y_axis) * lengths[:, 0:1]
    dip = pip + (r2 @ y_axis) * lengths[:, 1:2]
    tip = dip + (r3 @ y_axis) * lengths[:, 2:3]
    fingers = torch.stack([mcp, pip, dip, tip], 2).reshape(batch, 16, 3)

    thumb = angles[:, 16:20]
    # Rest: pointing up and out of the palm, pronated so that flexion crosses the palm.
    rest = (_rot_z(const(np.deg2rad(40.0))) @ _rot_y(const(np.deg2rad(-60.0)))
            @ _rot_x(const(np.deg2rad(-20.0))))
    t1 = rest @ _rot_z(thumb[:, 1]) @ _rot_x(-thumb[:, 0])
    t2 = t1 @ _rot_x(-thumb[:, 2])
    t3 = t2 @ _rot_x(-thumb[:, 3])
    bones = const(_THUMB_BONES)
    cmc = const(_THUMB_CMC).expand(batch, 3)
    t_mcp = cmc + (t1 @ y_axis) * bones[0]
    t_ip = t_mcp + (t2 @ y_axis) * bones[1]
    t_tip = t_ip + (t3 @ y_axis) * bones[2]

    wrist = angles[:, 20:22]
    forearm = (_rot_z(wrist[:, 1]) @ _rot_x(wrist[:, 0]) @ const([0.0, -_FOREARM_MM, 0.0]))
    palm = const(np.array(list(_PALM_POINTS.values()))).expand(batch, len(_PALM_POINTS), 3)
    core = torch.cat([palm, fingers, torch.stack([cmc, t_mcp, t_ip, t_tip, forearm], 1)], 1)
    ends = torch.as_tensor([[INDEX[a] for _, a, _ in _MIDPOINTS], [INDEX[b] for _, _, b in _MIDPOINTS]])
    mids = (core[:, ends[0]] + core[:, ends[1]]) / 2  # one gather each: cheap backward
    return torch.cat([core, mids], 1)


def forward_kinematics(
    angles: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor,
    mirror: torch.Tensor,
) -> torch.Tensor:
    """Skeleton points (B, P, 3) in the optical frame, mm, in the order of :data:`POINTS`.

    ``angles`` (B, 22) rad (clamped to the joint limits by the caller),
    ``rotation`` (B, 3, 3), ``translation`` (B, 3) the wrist, ``scale`` (B,), ``mirror`` (B,) +-1.
    """
    import torch

    local = _hand_frame_points(angles)
    flip = torch.stack([mirror, torch.ones_like(mirror), torch.ones_like(mirror)], -1)
    local = local * flip[:, None, :] * scale[:, None, None]
    return local @ rotation.transpose(1, 2) + translation[:, None, :]


def skeleton(pose: HandPose) -> np.ndarray:
    """(B, P, 3) optical-frame skeleton points of numpy poses."""
    import torch

    with torch.no_grad():
        points = forward_kinematics(*(torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (
            pose.angles, pose.rotation, pose.translation, pose.scale, pose.mirror)))
    return points.numpy()


# --------------------------------------------------------------------------- random poses

# Palm towards the camera, fingers up the image: hand y -> optical -y, z -> +z, x -> -x.
_FACING_CAMERA = _constant([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])


def _axis_rotations(axis: int, angles: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(angles), np.sin(angles)
    out = np.zeros(angles.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = cos, -sin, sin, cos
    return out


def sample_poses(rng: np.random.Generator, n: int, camera: Camera, depth_range_mm: tuple[float, float]) -> HandPose:
    """``n`` random plausible poses seen by ``camera`` with the palm centre at a depth in ``depth_range_mm``.

    Finger flexions share a grasp level (open hand .. fist, U-shaped so both ends
    are common) plus per-finger noise, with occasional pointing-style outliers;
    DIP follows PIP (~2/3, the tendon coupling). Orientation: palm or back
    (25 %) towards the camera, tilted up to +-55 deg and rolled up to +-100 deg,
    with the forearm receding from the camera; the hand scale varies by +-13 %.
    """
    deg = np.deg2rad
    grasp = rng.beta(0.6, 0.6, n)
    angles = np.zeros((n, NUM_ANGLES))
    for f in range(4):
        own = np.clip(grasp + rng.normal(0.0, 0.18, n), 0.0, 1.0)
        outlier = rng.random(n) < 0.15
        own = np.where(outlier, rng.random(n) < 0.5, own).astype(np.float64)
        angles[:, 4 * f] = own * deg(85) + rng.normal(0, deg(10), n) - deg(5)
        angles[:, 4 * f + 1] = (1 - own) * rng.uniform(deg(-12), deg(12), n) + rng.normal(0, deg(3), n)
        angles[:, 4 * f + 2] = own * deg(100) + rng.normal(0, deg(10), n)
        angles[:, 4 * f + 3] = angles[:, 4 * f + 2] * 0.66 + rng.normal(0, deg(6), n)
    thumb = np.clip(grasp + rng.normal(0.0, 0.25, n), 0.0, 1.0)
    angles[:, 16] = thumb * deg(45) + rng.normal(0, deg(8), n) - deg(5)
    angles[:, 17] = rng.uniform(deg(-10), deg(50), n)
    angles[:, 18] = thumb * deg(50) + rng.normal(0, deg(8), n)
    angles[:, 19] = thumb * deg(70) + rng.normal(0, deg(10), n)
    angles[:, 20] = rng.uniform(deg(-40), deg(40), n)
    angles[:, 21] = rng.uniform(deg(-15), deg(25), n)
    angles = np.clip(angles, LIMITS[:, 0], LIMITS[:, 1])

    rotation = _orientations(rng, n)
    scale = rng.uniform(0.87, 1.13, n)
    mirror = np.ones(n)
    # The hand is the nearest thing in the real datasets: the forearm must recede
    # from the camera (its far end at least 20 % of its length deeper than the wrist).
    for _ in range(50):
        points = skeleton(HandPose(angles, rotation, np.zeros((n, 3)), scale, mirror))
        towards = points[:, INDEX["forearm"], 2] - points[:, INDEX["wrist"], 2] < 0.2 * _FOREARM_MM * scale
        if not towards.any():
            break
        rotation[towards] = _orientations(rng, int(towards.sum()))
        angles[towards, 20:22] = np.column_stack([rng.uniform(deg(-40), deg(40), int(towards.sum())),
                                                  rng.uniform(deg(-15), deg(25), int(towards.sum()))])

    depth = rng.uniform(*depth_range_mm, n)
    u = rng.uniform(0.3, 0.7, n) * camera.width_px
    v = rng.uniform(0.3, 0.7, n) * camera.height_px
    palm_target = optical_from_uvd(np.stack([u, v, depth], -1), camera)
    palm_local = np.array(_PALM_POINTS["palm_centre"])
    translation = palm_target - scale[:, None] * (rotation @ palm_local)
    pose = HandPose(angles, rotation, translation, scale, mirror)
    for _ in range(3):
        pose = _into_view(pose, camera)
    return pose


def _orientations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Palm (75 %) or back towards the camera, turned +-60 deg about the hand's long axis,
    tilted +-55 deg, rolled +-100 deg in the image plane."""
    deg = np.deg2rad
    yaw = rng.uniform(deg(-60), deg(60), n) + np.where(rng.random(n) < 0.25, np.pi, 0.0)
    pitch = rng.uniform(deg(-55), deg(55), n)
    roll = rng.uniform(deg(-100), deg(100), n)
    return _axis_rotations(2, roll) @ _axis_rotations(0, pitch) @ _axis_rotations(1, yaw) @ _FACING_CAMERA


def _into_view(pose: HandPose, camera: Camera, margin_px: float = 4.0) -> HandPose:
    """Slide hands sideways (at constant depth) so that all hand points project inside the image."""
    points = skeleton(pose)
    hand = np.array([name != "forearm" for name in POINTS])
    uvd = uvd_from_optical(points[:, hand], camera)
    shift = np.zeros((len(points), 3))
    for axis, extent, focal in ((0, camera.width_px, camera.fx), (1, camera.height_px, abs(camera.fy))):
        low, high = uvd[..., axis].min(1), uvd[..., axis].max(1)
        room_low, room_high = margin_px - low, (extent - 1 - margin_px) - high
        move = np.where(room_low > 0, room_low, np.where(room_high < 0, room_high, 0.0))
        move = np.where((room_low > 0) & (room_high < 0), (room_low + room_high) / 2, move)  # too big: centre it
        shift[:, axis] = move * points[:, INDEX["palm_centre"], 2] / focal
    return HandPose(pose.angles, pose.rotation, pose.translation + shift, pose.scale, pose.mirror)


# --------------------------------------------------------------------------- fitting to labels


def _kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation R, scale s, translation t minimizing |s R source + t - target| (no reflection)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    scale = float((sigma * np.diag(fix)).sum() / max((a**2).sum(), 1e-9))
    return rotation, scale, mu_t - scale * rotation @ mu_s


def _axis_angle_matrix(vector: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (B, 3) axis-angle -> (B, 3, 3)."""
    import torch

    angle = vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = vector / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                         torch.stack([-y, x, zero], -1)], -2)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=vector.dtype).expand_as(cross)
    return eye + sin * cross + (1 - cos) * (cross @ cross)


def fit_pose(
    target: np.ndarray, names: tuple[str, ...], *, steps: int = 200, mirrors: tuple[float, ...] = (1.0, -1.0)
) -> tuple[HandPose, np.ndarray]:
    """Fit the kinematic hand to labelled joints: ``target`` (N, J, 3) optical-frame mm, ``names``
    the skeleton point of each joint.

    Returns the poses and the per-frame RMS residual (mm). Batched Adam on joint
    angles (kept inside the limits by a tanh), rotation (axis-angle, started from a
    Kabsch fit of the open hand), translation and log-scale. Each hand of
    ``mirrors`` (+1 right, -1 left) is fitted for a quarter of the steps; each frame
    keeps the closer one for the rest. Runs single-threaded (tiny tensors: threads
    only add overhead) and restores torch's thread count afterwards.
    """
    import torch

    target = np.asarray(target, dtype=np.float64)
    n = len(target)
    columns = [INDEX[name] for name in names]
    rows, mirror_rows, init = [], [], []
    for sign in mirrors:
        rest = skeleton(HandPose(np.zeros((1, NUM_ANGLES)), np.eye(3)[None], np.zeros((1, 3)), np.ones(1),
                                 np.array([sign])))[0, columns]
        init.extend(_kabsch(rest, frame) for frame in target)
        rows.append(np.arange(n))
        mirror_rows.append(np.full(n, sign))
    frame_of = np.concatenate(rows)
    state = {
        "raw": np.zeros((len(frame_of), NUM_ANGLES)),
        "axis": _matrix_to_axis_angle(np.stack([r for r, _, _ in init])),
        "translation": np.stack([t for _, _, t in init]),
        "log_scale": np.log(np.clip([s for _, s, _ in init], 0.6, 1.6)),
    }
    mirror = np.concatenate(mirror_rows)
    low, high = (torch.tensor(LIMITS[:, i]) for i in (0, 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm = steps // 4 if len(mirrors) > 1 else 0
        state, error = _adam(state, target[frame_of], mirror, columns, low, high, warm, steps)
        if warm:
            choice = np.argmin(error.reshape(len(mirrors), n), axis=0) * n + np.arange(n)
            state = {key: value[choice] for key, value in state.items()}
            mirror = mirror[choice]
            state, error = _adam(state, target, mirror, columns, low, high, steps - warm, steps, offset=warm)
        with torch.no_grad():
            angles = (low + high) / 2 + (high - low) / 2 * torch.tanh(torch.as_tensor(state["raw"]))
            rotation = _axis_angle_matrix(torch.as_tensor(state["axis"])).numpy()
    finally:
        torch.set_num_threads(threads)
    pose = HandPose(angles.numpy(), rotation, state["translation"], np.exp(state["log_scale"]), mirror)
    return pose, error


def _adam(state: dict[str, np.ndarray], target: np.ndarray, mirror: np.ndarray, columns: list[int],
          low: torch.Tensor, high: torch.Tensor, count: int, total: int, offset: int = 0
          ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``count`` Adam steps of the fit (learning rate 0.05, 0.01 for the last 30 % of ``total``)."""
    import torch

    params = {key: torch.as_tensor(value).clone().requires_grad_(True) for key, value in state.items()}
    goal, mirror_t = torch.as_tensor(target), torch.as_tensor(mirror)
    optimizer = torch.optim.Adam(params.values(), lr=0.05)

    def per_frame() -> torch.Tensor:
        angles = (low + high) / 2 + (high - low) / 2 * torch.tanh(params["raw"])
        points = forward_kinematics(angles, _axis_angle_matrix(params["axis"]), params["translation"],
                                    params["log_scale"].exp(), mirror_t)
        return ((points[:, columns] - goal) ** 2).sum(-1).mean(-1)

    for step in range(offset, offset + count):
        for group in optimizer.param_groups:
            group["lr"] = 0.05 if step < total * 0.7 else 0.01
        optimizer.zero_grad()
        (per_frame().sum() + 1e-2 * (params["raw"] ** 2).sum()).backward()
        optimizer.step()
    with torch.no_grad():
        error = per_frame().sqrt().numpy()
    return {key: value.detach().numpy() for key, value in params.items()}, error


def _matrix_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    cos = np.clip((np.trace(rotation, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    vector = np.stack([rotation[..., 2, 1] - rotation[..., 1, 2], rotation[..., 0, 2] - rotation[..., 2, 0],
                       rotation[..., 1, 0] - rotation[..., 0, 1]], -1)
    norm = np.linalg.norm(vector, axis=-1, keepdims=True)
    small = norm[..., 0] < 1e-8
    axis = np.where(small[..., None], np.array([1.0, 0.0, 0.0]), vector / np.maximum(norm, 1e-12))
    # angle ~ pi: axis from the largest diagonal of (R + I) / 2
    near_pi = small & (angle > 3.0)
    if near_pi.any():
        sym = (rotation[near_pi] + np.eye(3)) / 2
        column = np.argmax(np.diagonal(sym, axis1=-2, axis2=-1), -1)
        picked = sym[np.arange(len(sym)), :, column]
        axis[near_pi] = picked / np.linalg.norm(picked, axis=-1, keepdims=True)
    return axis * np.where(small & ~near_pi, 0.0, angle)[..., None]


def _similarity_between(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray):
    """Map sending a0 -> b0 and a1 -> b1 with the minimal rotation and a uniform scale; (K,3) batched."""
    da, db = a1 - a0, b1 - b0
    la, lb = np.linalg.norm(da, axis=-1), np.linalg.norm(db, axis=-1)
    ua, ub = da / np.maximum(la, 1e-9)[..., None], db / np.maximum(lb, 1e-9)[..., None]
    axis = np.cross(ua, ub)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(ua * ub, -1)
    k = axis / np.maximum(sin, 1e-12)[..., None]
    cross = np.zeros(k.shape[:-1] + (3, 3))
    cross[..., 0, 1], cross[..., 0, 2], cross[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    cross = cross - np.swapaxes(cross, -1, -2)
    rotation = np.eye(3) + sin[..., None, None] * cross + (1 - cos)[..., None, None] * (cross @ cross)
    scale = lb / np.maximum(la, 1e-9)

    def apply(points: np.ndarray) -> np.ndarray:
        return b0 + scale[..., None] * np.einsum("...ij,...j->...i", rotation, points - a0)

    return apply


def skeleton_from_labels(
    target: np.ndarray, names: tuple[str, ...], *, steps: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skeleton points (N, P, 3) passing exactly through labelled joints, the fit's RMS (N,) mm
    and the fitted hand scale (N,).

    ``target`` (N, J, 3) optical-frame mm; ``names`` their skeleton points. The
    kinematic hand is fitted (:func:`fit_pose`); then labelled points are set to
    their labels, unlabelled points of a finger chain are carried by the
    similarity that maps the fitted neighbouring labelled (or anchored) points
    onto their labels, and the palm's other points follow the best rigid + scale
    map of all labelled points. Capsules drawn between these points pass through
    every label.
    """
    target = np.asarray(target, dtype=np.float64)
    pose, residual = fit_pose(target, names, steps=steps)
    fitted = skeleton(pose)
    columns = [INDEX[name] for name in names]
    mapped = np.empty_like(fitted)
    for frame in range(len(target)):
        rotation, scale, shift = _kabsch(fitted[frame, columns], target[frame])
        mapped[frame] = scale * fitted[frame] @ rotation.T + shift
    out = mapped.copy()
    anchored = np.zeros(len(POINTS), dtype=bool)
    anchored[columns] = True
    anchored[INDEX["wrist"]] = True  # placed by the global map when not labelled
    out[:, columns] = target
    for chain in CHAINS:
        ids = [INDEX[name] for name in chain]
        known = [k for k, i in enumerate(ids) if anchored[i]]
        for k, i in enumerate(ids):
            if anchored[i]:
                continue
            before = [j for j in known if j < k]
            after = [j for j in known if j > k]
            if before and after:
                a, b = ids[before[-1]], ids[after[0]]
                move = _similarity_between(fitted[:, a], fitted[:, b], out[:, a], out[:, b])
                out[:, i] = move(fitted[:, i])
            elif before:  # past the last labelled point: follow it
                a = ids[before[-1]]
                out[:, i] = mapped[:, i] + (out[:, a] - mapped[:, a])
    wrist, forearm = INDEX["wrist"], INDEX["forearm"]
    out[:, forearm] = mapped[:, forearm] + (out[:, wrist] - mapped[:, wrist])
    for name, a, b in _MIDPOINTS:
        if not anchored[INDEX[name]]:
            out[:, INDEX[name]] = (out[:, INDEX[a]] + out[:, INDEX[b]]) / 2
    return out, residual, pose.scale
