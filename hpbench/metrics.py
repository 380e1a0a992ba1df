"""Pure metric functions on joint positions in millimetres.

Conventions of the community's evaluation toolkit: the 3D error of a joint is the
Euclidean distance in mm; mean error averages over joints and frames; the success
rate at threshold t is the fraction of frames whose worst (max) joint error is
<= t (mean-joint and per-joint variants too), over 0..80 mm; AUC is the area
under that curve divided by the threshold range, so it lies in [0, 1].

Arrays are (N frames, J joints, 3) or (N, J); ``mask`` is a boolean (N, J) of
joints to count (True = counted). Inputs are never modified.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "THRESHOLDS_MM",
    "auc",
    "distance_mm",
    "joint_errors_mm",
    "mean_error_mm",
    "per_joint_error_mm",
    "per_joint_success_rate",
    "success_rate",
]

THRESHOLDS_MM: np.ndarray = np.arange(0.0, 81.0, 1.0)
"""Default thresholds of success-rate curves, 0..80 mm in 1 mm steps."""


def distance_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) over the last axis (3) of broadcastable ``a`` and ``b``: the values of
    np.linalg.norm(a - b, axis=-1), without its reduction over a 3-long axis (several times slower)."""
    d = a - b
    return np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2])


def joint_errors_mm(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> np.ndarray:
    """(N, J, 3) predicted and true world positions in mm -> (N, J) Euclidean errors in mm."""
    pred_xyz = np.asarray(pred_xyz, dtype=np.float64)
    gt_xyz = np.asarray(gt_xyz, dtype=np.float64)
    if pred_xyz.shape != gt_xyz.shape or pred_xyz.ndim != 3 or pred_xyz.shape[-1] != 3:
        raise ValueError(f"need two (N, J, 3) arrays of one shape, got {pred_xyz.shape} and {gt_xyz.shape}")
    return distance_mm(pred_xyz, gt_xyz)


def _checked_mask(errors: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(errors.shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != errors.shape:
        raise ValueError(f"mask must be a boolean array of shape {errors.shape}, got {mask.dtype} {mask.shape}")
    return mask


def mean_error_mm(errors: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of (N, J) errors over all counted joints and frames, mm."""
    errors = np.asarray(errors, dtype=np.float64)
    mask = _checked_mask(errors, mask)
    if not mask.any():
        raise ValueError("no joints to average: the mask is empty")
    return float(errors[mask].mean())


def per_joint_error_mm(errors: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(J,) mean error of each joint over the frames where it is counted, mm (nan if never)."""
    errors = np.asarray(errors, dtype=np.float64)
    mask = _checked_mask(errors, mask)
    counts = mask.sum(axis=0)
    sums = np.where(mask, errors, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def success_rate(
    errors: np.ndarray,
    thresholds_mm: np.ndarray = THRESHOLDS_MM,
    *,
    criterion: str = "max",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """(T,) fraction of frames whose max (or mean) counted joint error is <= each threshold.

    Frames with no counted joint are left out of the denominator.
    """
    errors = np.asarray(errors, dtype=np.float64)
    mask = _checked_mask(errors, mask)
    if criterion == "max":
        per_frame = np.where(mask, errors, -np.inf).max(axis=1)
    elif criterion == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            per_frame = np.where(mask, errors, 0.0).sum(axis=1) / mask.sum(axis=1)
    else:
        raise ValueError(f"criterion must be 'max' or 'mean', got {criterion!r}")
    per_frame = per_frame[mask.any(axis=1)]
    if per_frame.size == 0:
        raise ValueError("no frames to count: the mask is empty")
    thresholds_mm = np.asarray(thresholds_mm, dtype=np.float64)
    return (per_frame[None, :] <= thresholds_mm[:, None]).mean(axis=1)


def per_joint_success_rate(
    errors: np.ndarray, thresholds_mm: np.ndarray = THRESHOLDS_MM, mask: np.ndarray | None = None
) -> np.ndarray:
    """(J, T) fraction of counted frames whose error of joint j is <= each threshold."""
    errors = np.asarray(errors, dtype=np.float64)
    mask = _checked_mask(errors, mask)
    thresholds_mm = np.asarray(thresholds_mm, dtype=np.float64)
    hits = (errors.T[:, :, None] <= thresholds_mm[None, None, :]) & mask.T[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits.sum(axis=1) / mask.sum(axis=0)[:, None]


def auc(thresholds_mm: np.ndarray, rates: np.ndarray) -> float:
    """Area under a success-rate curve divided by the threshold range: in [0, 1]."""
    thresholds_mm = np.asarray(thresholds_mm, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)
    if thresholds_mm.ndim != 1 or thresholds_mm.shape != rates.shape or thresholds_mm.size < 2:
        raise ValueError("auc needs two 1-D arrays of one length >= 2")
    if not (np.diff(thresholds_mm) > 0).all():  # also refuses nan; the ends alone are not enough
        raise ValueError("thresholds must increase")
    span = thresholds_mm[-1] - thresholds_mm[0]
    return float(np.trapezoid(rates, thresholds_mm) / span)
