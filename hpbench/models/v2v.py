"""V2V-PoseNet: voxel-to-voxel 3D hourglass that predicts one 3D heatmap per joint.

Moon, Chang & Lee, "V2V-PoseNet: Voxel-to-Voxel Prediction Network for Accurate 3D
Hand and Human Pose Estimation from a Single Depth Map", CVPR 2018. Original code:
https://github.com/mks0601/V2V-PoseNet_RELEASE (Lua/Torch7; PyTorch port by the
same group). Rebuilt from the paper and design/baselines.md.

The zoo's input contract is the normalized depth crop, so the voxelization lives
in ``forward``: every foreground pixel (u, v, d) of the S x S crop marks one voxel
of a G^3 occupancy grid (G = 88 as in the paper), x and y from the crop pixel
scaled to G, z from the normalized depth d in [-1, 1) scaled to G. Since the crop
spans the cube in u, v and d alike, this is the paper's cube voxelization up to
the perspective of the crop (DeepPrior++-style crops are nearly orthographic).
The network outputs J heatmaps on the G/2 grid; joints are their argmax, refined
by a per-axis parabola through the log heatmap around it (choice: the paper uses
the plain argmax, whose error is up to half a G/2 voxel).

Loss (paper): MSE between the heatmaps and 3D Gaussians (sigma 1.7 voxels of the
heatmap grid) centred on the targets. The model API takes joints, so ``forward``
keeps the heatmaps of its last call with gradients enabled on
``self.last_heatmaps`` (dropped from copies and pickles) and ``loss(output, target, mask)`` compares those with the
encoded target; ``output`` is only checked for shape (call ``loss`` right after the
``forward`` that produced ``output``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hpbench.models._registry import register_model
from hpbench.models.base import HandPoseModel, masked_joint_mean

__all__ = ["Res3D", "V2VPoseNet", "decode_heatmaps", "encode_heatmaps", "voxelize"]


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """Conv3d (bias, 'same' padding) + BN + ReLU: V2V's Basic3DBlock."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)
    )


class Res3D(nn.Module):
    """3D residual block: (B, c_in, D, H, W) -> (B, c_out, D, H, W).

    conv3^3-BN-ReLU-conv3^3-BN plus the identity (or 1^3 conv + BN when the width
    changes), then ReLU. Convolutions with bias, as in the original.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1), nn.BatchNorm3d(c_out),
        )  # fmt: skip
        self.shortcut: nn.Module = (
            nn.Identity() if c_in == c_out else nn.Sequential(nn.Conv3d(c_in, c_out, 1), nn.BatchNorm3d(c_out))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


def _upsample(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv 2^3 stride 2 + BN + ReLU: doubles the grid."""
    return nn.Sequential(nn.ConvTranspose3d(c_in, c_out, 2, stride=2), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


class EncoderDecoder(nn.Module):
    """V2V's 3D hourglass on the G/2 grid, 32 channels in and out (two pooling levels)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool3d(2)
        self.skip1 = Res3D(32, 32)
        self.down1 = Res3D(32, 64)
        self.skip2 = Res3D(64, 64)
        self.down2 = Res3D(64, 128)
        self.middle = nn.Sequential(Res3D(128, 128), Res3D(128, 128))
        self.up2 = _upsample(128, 64)
        self.up2_res = Res3D(64, 64)
        self.up1 = _upsample(64, 32)

    def forward(self, x: Tensor) -> Tensor:
        skip1 = self.skip1(x)
        x = self.down1(self.pool(x))
        skip2 = self.skip2(x)
        x = self.middle(self.down2(self.pool(x)))
        x = self.up2_res(self.up2(x) + skip2)
        return self.up1(x) + skip1


def voxelize(depth: Tensor, grid: int) -> Tensor:
    """(B, 1, S, S) normalized depth crop -> (B, 1, G, G, G) occupancy, axes (z, y, x).

    Pixel (u, v) falls in voxel column floor((u + 0.5) G / S); depth d in [-1, 1)
    in voxel layer floor((d + 1) G / 2). Background (d >= 1) and pixels in front of
    the cube (d < -1) mark nothing. Written with a scatter over a fixed-size index
    (no boolean indexing), so it also runs on the meta device.
    """
    b, _, s_v, s_u = depth.shape
    d = depth[:, 0]
    x = ((torch.arange(s_u, device=depth.device) + 0.5) * (grid / s_u)).long().clamp_(0, grid - 1)
    y = ((torch.arange(s_v, device=depth.device) + 0.5) * (grid / s_v)).long().clamp_(0, grid - 1)
    z = ((d + 1) * (grid / 2)).floor().clamp(0, grid - 1).long()
    valid = (d >= -1) & (d < 1)
    flat = (z * grid + y.view(1, -1, 1)) * grid + x.view(1, 1, -1)
    flat = torch.where(valid, flat, torch.full_like(flat, grid**3))  # invalid pixels go to a spare slot
    volume = depth.new_zeros(b, grid**3 + 1)
    volume.scatter_(1, flat.flatten(1), 1.0)
    return volume[:, : grid**3].view(b, 1, grid, grid, grid)


def _cell_coordinates(joints: Tensor, cells: int, size: int) -> Tensor:
    """(..., 3) joints (u, v px of a ``size`` crop; d normalized) -> continuous (x, y, z) cell coordinates.

    Cell k's centre is at coordinate k; in the crop it is pixel (k + 0.5) size / cells - 0.5
    and depth (k + 0.5) 2 / cells - 1.
    """
    uv = (joints[..., :2] + 0.5) * (cells / size) - 0.5
    z = (joints[..., 2:] + 1) * (cells / 2) - 0.5
    return torch.cat((uv, z), dim=-1)


def _cell_to_joints(cells_xyz: Tensor, cells: int, size: int) -> Tensor:
    """Inverse of ``_cell_coordinates``."""
    uv = (cells_xyz[..., :2] + 0.5) * (size / cells) - 0.5
    d = (cells_xyz[..., 2:] + 0.5) * (2 / cells) - 1
    return torch.cat((uv, d), dim=-1)


def encode_heatmaps(joints: Tensor, cells: int, size: int, *, sigma: float = 1.7) -> Tensor:
    """(B, J, 3) joints -> (B, J, cells, cells, cells) Gaussians (peak 1, sigma in cells), axes (z, y, x)."""
    centre = _cell_coordinates(joints, cells, size)  # (B, J, 3) as x, y, z
    axis = torch.arange(cells, dtype=joints.dtype, device=joints.device)
    gx, gy, gz = (torch.exp(-((axis - centre[..., k, None]) ** 2) / (2 * sigma**2)) for k in range(3))
    return gz[..., :, None, None] * gy[..., None, :, None] * gx[..., None, None, :]


def decode_heatmaps(heatmaps: Tensor, size: int, *, refine: bool = True) -> Tensor:
    """(B, J, n, n, n) heatmaps (axes z, y, x) -> (B, J, 3) joints: argmax, then a sub-voxel step.

    The refinement fits a parabola to the log heatmap at the argmax and its two
    neighbours along each axis (exact for a Gaussian peak) and moves at most half a
    voxel; it is differentiable in the heatmap values, so the joints carry gradients.
    """
    n = heatmaps.shape[-1]
    flat = heatmaps.flatten(2)
    index = flat.argmax(dim=-1, keepdim=True)  # (B, J, 1)
    peak = torch.cat((index % n, index // n % n, index // (n * n)), dim=-1)  # x, y, z
    position = peak.to(heatmaps.dtype)
    if not refine:
        return _cell_to_joints(position, n, size)
    strides = (1, n, n * n)
    steps = []
    for axis, stride in enumerate(strides):
        before = (peak[..., axis : axis + 1] > 0).to(index.dtype) * stride
        after = (peak[..., axis : axis + 1] < n - 1).to(index.dtype) * stride
        log = [flat.gather(2, i).clamp_min(1e-6).log() for i in (index - before, index, index + after)]
        curvature = log[0] - 2 * log[1] + log[2]
        step = 0.5 * (log[0] - log[2]) / torch.where(curvature < 0, curvature, -torch.ones_like(curvature))
        steps.append(torch.where(curvature < 0, step.clamp(-0.5, 0.5), torch.zeros_like(step)))
    return _cell_to_joints(position + torch.cat(steps, dim=-1), n, size)


class V2VPoseNet(HandPoseModel):
    """Voxelization + V2V-PoseNet -> (B, J, 3): u, v in crop px, d normalized.

    G^3 occupancy -> 7^3 conv 1 -> 16 + BN + ReLU -> max-pool (G/2) -> Res3D 16 -> 32,
    32 -> 32, 32 -> 32 -> encoder-decoder -> Res3D 32, 2 x (1^3 conv 32 + BN + ReLU)
    -> 1^3 conv 32 -> J heatmaps on the G/2 grid.
    """

    def __init__(self, *, num_joints: int, input_size: int = 88, grid: int = 88, sigma: float = 1.7) -> None:
        super().__init__(num_joints=num_joints, input_size=input_size)
        if grid % 8:
            raise ValueError(f"grid {grid} must be divisible by 8 (three poolings)")
        self.grid = grid
        self.sigma = sigma
        self.front = nn.Sequential(
            _conv_bn_relu(1, 16, 7), nn.MaxPool3d(2), Res3D(16, 32), Res3D(32, 32), Res3D(32, 32)
        )
        self.encoder_decoder = EncoderDecoder()
        self.back = nn.Sequential(Res3D(32, 32), _conv_bn_relu(32, 32, 1), _conv_bn_relu(32, 32, 1))
        self.output = nn.Conv3d(32, num_joints, 1)
        self.last_heatmaps: Tensor | None = None

    def heatmaps(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, G/2, G/2, G/2) heatmaps, axes (z, y, x)."""
        self.check_input(depth)
        voxels = voxelize(depth, self.grid)
        return self.output(self.back(self.encoder_decoder(self.front(voxels))))

    def forward(self, depth: Tensor) -> Tensor:
        """(B, 1, S, S) depth -> (B, J, 3); keeps the heatmaps for ``loss`` when gradients are on.

        The joints are differentiable through the local refinement's weights (not the
        argmax), so gradients of the joints reach every parameter.
        """
        heatmaps = self.heatmaps(depth)
        self.last_heatmaps = heatmaps if torch.is_grad_enabled() else None
        return decode_heatmaps(heatmaps, self.input_size)

    def __getstate__(self) -> dict:
        # deepcopy / pickle must not carry the last forward's graph (non-leaf tensors cannot be deep-copied).
        state = self.__dict__.copy()
        state["last_heatmaps"] = None
        return state

    def loss(self, output: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """MSE between the last forward's heatmaps and Gaussians at ``target``, over counted joints.

        A joint counts when ``mask`` (B, J) bool is True (default: all). ``output`` must
        come from the forward whose heatmaps are kept (same batch and joints).
        """
        heatmaps = self.last_heatmaps
        if heatmaps is None or heatmaps.shape[:2] != output.shape[:2]:
            raise RuntimeError("V2VPoseNet.loss needs the heatmaps of the forward that made `output` (grad enabled)")
        wanted = encode_heatmaps(target.to(heatmaps.dtype), heatmaps.shape[-1], self.input_size, sigma=self.sigma)
        per_joint = (heatmaps - wanted).pow(2).flatten(2).mean(-1)  # (B, J)
        return masked_joint_mean(per_joint, mask)


@register_model("v2v")
def v2v(*, num_joints: int = 14, input_size: int = 88, grid: int = 88) -> V2VPoseNet:
    """V2V-PoseNet (Moon et al., CVPR 2018): 88^3 occupancy from the crop, 3D hourglass, J heatmaps at 44^3."""
    return V2VPoseNet(num_joints=num_joints, input_size=input_size, grid=grid)
