"""HandFoldingNet: a PointNet++ encoder and a decoder that folds a 2D hand skeleton into 3D joints.

Cheng, Park & Ko, "HandFoldingNet: A 3D Hand Pose Estimation Network Using
Multiscale-Feature Guided Folding of a 2D Hand Skeleton", ICCV 2021. Original code:
https://github.com/cwc1260/HandFold (its point preprocessing is HandPointNet's,
Ge et al., CVPR 2018). Rebuilt from the paper, design/baselines.md and the widths
and radii of the original; no code copied.

Network (widths as the original, 1,282,505 parameters for any J):
- encoder: 1024 points x (xyz, normal) -> 512 centres x 64 neighbours, shared MLP
  [32, 32, 128], max -> 128 centres x 64 neighbours among the 512 (offset xyz +
  128-d feature), [64, 64, 256], max -> with the centre xyz, [128, 128, 512], max
  over the 128 centres -> 512-d global code. Neighbours: the 64 nearest, those
  outside the ball (squared radius 0.015 at level 1, 0.04 at level 2) replaced by
  the nearest, as the original's kNN + ball query.
- global folding: a fixed 2D skeleton template (one 2D point per joint) with the
  code -> 1x1 convs 256, 256, 128 (BN + ReLU) -> 3: the first joint estimate.
- two local foldings: per joint, the 64 level-1 centres nearest the estimate
  (squared radius 0.16; offset xyz + 128-d feature) with the estimate, the joint's
  feature and the features of its two kinematic neighbours -> 256, 256, 256, max
  over the 64 -> 256, 256 -> 3, an offset added to the estimate. The first uses
  the global folding's 128-d joint features, the second the 256-d pooled features
  of the first.

Point input inside ``forward`` (the zoo's input is the depth crop; ``sample_points``):
the crop's foreground pixels (normalized depth in [-1, 1)) are back-projected into
the crop cube, x = (2u + 1) / S - 1, y = (2v + 1) / S - 1, z = d (all three axes span
the cube, so the frame is metric up to the crop's near-orthographic perspective,
as V2V's voxelization treats it). As HandPointNet's preprocessing: PCA of all
foreground points (first axis pointing up the image, third away from the camera,
second their cross product), centred at their mean and divided by 1.2 x their
extent along the first axis; 1024 of them sampled (all of them, repeated, when
fewer). Choices where the original needs data we do not have or is random:
- sampling: the pixels of evenly spaced ranks in raster order, in train and eval
  mode alike (deterministic, spatially stratified); the level-1 and level-2
  centres are every other / every fourth sample. The original samples the 1024
  points once per frame offline (randomly), then takes a random subset as centres
  at every step, also at test time. Random centres made the loss too noisy to fall
  in a few steps on a batch of 4 (tests/test_models.py); the harness's crop
  augmentation supplies the randomness instead.
- normals: a weighted least-squares plane through the 5 x 5 pixel window of each
  sampled pixel (foreground neighbours within 0.1 depth units of it), oriented
  towards the camera; the original fits PCA planes to the 30 nearest points.
- the joints' out-of-ball neighbours are replaced by the nearest point (the
  original uses the point whose index equals the joint's).
- the template and kinematic neighbours are ours for ICVL (16 joints) and NYU
  (14); other joint counts get a chain (the original has ICVL and MSRA only).
The network's joints, in the normalized frame, are mapped back to the crop: u, v
in crop px, d normalized.

Loss (paper): Smooth L1 (beta 0.01) on each folding stage in the normalized frame,
stages weighted 1, 1, 2, summed over x, y, z and averaged over the counted joints
(the original's extra factor 3J on a batch sum is dropped: Adam is scale-invariant).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hpbench.models._registry import register_model
from hpbench.models.base import HandPoseModel, masked_joint_mean

__all__ = [
    "HandFoldOutput",
    "HandFoldingNet",
    "LocalFolding",
    "PointCloud",
    "PointFrame",
    "SetAbstraction",
    "crop_to_frame",
    "frame_to_crop",
    "group_points",
    "handfold_loss",
    "sample_points",
    "skeleton_template",
]

ENCODER_WIDTHS = ((32, 32, 128), (64, 64, 256), (128, 128, 512))
GLOBAL_FOLD_WIDTHS = (256, 256, 128)
LOCAL_GROUP_WIDTHS = (256, 256, 256)
LOCAL_HEAD_WIDTHS = (256, 256)
BALL_RADIUS_SQ = (0.015, 0.04, 0.16)
"""Squared ball radii in the normalized frame: level 1, level 2, around the joints (the original's)."""
BOX_SCALE = 1.2
"""The normalized frame's unit: 1.2 x the foreground's extent along its first principal axis."""
MIN_BOX = 0.05
"""Smallest box (half-cube units), so that an empty or one-pixel crop gives finite points."""
NORMAL_WINDOW = 5
NORMAL_DEPTH_GAP = 0.1
"""Window pixels whose depth differs from the centre's by more (normalized units) are another surface."""
SMOOTH_L1_BETA = 0.01
"""The original's smooth L1 with sigma 10: beta = 1 / sigma^2, in the normalized frame."""
STAGE_WEIGHTS = (1.0, 1.0, 2.0)

# Skeleton templates: (x, y) per joint in the normalized frame's units, fingers along +y,
# thumb towards +x; and each joint's two kinematic neighbours (towards the wrist, towards
# the tip; a tip names itself, as in the original).
_ICVL_TEMPLATE = (
    (0.0, 0.0),  # palm
    (0.16, 0.02), (0.26, 0.12), (0.34, 0.22),  # thumb root, mid, tip
    (0.20, 0.22), (0.22, 0.36), (0.23, 0.47),  # index
    (0.02, 0.28), (0.02, 0.44), (0.02, 0.55),  # middle
    (-0.12, 0.24), (-0.14, 0.38), (-0.15, 0.48),  # ring
    (-0.20, 0.14), (-0.22, 0.24), (-0.23, 0.32),  # pinky
)  # fmt: skip
_ICVL_NEIGHBOURS = (
    (1, 13),
    (0, 2), (1, 3), (2, 3),
    (0, 5), (4, 6), (5, 6),
    (0, 8), (7, 9), (8, 9),
    (0, 11), (10, 12), (11, 12),
    (0, 14), (13, 15), (14, 15),
)  # fmt: skip
_NYU_TEMPLATE = (
    (-0.23, 0.32), (-0.22, 0.24),  # pinky tip, mid
    (-0.15, 0.48), (-0.14, 0.38),  # ring
    (0.02, 0.55), (0.02, 0.44),  # middle
    (0.23, 0.47), (0.22, 0.36),  # index
    (0.34, 0.22), (0.26, 0.12), (0.16, 0.02),  # thumb tip, mid, root
    (-0.10, -0.08), (0.10, -0.08), (0.0, 0.12),  # wrist back (ulnar), wrist (radial), palm
)  # fmt: skip
_NYU_NEIGHBOURS = (
    (1, 0), (13, 0),
    (3, 2), (13, 2),
    (5, 4), (13, 4),
    (7, 6), (13, 6),
    (9, 8), (10, 8), (13, 9),
    (13, 12), (13, 11), (12, 5),
)  # fmt: skip


def skeleton_template(num_joints: int) -> tuple[Tensor, Tensor]:
    """(2, J) template and (2, J) long neighbour indices (towards the wrist, towards the tip).

    ICVL's 16 and NYU's 14 joints (hpbench.data.specs order) get a hand; any other J a
    chain along y, each joint's neighbours the previous and the next.
    """
    if num_joints == 16:
        template, neighbours = _ICVL_TEMPLATE, _ICVL_NEIGHBOURS
    elif num_joints == 14:
        template, neighbours = _NYU_TEMPLATE, _NYU_NEIGHBOURS
    else:
        template = tuple((0.0, 0.55 * j / max(num_joints - 1, 1)) for j in range(num_joints))
        neighbours = tuple((max(j - 1, 0), min(j + 1, num_joints - 1)) for j in range(num_joints))
    return torch.tensor(template).T.contiguous(), torch.tensor(neighbours).T.contiguous()


class PointFrame(NamedTuple):
    """The normalized point frame of each crop: q = (p - centre) @ rotation / length.

    p: crop-cube coordinates (x, y, z); ``centre`` (B, 3); ``rotation`` (B, 3, 3), columns
    the principal axes (a proper rotation); ``length`` (B,) the box size, cube units.
    """

    centre: Tensor
    rotation: Tensor
    length: Tensor


class PointCloud(NamedTuple):
    """``points`` (B, N, 6): xyz and normal in the normalized frame; ``pixels`` (B, N) the
    sampled flat pixel indices (v S + u); ``count`` (B,) foreground pixels of each crop."""

    points: Tensor
    frame: PointFrame
    pixels: Tensor
    count: Tensor


class HandFoldOutput(NamedTuple):
    """What the loss needs: ``joints`` (B, J, 3) in crop coordinates (the last stage),
    ``stages`` (B, 3, J, 3) the three foldings in the normalized frame, and that ``frame``."""

    joints: Tensor
    stages: Tensor
    frame: PointFrame


def _rotate(x: Tensor, rotation: Tensor) -> Tensor:
    """(B, N, 3) @ (B, 3, 3), written elementwise so that counters see no matmul (it is preprocessing)."""
    return (x.unsqueeze(-1) * rotation.unsqueeze(1)).sum(-2)


def _crop_to_cube(uvd: Tensor, size: int) -> Tensor:
    """u, v (crop px, centres at integers) and d -> x, y, z in [-1, 1) (the crop cube's axes)."""
    return torch.cat(((2 * uvd[..., :2] + 1) / size - 1, uvd[..., 2:]), dim=-1)


def _cube_to_crop(xyz: Tensor, size: int) -> Tensor:
    return torch.cat((((xyz[..., :2] + 1) * size - 1) / 2, xyz[..., 2:]), dim=-1)


def crop_to_frame(joints: Tensor, frame: PointFrame, size: int) -> Tensor:
    """(B, J, 3) crop coordinates (u, v px of an S = ``size`` crop; d normalized) -> normalized frame."""
    cube = _crop_to_cube(joints, size) - frame.centre.unsqueeze(1)
    return _rotate(cube, frame.rotation) / frame.length.view(-1, 1, 1)


def frame_to_crop(points: Tensor, frame: PointFrame, size: int) -> Tensor:
    """Inverse of :func:`crop_to_frame`."""
    cube = _rotate(points * frame.length.view(-1, 1, 1), frame.rotation.transpose(1, 2))
    return _cube_to_crop(cube + frame.centre.unsqueeze(1), size)


def _point_frame(cube: Tensor, foreground: Tensor) -> PointFrame:
    """PCA frame of the foreground of (B, P, 3) cube points; masked sums, no boolean indexing."""
    weight = foreground.to(cube.dtype).unsqueeze(-1)
    count = weight.sum(1).clamp_min(1.0)  # (B, 1)
    centre = (cube * weight).sum(1) / count
    spread = (cube - centre.unsqueeze(1)) * weight
    covariance = (spread.unsqueeze(-1) * spread.unsqueeze(-2)).sum(1) / count.unsqueeze(-1)
    _, axes = torch.linalg.eigh(covariance)  # ascending eigenvalues
    first, third = axes[..., 2], axes[..., 0]
    first = torch.where(first[:, 1:2] > 0, -first, first)  # up the image (v decreasing)
    third = torch.where(third[:, 2:3] < 0, -third, third)  # away from the camera
    second = torch.linalg.cross(third, first)
    rotation = torch.stack((first, second, third), dim=-1)
    along = ((cube - centre.unsqueeze(1)) * first.unsqueeze(1)).sum(-1)  # (B, P)
    mask = foreground
    extent = along.masked_fill(~mask, -torch.inf).amax(1) - along.masked_fill(~mask, torch.inf).amin(1)
    extent = torch.where(mask.any(1), extent, torch.zeros_like(extent))
    return PointFrame(centre=centre, rotation=rotation, length=(BOX_SCALE * extent).clamp_min(MIN_BOX))


def _sample_pixels(foreground: Tensor, num_points: int) -> Tensor:
    """(B, P) mask -> (B, N) flat indices of foreground pixels: those of evenly spaced ranks in raster order.

    With F >= N foreground pixels, N distinct pixels spread over the hand (systematic
    sampling); with fewer, every pixel about N / F times (the original repeats them too).
    """
    order = torch.argsort((~foreground).to(torch.uint8), dim=1, stable=True)  # foreground first, raster order
    count = foreground.sum(1, keepdim=True).clamp_min(1)  # (B, 1)
    k = torch.arange(num_points, device=foreground.device).unsqueeze(0)
    return order.gather(1, (2 * k + 1) * count // (2 * num_points))


def _normals(depth: Tensor, pixels: Tensor) -> Tensor:
    """(B, 1, S, S) depth, (B, N) pixels -> (B, N, 3) unit normals in the crop cube, towards the camera.

    Weighted least-squares plane d = a u + b v + c through the window around each pixel.
    """
    size, half = depth.shape[-1], NORMAL_WINDOW // 2
    padded = F.pad(depth, (half,) * 4, value=1.0)  # outside the crop: background
    windows = F.unfold(padded, NORMAL_WINDOW)  # (B, W^2, S^2)
    windows = windows.gather(2, pixels.unsqueeze(1).expand(-1, windows.shape[1], -1))  # (B, W^2, N)
    centre = windows[:, windows.shape[1] // 2 : windows.shape[1] // 2 + 1]
    weight = ((windows < 1) & (windows >= -1) & ((windows - centre).abs() < NORMAL_DEPTH_GAP)).to(depth.dtype)
    offsets = torch.arange(-half, half + 1, dtype=depth.dtype, device=depth.device)
    du = offsets.repeat(NORMAL_WINDOW).view(1, -1, 1)  # unfold order: row (v) major
    dv = offsets.repeat_interleave(NORMAL_WINDOW).view(1, -1, 1)
    total = weight.sum(1, keepdim=True).clamp_min(1.0)

    def centred(x: Tensor) -> Tensor:
        return x - (weight * x).sum(1, keepdim=True) / total

    cu, cv, cd = centred(du), centred(dv), centred(windows)
    suu, svv, suv = (weight * cu * cu).sum(1), (weight * cv * cv).sum(1), (weight * cu * cv).sum(1)
    sud, svd = (weight * cu * cd).sum(1), (weight * cv * cd).sum(1)
    ridge = 1e-4 * total.squeeze(1)  # a line or a single pixel: flat, facing the camera
    det = (suu + ridge) * (svv + ridge) - suv * suv
    slope_u = ((svv + ridge) * sud - suv * svd) / det  # d per pixel
    slope_v = ((suu + ridge) * svd - suv * sud) / det
    normal = torch.stack((slope_u * (size / 2), slope_v * (size / 2), -torch.ones_like(slope_u)), dim=-1)
    return normal / normal.norm(dim=-1, keepdim=True)


def sample_points(depth: Tensor, num_points: int) -> PointCloud:
    """(B, 1, S, S) normalized depth crop -> ``num_points`` points with normals in the PCA frame.

    Foreground: -1 <= d < 1 (the background is +1). An empty crop gives points at the
    origin with normals (0, 0, -1) and an identity-like frame (finite, no NaN).
    """
    depth = depth.detach().float()
    batch, size = depth.shape[0], depth.shape[-1]
    d = depth.flatten(1)
    foreground = (d >= -1) & (d < 1)
    axis = (2 * torch.arange(size, dtype=depth.dtype, device=depth.device) + 1) / size - 1
    x = axis.repeat(size).expand(batch, -1)
    y = axis.repeat_interleave(size).expand(batch, -1)
    cube = torch.stack((x, y, d), dim=-1)  # (B, S^2, 3)
    frame = _point_frame(cube, foreground)
    pixels = _sample_pixels(foreground, num_points)
    xyz = cube.gather(1, pixels.unsqueeze(-1).expand(-1, -1, 3))
    xyz = _rotate(xyz - frame.centre.unsqueeze(1), frame.rotation) / frame.length.view(-1, 1, 1)
    normals = _rotate(_normals(depth, pixels), frame.rotation)
    count = foreground.sum(1)
    empty = (count == 0).view(-1, 1, 1)
    xyz = xyz.masked_fill(empty, 0.0)
    normals = torch.where(empty, normals.new_tensor([0.0, 0.0, -1.0]), normals)
    return PointCloud(points=torch.cat((xyz, normals), dim=-1), frame=frame, pixels=pixels, count=count)


def _square_distances(a: Tensor, b: Tensor) -> Tensor:
    """(B, M, 3), (B, N, 3) -> (B, M, N), per coordinate (exact, and no matmul for the counters)."""
    return sum((a[..., i : i + 1] - b[..., i].unsqueeze(1)) ** 2 for i in range(3))


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """x (B, N, C), index (B, ...) -> (B, ..., C)."""
    flat = index.reshape(index.shape[0], -1, 1).expand(-1, -1, x.shape[-1])
    return x.gather(1, flat).view(*index.shape, x.shape[-1])


def group_points(centres: Tensor, points: Tensor, features: Tensor, k: int, radius_sq: float) -> Tensor:
    """The ``k`` nearest ``points`` of each centre -> (B, 3 + C, M, k): offsets to the centre, features.

    centres (B, M, 3), points (B, N, 3), features (B, N, C). Neighbours farther than
    sqrt(radius_sq) are replaced by the nearest one (kNN + ball query).
    """
    distance, index = _square_distances(centres.detach(), points.detach()).topk(k, dim=-1, largest=False)
    index = torch.where(distance > radius_sq, index[..., :1], index)
    offsets = _gather_rows(points, index) - centres.unsqueeze(2)
    return torch.cat((offsets, _gather_rows(features, index)), dim=-1).permute(0, 3, 1, 2)


def _mlp(c_in: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Shared MLP as 1x1 convs (bias) + BN + ReLU, as the original."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(c_in, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c_in = width
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """PointNet++ set abstraction: (B, C_in, M, k) groups -> shared MLP -> max over k -> (B, C_out, M)."""

    def __init__(self, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp = _mlp(c_in, widths)

    def forward(self, groups: Tensor) -> Tensor:
        return self.mlp(groups).max(dim=-1).values  # (max with indices: a cheaper backward than amax)


class LocalFolding(nn.Module):
    """One local folding: joint estimates + features -> refined estimates + 256-d joint features.

    Per joint: [estimate (3), feature, features of its two kinematic neighbours] with
    each of its k nearest level-1 centres (offset xyz + feature) -> 256, 256, 256,
    max over the k -> 256, 256 -> 3, the offset added to the estimate.
    """

    def __init__(self, joint_channels: int, point_channels: int) -> None:
        super().__init__()
        self.group = SetAbstraction(3 + 3 * joint_channels + 3 + point_channels, LOCAL_GROUP_WIDTHS)
        head_in, head_out = LOCAL_GROUP_WIDTHS[-1], LOCAL_HEAD_WIDTHS[-1]
        self.head = nn.Sequential(_mlp(head_in, LOCAL_HEAD_WIDTHS), nn.Conv2d(head_out, 3, 1))

    def forward(self, joints: Tensor, features: Tensor, neighbours: Tensor, centres: Tensor, centre_features: Tensor,
                k: int) -> tuple[Tensor, Tensor]:
        """joints (B, J, 3), features (B, C, J), neighbours (2, J), centres (B, M, 3), centre_features (B, M, F)."""
        link = group_points(joints, centres, centre_features, k, BALL_RADIUS_SQ[2])  # (B, 3 + F, J, k)
        kin = (features[:, :, neighbours[0]], features[:, :, neighbours[1]])
        own = torch.cat((joints.transpose(1, 2), features) + kin, dim=1)  # (B, 3 + 3 C, J)
        grouped = torch.cat((own.unsqueeze(-1).expand(-1, -1, -1, k), link), dim=1)
        pooled = self.group(grouped)  # (B, 256, J)
        offset = self.head(pooled.unsqueeze(-1)).squeeze(-1).transpose(1, 2)
        return joints + offset, pooled


class HandFoldingNet(HandPoseModel):
    """Point sampling + HandFoldingNet -> (B, J, 3): u, v in crop px, d normalized.

    ``num_points`` sampled points, ``level1`` / ``level2`` centres, ``neighbours`` per
    group (paper: 1024, 512, 128, 64); smaller values make a cheaper model with the
    same parameters.
    """

    def __init__(self, *, num_joints: int, input_size: int = 128, num_points: int = 1024, level1: int = 512,
                 level2: int = 128, neighbours: int = 64) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        if not neighbours <= level1 <= num_points or level2 > level1 or min(neighbours, level2) < 1:
            raise ValueError(f"need 1 <= neighbours ({neighbours}) <= level1 ({level1}) <= num_points ({num_points})"
                             f" and 1 <= level2 ({level2}) <= level1")
        self.num_points, self.level1, self.level2, self.neighbours = num_points, level1, level2, neighbours
        (w1, w2, w3), (f1, f2) = ENCODER_WIDTHS, (GLOBAL_FOLD_WIDTHS[-1], LOCAL_GROUP_WIDTHS[-1])
        self.level1_mlp = SetAbstraction(6, w1)
        self.level2_mlp = SetAbstraction(3 + w1[-1], w2)
        self.global_mlp = SetAbstraction(3 + w2[-1], w3)
        self.fold1 = _mlp(2 + w3[-1], GLOBAL_FOLD_WIDTHS)
        self.fold1_out = nn.Conv2d(f1, 3, 1)
        self.fold2 = LocalFolding(f1, w1[-1])
        self.fold3 = LocalFolding(f2, w1[-1])
        template, kinematic = skeleton_template(num_joints)
        self.register_buffer("template", template, persistent=False)
        self.register_buffer("kinematic", kinematic, persistent=False)

    def points(self, depth: Tensor) -> PointCloud:
        """The input adapter: the crop's points in their normalized frame (deterministic, train and eval)."""
        self.check_input(depth)
        return sample_points(depth, self.num_points)

    def forward_train(self, depth: Tensor) -> HandFoldOutput:
        """(B, 1, S, S) depth -> the three foldings and the frame (see :class:`HandFoldOutput`)."""
        cloud = self.points(depth)
        points = cloud.points.to(self.template.dtype)
        n = points.shape[1]
        # centres: every other sample, then every fourth (evenly spaced over the hand in raster order)
        pick1 = (2 * torch.arange(self.level1, device=points.device) + 1) * n // (2 * self.level1)
        pick2 = (2 * torch.arange(self.level2, device=points.device) + 1) * self.level1 // (2 * self.level2)
        xyz = points[..., :3]
        centres1 = xyz[:, pick1]
        groups = group_points(centres1, xyz, points[..., 3:], self.neighbours, BALL_RADIUS_SQ[0])
        features1 = self.level1_mlp(groups).transpose(1, 2)  # (B, M1, 128)
        centres2 = centres1[:, pick2]
        groups = group_points(centres2, centres1, features1, self.neighbours, BALL_RADIUS_SQ[1])
        features2 = self.level2_mlp(groups)  # (B, 256, M2)
        # (B, 259, 1, M2) -> max over the M2 centres -> (B, 512, 1)
        code = self.global_mlp(torch.cat((centres2.transpose(1, 2), features2), 1).unsqueeze(2))
        batch, joints = code.shape[0], self.num_joints
        seed = torch.cat((self.template.expand(batch, -1, -1), code.expand(-1, -1, joints)), 1).unsqueeze(-1)
        joint_features = self.fold1(seed)  # (B, 128, J, 1)
        stage1 = self.fold1_out(joint_features).squeeze(-1).transpose(1, 2)  # (B, J, 3)
        stage2, pooled = self.fold2(stage1, joint_features.squeeze(-1), self.kinematic, centres1, features1,
                                    self.neighbours)
        stage3, _ = self.fold3(stage2, pooled, self.kinematic, centres1, features1, self.neighbours)
        stages = torch.stack((stage1, stage2, stage3), dim=1).float()
        return HandFoldOutput(joints=frame_to_crop(stages[:, 2], cloud.frame, self.input_size), stages=stages,
                              frame=cloud.frame)

    def forward(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, 3): u, v in crop px, d normalized."""
        return self.forward_train(depth).joints

    def loss(self, output: HandFoldOutput | Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The paper's loss (:func:`handfold_loss`) of :meth:`forward_train`'s output."""
        return handfold_loss(output, target, mask, size=self.input_size)


def handfold_loss(output: HandFoldOutput | Tensor, target: Tensor, mask: Tensor | None = None, *,
                  size: int) -> Tensor:
    """Smooth L1 (beta 0.01) per coordinate, summed over x, y, z, mean over counted joints.

    A :class:`HandFoldOutput`: the three stages against the target in their normalized
    frame, weighted 1, 1, 2. A plain joints tensor (``forward``'s output, no frame): the
    last stage only, in crop-cube units (u, v px scaled by 2 / S; d as is). mask (B, J) bool.
    """
    if isinstance(output, HandFoldOutput):
        wanted = crop_to_frame(target.to(output.stages.dtype), output.frame, size)
        per_joint = sum(
            weight * F.smooth_l1_loss(stage, wanted, beta=SMOOTH_L1_BETA, reduction="none").sum(-1)
            for weight, stage in zip(STAGE_WEIGHTS, output.stages.unbind(1))
        )
    else:
        got, wanted = _crop_to_cube(output, size), _crop_to_cube(target.to(output.dtype), size)
        per_joint = F.smooth_l1_loss(got, wanted, beta=SMOOTH_L1_BETA, reduction="none").sum(-1)
    return masked_joint_mean(per_joint, mask)


@register_model("handfold")
def handfold(*, num_joints: int = 14, input_size: int = 128, num_points: int = 1024, level1: int = 512,
             level2: int = 128, neighbours: int = 64) -> HandFoldingNet:
    """HandFoldingNet (Cheng et al., ICCV 2021): 1024 points from the crop, PointNet++ encoder, 2D skeleton folding."""
    return HandFoldingNet(num_joints=num_joints, input_size=input_size, num_points=num_points, level1=level1,
                          level2=level2, neighbours=neighbours)
