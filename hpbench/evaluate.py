"""Test-set inference: batched, no grad; decode crops back to image uvd and world xyz; score.

Predictions are written in the community format (one line per test frame,
J x (u v d), led by the frame name), so ``hpbench eval`` and ``hpbench report``
compare them with the published files the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hpbench import metrics
from hpbench.data.crop import CropTransform
from hpbench.data.specs import get_dataset
from hpbench.predictions import write_prediction_file
from hpbench.scoring import Score

__all__ = ["evaluate", "predict_crops"]


def predict_crops(model: nn.Module, dataset: Any, *, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """(N, J, 3) model outputs in crop coordinates over ``dataset`` in its order (no augmentation)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    model.eval().to(device)
    outputs = []
    with torch.inference_mode():
        for batch in loader:
            outputs.append(model(batch["depth"].to(device)).float().cpu().numpy())
    return np.concatenate(outputs).astype(np.float64)


def evaluate(
    model: nn.Module,
    cache: Any,
    *,
    method: str,
    predictions_path: str | os.PathLike[str],
    batch_size: int = 64,
    device: str = "cpu",
) -> Score:
    """Score ``model`` on a test :class:`hpbench.data.cache.CropCache`; writes the prediction file.

    Errors are 3D distances in mm between decoded predictions and the cache's
    image labels, both converted with the dataset's camera.
    """
    from hpbench.data.cache import CropDataset

    spec = get_dataset(cache.dataset)
    crops = predict_crops(model, CropDataset(cache), batch_size=batch_size, device=device)
    transform: CropTransform = cache.transform
    pred_uvd = transform.to_image(crops)
    path = write_prediction_file(predictions_path, pred_uvd, names=list(cache.files))
    errors = metrics.joint_errors_mm(spec.camera.uvd_to_xyz(pred_uvd), spec.camera.uvd_to_xyz(cache.uvd))
    total = len(cache.uvd)
    return Score(method=method, source=Path(path), dataset=spec, errors_mm=errors, frame_indices=np.arange(total),
                 frames=f"{total}/{total}", reading="uvd (model output)")
