"""Test-set inference: batched, no grad; decode crops back to image uvd and world xyz; score.

Predictions are written in the community format (one line per test frame,
J x (u v d), led by the frame name), so ``hpbench eval`` and ``hpbench report``
compare them with the published files the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hpbench import metrics
from hpbench.data.crop import CropTransform
from hpbench.data.specs import DatasetSpec
from hpbench.predictions import write_prediction_file
from hpbench.scoring import Score

__all__ = ["EVAL_BATCH", "crop_settings", "protocol_key", "evaluate", "evaluate_checkpoint", "predict_crops"]

EVAL_BATCH = {"cpu": 4, "cuda": 64}
"""Default inference batch per device type. On a 2-core CPU large batches are slower per frame
(measured, 2 threads, ms/frame at batch 1/4/16/64: ours 46/33/39/80, trinet 291/383/521/583):
the activations of a 128 x 128 crop outgrow the caches, so the CPU batch stays small."""


def predict_crops(model: nn.Module, dataset: Any, *, batch_size: int | None = None, device: str = "cpu",
                  progress: bool = False, label: str = "evaluating") -> np.ndarray:
    """(N, J, 3) model outputs in crop coordinates over ``dataset`` in its order (no augmentation).

    ``batch_size`` defaults to :data:`EVAL_BATCH` of the device type; ``label`` is the progress bar's text,
    printed as written (never read as rich markup).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    batch_size = batch_size or EVAL_BATCH.get(torch.device(device).type, 16)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    model.eval().to(device)
    outputs = []
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with torch.inference_mode(), Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=len(dataset))
        for batch in loader:
            outputs.append(model(batch["depth"].to(device)).float().cpu().numpy())
            bar.advance(task, len(outputs[-1]))
    return np.concatenate(outputs).astype(np.float64)


def frame_names(files: Sequence[str]) -> list[str] | None:
    """The frames' names relative to the folder they all share (ICVL: ``test_seq_1/image_0000.png``), as the
    community's prediction files name them; None (lines matched by order) when a name holds whitespace,
    which the reader could not get back as one token."""
    if not files:
        return None
    shared = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    names = [os.path.relpath(os.path.abspath(f), shared).replace(os.sep, "/") for f in files]
    return None if any(not name or any(c.isspace() for c in name) for name in names) else names


def evaluate(
    model: nn.Module,
    cache: Any,
    *,
    dataset: DatasetSpec,
    method: str,
    predictions_path: str | os.PathLike[str],
    batch_size: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    crop: Any | None = None,
) -> Score:
    """Score ``model`` on a test :class:`hpbench.data.cache.CropCache` of ``dataset``; writes the
    prediction file.

    ``crop``: the protocol's crop (:mod:`hpbench.protocol`), which chooses the model input as in
    training (:func:`hpbench.data.augment.adapt_input`: A2J's box crops standardized; None: the
    normalized crop as cached). Errors are 3D distances in mm between decoded predictions and the
    cache's image labels, both converted with the dataset's camera.
    """
    from hpbench.data.cache import CropDataset

    if cache.dataset != dataset.name:
        raise ValueError(f"the crop cache {cache.path} holds {cache.dataset!r}, not {dataset.name!r}")
    crops = predict_crops(model, CropDataset(cache, crop=crop), batch_size=batch_size, device=device, progress=progress,
                          label=f"{method}: evaluating on {dataset.name} {cache.split}")
    transform: CropTransform = cache.transform
    pred_uvd = transform.to_image(crops)
    path = write_prediction_file(predictions_path, pred_uvd, names=frame_names(cache.files))
    errors = metrics.joint_errors_mm(dataset.camera.uvd_to_xyz(pred_uvd), dataset.camera.uvd_to_xyz(cache.uvd))
    total = len(cache.uvd)
    return Score(method=method, source=Path(path), dataset=dataset, errors_mm=errors, frame_indices=np.arange(total),
                 frames=f"{total}/{total}", reading="uvd (model output)")


def protocol_key(dataset: DatasetSpec) -> str:
    """The protocol table a dataset's runs use: its on-disk format (the synthetic sets use ICVL's)."""
    return dataset.layout.format if dataset.layout is not None else dataset.name


def crop_settings(name: str, dataset: DatasetSpec):  # -> hpbench.data.cache.CropSettings
    """The crop of model ``name`` on ``dataset``: its card's protocol's (box, depth extent, input px,
    test-frame shrink); CardError when the card has no protocol for the dataset's format."""
    from hpbench.cards import load_protocol
    from hpbench.data.cache import CropSettings

    return CropSettings.of(load_protocol(name, protocol_key(dataset)).crop)


def evaluate_checkpoint(
    name: str,
    checkpoint: str | os.PathLike[str] | None,
    *,
    dataset: DatasetSpec,
    data_root: str | os.PathLike[str] | None,
    predictions_path: str | os.PathLike[str],
    batch_size: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    centers: str | os.PathLike[str] | None = None,
) -> tuple[Score, Path]:
    """Score registered model ``name`` with the weights of ``checkpoint`` (safetensors; None: the
    sha256-checked checkpoint its card ships for ``dataset``) on ``dataset``'s test split, cropped around
    the test centres of its protocol (``centers``: a centre file, or a folder holding the protocol's file;
    None: looked up below the data root, else the centre of mass).

    Returns the score and the checkpoint used.
    """
    from hpbench.cards import load_protocol, zoo_checkpoint
    from hpbench.data.cache import CropSettings, open_protocol_cache
    from hpbench.models import create_model, models
    from hpbench.train import load_checkpoint_weights

    models.get(name)  # unknown names fail first, with close matches
    path = zoo_checkpoint(name, dataset.name) if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    protocol = load_protocol(name, protocol_key(dataset))
    cache, _ = open_protocol_cache(dataset, "test", CropSettings.of(protocol.crop), protocol.centers, given=centers,
                                   data_root=data_root, progress=progress)
    model = load_checkpoint_weights(create_model(name, num_joints=cache.joints.shape[1]), path)
    return evaluate(model, cache, dataset=dataset, method=name, predictions_path=predictions_path, crop=protocol.crop,
                    batch_size=batch_size, device=device, progress=progress), path
