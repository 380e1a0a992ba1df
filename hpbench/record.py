"""The protocol record of a run (``protocol.json`` in its run directory): which original protocol the
card names for the dataset, and what hpbench APPLIED: crop, training frames, centres per split,
augmentation, schedule and the checkpoint evaluated.

Where hpbench does not do what the protocol says, the record says both: e.g. each of the protocol's
augmentation transforms marked "applied", "approximated (how)" or "not applied (why)", the centres as
the crop cache chose them next to the protocol's centre source. Units: mm, px; steps and batches in
samples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpbench._text import plural
from hpbench.protocol import Protocol, describe_augment, describe_centers, describe_crop, describe_frames

if TYPE_CHECKING:
    from hpbench.data.centers import CentreChoice

__all__ = ["AS_THE_PROTOCOL", "centre_words", "NOT_YET_APPLIED", "AugmentRecord", "CentresRecord", "CropRecord", "FramesRecord",
           "ProtocolRecord", "ScheduleRecord", "augment_record", "centres_record", "crop_record", "frames_record",
           "protocol_label"]

NOT_YET_APPLIED = "not yet applied"
"""Status of a protocol's augmentation list where hpbench applied its generic augmentation instead."""
AS_THE_PROTOCOL = "as the protocol"
"""Status where every transform of the protocol was applied as the original does (or there are none)."""


def protocol_label(protocol: Protocol, key: str) -> str:
    """A short label of ``protocol`` on dataset format ``key`` (icvl, nyu, msra) for result rows and
    footnotes: "TriHorn-Net (NYU)", "A2J (ICVL, borrowed)"."""
    return f"{protocol.origin} ({key.upper()}{', borrowed' if protocol.borrowed else ''})"


@dataclass(frozen=True)
class CropRecord:
    """The crop applied: ``size_px`` square input, box ``lateral_mm`` (x = y) and ``depth_mm`` (z) edges,
    test frames from 0-based ``test_shrink_from`` on x ``test_shrink``; ``protocol``: the protocol's
    crop in words (its normalization, background or voxel grid)."""

    size_px: int
    lateral_mm: float
    depth_mm: float
    test_shrink_from: int | None
    test_shrink: float
    protocol: str


@dataclass(frozen=True)
class FramesRecord:
    """A split's frames: ``used`` of ``total`` label lines (``dropped`` left out) chosen by ``rule`` (in
    words); ``unmatched``: names of a frame list that no label line has; ``fallback``: why the
    protocol's rule could not be applied and what was used instead ("" when it was applied);
    ``protocol``: the protocol's rule in words."""

    rule: str
    used: int
    total: int
    dropped: int
    unmatched: int = 0
    fallback: str = ""
    protocol: str = ""


@dataclass(frozen=True)
class CentresRecord:
    """A split's crop centres as used: ``source`` in words, ``counts`` frames per source (file, centre
    of mass, given, labels); ``protocol``: the protocol's centre sources (train; test) in words."""

    split: str
    source: str
    counts: dict[str, int]
    protocol: str


@dataclass(frozen=True)
class AugmentRecord:
    """``applied``: the augmentation hpbench applied in words, with its ``parameters`` (degrees, mm,
    scale factors of hpbench's generic augmentation; empty otherwise); ``protocol``: the protocol's
    transforms in order, each its kind and parameters plus ``status``: "applied", "approximated (how)"
    or "not applied (why)"; ``status`` of the whole list: :data:`AS_THE_PROTOCOL`, "approximated"
    (some approximated, none left out), "partly applied", "not applied" or :data:`NOT_YET_APPLIED`
    (hpbench's generic augmentation instead)."""

    applied: str
    parameters: dict[str, Any]
    protocol: tuple[dict[str, Any], ...]
    protocol_words: str
    status: str


@dataclass(frozen=True)
class ScheduleRecord:
    """``name``: "full" (the card's recipe) or "quick" (``hpbench run --quick``); ``steps``: optimizer
    steps planned; ``epochs``; ``batch``: the global batch (samples)."""

    name: str
    steps: int
    epochs: int
    batch: int


@dataclass(frozen=True)
class ProtocolRecord:
    """What ``model`` ran on ``dataset`` under: the card's protocol (``label``, ``origin``,
    ``borrowed``, ``source``, ``differences``, its checkpoint ``selection``) and what was applied."""

    model: str
    dataset: str
    label: str
    origin: str
    borrowed: str
    source: str
    differences: str
    selection: str
    crop: CropRecord
    train_frames: FramesRecord
    test_frames: FramesRecord
    centres: tuple[CentresRecord, ...]
    augmentation: AugmentRecord
    schedule: ScheduleRecord
    checkpoint: str = "final"

    def to_json(self) -> str:
        """The record as indented JSON (``protocol.json``)."""
        return json.dumps(asdict(self), indent=1)


def centre_words(choice: CentreChoice) -> dict[int, str]:
    """Each crop-cache centre source code in words (hpbench.data.cache.CENTER_*) for a split whose centres
    were chosen by ``choice``."""
    from hpbench.data.cache import CENTER_DEPTH, CENTER_FILE, CENTER_GIVEN, CENTER_INVALID, CENTER_LABELS

    low, high = choice.com_range_mm
    file = None if choice.file is None else choice.file.path
    return {CENTER_FILE: f"file {file}", CENTER_DEPTH: f"centre of mass (depth in {low:g}-{high:g} mm)",
            CENTER_GIVEN: "given per frame by the caller",
            CENTER_LABELS: "mean of the labelled joints (no depth in range)",
            CENTER_INVALID: f"invalid in file {file} (frame dropped from training)"}


def centres_record(split: str, protocol: Protocol, codes: np.ndarray, words: Mapping[int, str]) -> CentresRecord:
    """The centres of ``split`` from the crop cache's per-frame source ``codes``; ``words`` names each
    code's source (e.g. "file /data/center_train_refined.txt", "centre of mass (depth in 10-500 mm)")."""
    values, counts = np.unique(np.asarray(codes), return_counts=True)
    named = {words[int(code)]: int(count) for code, count in zip(values, counts, strict=True)}
    source = next(iter(named)) if len(named) == 1 else "; ".join(f"{name}: {plural(n, 'frame')}" for name, n in named.items())
    return CentresRecord(split, source, named, describe_centers(protocol.centers))


def augment_record(protocol: Protocol, applied: Any | None) -> AugmentRecord:
    """What became of the protocol's augmentation. ``applied``: the protocol's own transforms (a
    :class:`hpbench.data.augment.Augmenter` of ``protocol.augment``: each transform's status from it),
    hpbench's generic :class:`hpbench.data.crop.Augmentation` (:data:`NOT_YET_APPLIED`), or None
    (augmentation off: nothing applied)."""
    from hpbench.data.augment import APPLIED, APPROXIMATED, Augmenter

    if isinstance(applied, Augmenter):
        if applied.augment != protocol.augment or applied.crop != protocol.crop:
            raise ValueError("the augmenter was not built from this protocol's augment and crop")
        statuses = applied.statuses
        words, parameters = "the protocol's own transforms on cached crops (hpbench.data.augment)", {}
    elif applied is not None:
        statuses = ("not applied (hpbench's generic augmentation instead)",) * len(protocol.augment)
        words = ("hpbench's generic crop augmentation (hpbench.data.crop.Augmentation: uniform rotation, "
                 "scale, centre shift, dropout)")
        parameters = asdict(applied)
    else:
        statuses = ("not applied (augmentation off)",) * len(protocol.augment)
        words, parameters = "none", {}
    steps = tuple({**asdict(step), "status": status}
                  for step, status in zip(protocol.augment, statuses, strict=True))
    verdicts = [status.split(" (")[0] for status in statuses]
    if applied is not None and not isinstance(applied, Augmenter):
        status = NOT_YET_APPLIED
    elif all(verdict == APPLIED for verdict in verdicts):
        status = AS_THE_PROTOCOL
    elif all(verdict in (APPLIED, APPROXIMATED) for verdict in verdicts):
        status = APPROXIMATED
    elif any(verdict in (APPLIED, APPROXIMATED) for verdict in verdicts):
        status = "partly applied"
    else:
        status = "not applied"
    return AugmentRecord(words, parameters, steps, describe_augment(protocol.augment), status)


def frames_record(protocol: Protocol, used: int, total: int, rule: str, *, unmatched: int = 0,
                  fallback: str = "", split: str = "train") -> FramesRecord:
    """A split's frames record (see :class:`FramesRecord`)."""
    own = describe_frames(protocol.frames) if split == "train" else protocol.frames.test
    return FramesRecord(rule, used, total, total - used, unmatched, fallback, own)


def crop_record(protocol: Protocol, settings: Any, default_cube_mm: float) -> CropRecord:
    """The crop of :class:`hpbench.data.cache.CropSettings` ``settings`` as applied (a ``None`` edge is the
    dataset's ``default_cube_mm``)."""
    lateral = settings.cube_mm if settings.cube_mm is not None else default_cube_mm
    depth = settings.depth_mm if settings.depth_mm is not None else lateral
    return CropRecord(settings.size_px, float(lateral), float(depth), settings.test_shrink_from,
                      float(settings.test_shrink), describe_crop(protocol.crop))
