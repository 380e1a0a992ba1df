"""Pinhole depth cameras: image uvd (px, px, mm) <-> world xyz (mm).

The sign of ``fy`` carries each dataset's world y axis: positive when world y
points down like image rows (ICVL), negative when it points up (NYU, MSRA). This
is the convention of the community's evaluation toolkit
(xinghaochen/awesome-hand-pose-estimation, ``evaluation/util.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Camera"]


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one depth sensor: focal lengths and principal point in px."""

    fx: float
    fy: float
    cx: float
    cy: float
    width_px: int
    height_px: int

    @property
    def y_up(self) -> bool:
        """True when world y points up (opposite to image rows)."""
        return self.fy < 0

    def uvd_to_xyz(self, uvd: np.ndarray) -> np.ndarray:
        """(..., 3) image (u px, v px, d mm) -> world (x, y, z) mm; a new array."""
        uvd = np.asarray(uvd, dtype=np.float64)
        d = uvd[..., 2]
        x = (uvd[..., 0] - self.cx) * d / self.fx
        y = (uvd[..., 1] - self.cy) * d / self.fy
        return np.stack([x, y, d], axis=-1)

    def xyz_to_uvd(self, xyz: np.ndarray) -> np.ndarray:
        """(..., 3) world (x, y, z) mm -> image (u px, v px, d mm); a new array.

        Points at z = 0 have no projection and come out as inf/nan.
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        z = xyz[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = xyz[..., 0] * self.fx / z + self.cx
            v = xyz[..., 1] * self.fy / z + self.cy
        return np.stack([u, v, z], axis=-1)
