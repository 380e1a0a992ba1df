"""MSRA's leave-one-subject-out protocol: one run per held-out subject, scored once over all of them.

Protocols whose frames have ``folds`` > 0 (``hpbench.protocol.Frames``: TriHorn-Net's and
V2V-PoseNet's MSRA protocols, and the cards that borrow them) train fold k on the frames of every
subject but Pk and test it on Pk (design/protocols.md; TriHorn-Net train_eval_MSRA.bash L6-22). Each
frame is cropped with its own subject's cube where the crop gives ``per_subject_mm`` (TriHorn-Net's
``use_default_cube``: the cube follows the frame's subject, dataloader.py L758), so the held-out
subject's test frames use its cube and each training subject's frames use theirs; otherwise every
frame uses the protocol's one cube (V2V-PoseNet: 200 mm).

Layout: ``<results>/<dataset>/<model>-s<seed>/folds/P<k>/`` is fold k's own
:class:`hpbench.rundir.RunDir` (config, log, checkpoints, predictions of Pk, metrics with split
``fold-P<k>``), so a killed run resumes fold by fold: finished folds are reused, the interrupted one
resumes from its newest checkpoint. Once every fold is finished, their predictions are
concatenated in subject order P0..P8 (each subject's frames in label order) into the top folder's
predictions.txt, which is read back and scored once (metrics.csv, split ``test``); folds.json
holds the per-fold errors.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpbench._text import plural
from hpbench.rundir import FOLDS_DIR, RunDir, RunRefused

if TYPE_CHECKING:
    from hpbench.cards import ModelCard
    from hpbench.data.cache import CropCache, CropSettings
    from hpbench.data.centers import CentreChoice
    from hpbench.record import ProtocolRecord
    from hpbench.data.specs import DatasetSpec
    from hpbench.protocol import Protocol
    from hpbench.runparts import ModelRun, RunSettings
    from hpbench.scoring import Score

__all__ = ["FOLDS_DIR", "FOLDS_JSON", "FoldResult", "LosoResult", "Subjects", "loso_protocol", "run_loso",
           "subject_crop", "subjects"]

FOLDS_JSON = "folds.json"
"""Per-fold errors, beside the combined predictions."""


@dataclass(frozen=True)
class FoldResult:
    """One finished fold: held-out ``subject``, its run directory, its ``frames`` (test frames of the
    subject), their mean 3D error (mm), the subject's crop edge ``cube_mm`` (mm) and whether this call
    ``trained`` it (False: finished earlier and reused)."""

    subject: str
    run_dir: RunDir
    frames: int
    mean_error_mm: float
    cube_mm: float
    trained: bool


@dataclass(frozen=True)
class LosoResult:
    """A leave-one-subject-out run: the finished ``folds`` in subject order, the ``score`` of the
    concatenated predictions (None until every fold is finished), or the ``error`` that stopped it
    (``refused``: a fold's folder was left as it was)."""

    model: str
    run_dir: RunDir
    folds: tuple[FoldResult, ...] = ()
    score: Score | None = None
    error: str | None = None
    refused: bool = False

    @property
    def mean_error_mm(self) -> float | None:
        """Mean 3D error (mm) over all subjects' frames; None until every fold is finished."""
        return None if self.score is None else self.score.mean_error_mm

    def as_model_run(self) -> ModelRun:
        """The outcome as :class:`hpbench.runparts.ModelRun` (what ``hpbench run`` prints and reports)."""
        from hpbench.runparts import ModelRun

        notes: tuple[str, ...] = ()
        if self.folds:
            errors = [fold.mean_error_mm for fold in self.folds]
            cubes = sorted({fold.cube_mm for fold in self.folds})
            reused = [fold.subject for fold in self.folds if not fold.trained]
            notes = (f"{plural(len(self.folds), 'fold')} ({self.folds[0].subject}..{self.folds[-1].subject}): "
                     f"{min(errors):.2f}-{max(errors):.2f} mm per held-out subject, cube "
                     + (f"{cubes[0]:g}" if len(cubes) == 1 else f"{cubes[0]:g}-{cubes[-1]:g}") + " mm"
                     + (f"; reused finished {', '.join(reused)}" if reused else "")
                     + f"; per fold: {self.run_dir.path / FOLDS_JSON}",)
        return ModelRun(model=self.model, run_dir=self.run_dir, mean_error_mm=self.mean_error_mm, error=self.error,
                        notes=notes, refused=self.refused)


def subjects(dataset: DatasetSpec) -> tuple[str, ...]:
    """The dataset's subject splits in their original order (MSRA: P0..P8)."""
    if dataset.layout is None:
        raise ValueError(f"dataset {dataset.name!r} has no on-disk layout: no subjects to leave out")
    return tuple(split.name for split in dataset.layout.splits)


def loso_protocol(name: str, dataset: DatasetSpec) -> Protocol:
    """Model ``name``'s protocol on ``dataset``, checked to be leave-one-subject-out over the dataset's
    subjects. CardError (one line naming the card) when the card has no protocol for the dataset's
    format; ValueError when its protocol has no folds or another number of them."""
    from hpbench.cards import load_protocol
    from hpbench.evaluate import protocol_key

    protocol = load_protocol(name, protocol_key(dataset))
    folds, names = protocol.frames.folds, subjects(dataset)
    if folds != len(names):
        kind = "is not leave-one-subject-out (folds = 0)" if folds == 0 else f"has {folds} folds"
        raise ValueError(f"model {name!r}: its {protocol_key(dataset)} protocol ({protocol.origin}) {kind}; "
                         f"{dataset.name} has {len(names)} subjects ({', '.join(names)})")
    return protocol


def subject_crop(protocol: Protocol, subject: str) -> CropSettings:
    """The crop of ``subject``'s frames: the protocol's, with the subject's own cube edge (mm, all axes)
    where the crop gives ``per_subject_mm``; KeyError naming the subject when that table lacks it."""
    from hpbench.data.cache import CropSettings
    from hpbench.protocol import CubeCrop

    settings = CropSettings.of(protocol.crop)
    if not isinstance(protocol.crop, CubeCrop) or not protocol.crop.per_subject_mm:
        return settings
    table = protocol.crop.per_subject_mm
    if subject not in table:
        raise KeyError(f"{protocol.origin}'s per-subject cubes name {', '.join(table)}, not {subject}")
    return replace(settings, cube_mm=float(table[subject]), depth_mm=None)


@dataclass(frozen=True)
class _Job:
    """What every fold of one call shares: card, protocol, data and options."""

    card: ModelCard
    protocol: Protocol
    dataset: DatasetSpec
    seed: int
    settings: RunSettings
    top: RunDir
    data_root: Path | None
    centers: Path | None
    progress: bool
    echo: Callable[[str], None]


def run_loso(card: str, dataset: DatasetSpec, seed: int, settings: RunSettings, *, results_dir: Path,
             folds: Sequence[int] | None = None, progress: bool = True,
             echo: Callable[[str], None] = print) -> LosoResult:
    """Run model ``card`` on ``dataset`` leave-one-subject-out into
    ``results_dir/<dataset>/<card>-s<seed>/`` (see the module docstring).

    ``folds``: 0-based fold numbers to run now (default all; the others are left for another call);
    the concatenated predictions are scored once every fold is finished. ``settings.resume`` reuses
    finished folds and resumes an interrupted one from its checkpoints; ``settings.overwrite`` trains
    the folds run now again; without either, a fold folder holding an earlier run is refused.
    Centre files come from ``settings.centers`` (``--centers``, a folder) or the data root. A card
    without a protocol for the dataset, or whose protocol is not leave-one-subject-out, raises (CardError /
    ValueError, one line) before any work. A fold's failure stops the run: its traceback goes to the fold's
    error.txt and the returned result carries the one-line message.
    """
    from hpbench.runparts import load_registered_card, resolve_data_root, torch_threads

    protocol = loso_protocol(card, dataset)
    if settings.select != "final":
        raise ValueError("--select best-test is not implemented for leave-one-subject-out runs: each fold is "
                         "scored with its final checkpoint")
    names = subjects(dataset)
    chosen = sorted(set(range(len(names)) if folds is None else folds))
    if any(not 0 <= k < len(names) for k in chosen):
        raise ValueError(f"folds must be in 0..{len(names) - 1} ({', '.join(names)}), got {list(folds or [])}")
    top = RunDir.of(results_dir, dataset.name, card, seed)
    job = _Job(card=load_registered_card(card), protocol=protocol, dataset=dataset, seed=seed, settings=settings,
               top=top,
               data_root=resolve_data_root(dataset, settings, seed=seed, progress=progress), centers=settings.centers,
               progress=progress, echo=echo)
    done: dict[int, FoldResult] = {}
    with torch_threads(settings.threads):
        for k in range(len(names)):
            fold_dir = _fold_dir(top, names[k])
            try:
                if k in chosen:
                    done[k] = _fold(job, k)
                elif fold_dir.finished:
                    done[k] = _finished_fold(job, k, trained=False)
            except RunRefused as refused:
                return LosoResult(card, top, _ordered(done), error=str(refused), refused=True)
            except Exception as error:  # noqa: BLE001 (recorded in the fold's error.txt; the message goes back)
                return LosoResult(card, top, _ordered(done), error=_record(fold_dir, error))
    if len(done) < len(names):
        return LosoResult(card, top, _ordered(done))
    return LosoResult(card, top, _ordered(done), score=_combine(job, _ordered(done)))


def _ordered(done: dict[int, FoldResult]) -> tuple[FoldResult, ...]:
    return tuple(done[k] for k in sorted(done))


def _fold_dir(top: RunDir, subject: str) -> RunDir:
    return RunDir(top.folds / subject)


def _record(run_dir: RunDir, error: Exception) -> str:
    """The traceback to ``run_dir``'s error.txt; the one-line message naming the fold."""
    message = f"fold {run_dir.path.name}: {type(error).__name__}: {error}"
    try:
        run_dir.record_failure(traceback.format_exc())
    except OSError as unwritable:
        message += f" (and {run_dir.error} could not be written: {unwritable.strerror or unwritable})"
    return message


# --------------------------------------------------------------------------- one fold


def _fold(job: _Job, k: int) -> FoldResult:
    """Fold ``k`` in its own locked run directory: reused when finished and resuming, else trained
    (resumed from its checkpoints under ``resume``) and evaluated on subject k."""
    names = subjects(job.dataset)
    run_dir = _fold_dir(job.top, names[k])
    with run_dir.lock(echo=job.echo):
        held = run_dir.held_results()
        if held and not job.settings.resume and not job.settings.overwrite:
            raise RunRefused(f"{run_dir.path} already holds a run ({', '.join(held)}): --resume to continue it, "
                             "--overwrite to replace it")
        if job.settings.resume and run_dir.finished:
            return _finished_fold(job, k, trained=False)
        _train_fold(job, k, run_dir)
    return _finished_fold(job, k, trained=True)


def _finished_fold(job: _Job, k: int, *, trained: bool) -> FoldResult:
    """The record of finished fold ``k``, read from its run directory."""
    subject = subjects(job.dataset)[k]
    run_dir = _fold_dir(job.top, subject)
    mean = run_dir.mean_error_mm()
    if mean is None:
        raise ValueError(f"{run_dir.metrics}: no mean_error row")
    frames = len(run_dir.predictions.read_text().splitlines())
    cube = subject_crop(job.protocol, subject).cube_mm
    return FoldResult(subject=subject, run_dir=run_dir, frames=frames, mean_error_mm=mean,
                      cube_mm=float(cube if cube is not None else job.dataset.cube_mm), trained=trained)


def _train_fold(job: _Job, k: int, run_dir: RunDir) -> None:
    """Train fold ``k`` on the other subjects, evaluate on subject k: predictions and metrics in ``run_dir``."""
    import torch

    from hpbench.data.cache import CropDataset
    from hpbench.evaluate import evaluate
    from hpbench.runparts import (epoch_log, protocol_augmenter, protocol_model, run_environment, schedule,
                                  warning_callback)
    from hpbench.train import train

    names = subjects(job.dataset)
    test_cache, test_choice = _subject_cache(job, names[k], "test", k)
    spans = _train_spans(job, k)
    parts = [(number, *_subject_cache(job, name, "train", k, spans.get(name))) for number, name in enumerate(names)
             if number != k]
    keep = [_kept(job.protocol, cache) for _, cache, _ in parts]
    recipe, max_steps = schedule(job.card, job.settings, int(sum(mask.sum() for mask in keep)))
    config = _fold_config(job, k, recipe, max_steps, {"train": parts[0][2].note, "test": test_choice.note}, keep)
    if job.settings.resume:
        _check_resumable(run_dir, config)
    environment = run_environment(job.settings.device)
    if job.settings.overwrite:
        run_dir.clear()
    run_dir.clear_failure()
    if not job.settings.resume:
        run_dir.log.unlink(missing_ok=True)
    augmentation = protocol_augmenter(job.protocol, recipe.augment)
    run_dir.write_config(config)
    run_dir.write_protocol(_fold_record(job, k, recipe, max_steps, parts, keep, test_cache, test_choice,
                                        augmentation).to_json())
    run_dir.write_environment(environment)

    torch.manual_seed(job.seed)
    model = protocol_model(job.card.name, job.protocol, num_joints=test_cache.joints.shape[1])
    datasets = [CropDataset(cache, augmentation=augmentation, crop=job.protocol.crop,
                            seed=job.seed * len(names) + number) for number, cache, _ in parts]
    label = f"{job.card.name} {names[k]}"
    train(model, Subjects(datasets, keep), recipe, checkpoint_dir=run_dir.checkpoints, seed=job.seed,
          max_steps=max_steps, device=job.settings.device, resume=job.settings.resume, progress=job.progress,
          log=epoch_log(run_dir, label, job.echo), warn=warning_callback(run_dir, label, job.echo, True),
          compile=job.settings.compile, cpu_bf16=job.settings.bf16, name=label)
    score = evaluate(model, test_cache, dataset=job.dataset, method=job.card.name, crop=job.protocol.crop,
                     predictions_path=run_dir.predictions, device=job.settings.device, progress=job.progress)
    _write_rows(run_dir.metrics, score, environment, job.seed, split=f"fold-{names[k]}", marks=_marks(job))


def _marks(job: _Job) -> dict[str, str]:
    """The protocol label and schedule every result row of the run carries (the report footnotes them)."""
    from hpbench.evaluate import protocol_key
    from hpbench.record import protocol_label

    return {"protocol": protocol_label(job.protocol, protocol_key(job.dataset)),
            "schedule": "quick" if job.settings.quick else "full"}


def _fold_record(job: _Job, k: int, recipe: Any, max_steps: int | None, parts: Sequence[tuple[int, CropCache, Any]],
                 keep: Sequence[np.ndarray], test_cache: CropCache, test_choice: Any,
                 augmentation: Any) -> ProtocolRecord:
    """protocol.json of fold ``k``: the protocol and what the fold applies (the held-out subject's crop,
    the other subjects' frames, each split's centres as used)."""
    from hpbench.record import (ProtocolRecord, ScheduleRecord, augment_record, centre_words, centres_record,
                                crop_record, frames_record)
    from hpbench.train import planned_steps

    names, protocol = subjects(job.dataset), job.protocol
    used, total = int(sum(mask.sum() for mask in keep)), int(sum(len(mask) for mask in keep))
    _, steps = planned_steps(used, recipe, max_steps, 1, job.card.name)
    train_codes = np.concatenate([np.asarray(cache.center_source) for _, cache, _ in parts])
    others = ", ".join(name for number, name in enumerate(names) if number != k)
    return ProtocolRecord(
        model=job.card.name, dataset=job.dataset.name, label=_marks(job)["protocol"], origin=protocol.origin,
        borrowed=protocol.borrowed, source=protocol.source, differences=protocol.differences,
        selection=protocol.selection,
        crop=crop_record(protocol, subject_crop(protocol, names[k]), job.dataset.cube_mm),
        train_frames=frames_record(protocol, used, total, f"every frame of {others}"),
        test_frames=frames_record(protocol, len(test_cache), len(test_cache), f"every frame of {names[k]}",
                                  split="test"),
        centres=(centres_record("train", protocol, train_codes, centre_words(parts[0][2])),
                 centres_record("test", protocol, test_cache.center_source, centre_words(test_choice))),
        augmentation=augment_record(protocol, augmentation),
        schedule=ScheduleRecord(_marks(job)["schedule"], steps, recipe.epochs, recipe.batch_size))


def _train_spans(job: _Job, k: int) -> dict[str, tuple[int, int]]:
    """Where each training subject of fold ``k`` lies in a per-fold training centre file (V2V-PoseNet's
    center_train_{fold}_refined.txt: every training subject's frames in subject order): subject ->
    (first line, total lines); empty when the protocol's training centres are not per fold."""
    from hpbench.data.formats import open_split

    if "{fold}" not in job.protocol.centers.train_file:
        return {}
    names = subjects(job.dataset)
    counts = {name: len(open_split(job.dataset, name, data_root=job.data_root))
              for number, name in enumerate(names) if number != k}
    total, spans = sum(counts.values()), {}
    first = 0
    for name, count in counts.items():
        spans[name] = (first, total)
        first += count
    return spans


def _subject_cache(job: _Job, subject: str, role: str, k: int,
                   lines: tuple[int, int] | None = None) -> tuple[CropCache, CentreChoice]:
    """``subject``'s crop cache in ``role`` (train, test) of fold ``k`` (its crop, the protocol's centres
    for the role; ``lines``: its part of a centre file shared by the fold's subjects) and the centre choice."""
    from hpbench.data.cache import open_protocol_cache

    cache, choice = open_protocol_cache(job.dataset, subject, subject_crop(job.protocol, subject),
                                        job.protocol.centers, role=role, given=job.centers, fold=k, lines=lines,
                                        data_root=job.data_root, progress=job.progress)
    return cache, choice


def _kept(protocol: Protocol, cache: CropCache) -> np.ndarray:
    """(N,) bool: the training frames of ``cache`` the protocol keeps (valid-centers: those with a centre)."""
    if protocol.frames.train == "valid-centers":
        return np.asarray(cache.valid, dtype=bool)
    return np.ones(len(cache), dtype=bool)


def _fold_config(job: _Job, k: int, recipe: Any, max_steps: int | None, centres: dict[str, str],
                 keep: Sequence[np.ndarray]) -> dict[str, Any]:
    """config.json of fold ``k``: what ran (crops per subject, mm)."""
    names = subjects(job.dataset)
    precision = job.settings.precision(recipe)
    return {"model": job.card.name, "dataset": job.dataset.name, "seed": job.seed, "fold": names[k],
            "train_subjects": [name for number, name in enumerate(names) if number != k],
            "recipe": {**asdict(recipe), "mixed_precision": precision["mixed_precision"]},
            "autocast": precision["autocast"],
            "crop": {name: asdict(subject_crop(job.protocol, name)) for name in names},
            "max_steps": max_steps, "quick": job.settings.quick, "compile": job.settings.compile,
            "data_root": str(job.data_root or ""), "protocol": job.protocol.origin, "centers": centres,
            "train_frames": int(sum(mask.sum() for mask in keep)),
            "dropped_train_frames": int(sum((~mask).sum() for mask in keep)),
            "evaluated_checkpoint": "final (no test-set checkpoint selection)"}


_UNTRAINED_KEYS = frozenset({"compile", "evaluated_checkpoint", "centers"})


def _check_resumable(run_dir: RunDir, config: dict[str, Any]) -> None:
    """RunRefused naming each training setting of ``config`` that differs from the fold's config.json."""
    if not run_dir.config.is_file():
        return
    try:
        saved = run_dir.read_config()
    except ValueError as error:
        raise RunRefused(f"--resume: {error}; --overwrite to start again") from None
    now = json.loads(json.dumps(config, default=float))
    changed = [key for key in now if key not in _UNTRAINED_KEYS and key in saved and saved[key] != now[key]]
    if changed:
        raise RunRefused(f"--resume: {run_dir.config} was written with other {', '.join(changed)} (resume with "
                         "the run's settings, or --overwrite to start it again)")


class Subjects:
    """Several subjects' training frames as one torch dataset, in subject order: ``parts`` (one
    :class:`hpbench.data.cache.CropDataset` per subject, each cropped with its own cube) restricted
    to the frames ``keep`` marks. Items are the parts' items, ``index`` renumbered over the whole."""

    def __init__(self, parts: Sequence[Any], keep: Sequence[np.ndarray]) -> None:
        if len(parts) != len(keep):
            raise ValueError(f"{len(parts)} subjects but {len(keep)} frame masks")
        self.parts = list(parts)
        self.rows = [np.flatnonzero(mask) for mask in keep]
        self.starts = np.cumsum([0] + [len(rows) for rows in self.rows])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """The items at ``indices`` (0-based over all subjects), each fetched in a batch from its subject."""
        where = np.searchsorted(self.starts, indices, side="right") - 1
        items: list[dict[str, Any]] = [{} for _ in indices]
        for part in np.unique(where):
            slots = np.flatnonzero(where == part)
            local = [int(self.rows[part][indices[slot] - self.starts[part]]) for slot in slots]
            for slot, item in zip(slots, self.parts[part].__getitems__(local), strict=True):
                items[slot] = {**item, "index": int(indices[slot])}
        return items


# --------------------------------------------------------------------------- all folds


def _combine(job: _Job, folds: Sequence[FoldResult]) -> Score:
    """Concatenate the folds' predictions in subject order into the top predictions.txt, read it back
    and score it once against every subject's labels; metrics.csv, folds.json and config.json beside it."""
    from hpbench.data.formats import open_split
    from hpbench.evaluate import frame_names
    from hpbench.predictions import read_prediction_file, write_prediction_file
    from hpbench.runparts import run_environment
    from hpbench.scoring import GroundTruth, ReadOptions, score_predictions

    spec, joints = job.dataset, job.dataset.num_joints
    indexes = [open_split(spec, fold.subject, data_root=job.data_root) for fold in folds]
    files = [str(file) for index in indexes for file in index.files]
    uvd = np.concatenate([index.uvd for index in indexes])
    predicted = np.concatenate([read_prediction_file(fold.run_dir.predictions, num_joints=joints,
                                                     dataset=spec.name).joints for fold in folds])
    if len(predicted) != len(uvd):
        raise ValueError(f"{job.top.path}: the folds predict {len(predicted)} frames, the subjects hold {len(uvd)}")
    names = frame_names(files)
    with job.top.lock(echo=job.echo):
        path = write_prediction_file(job.top.predictions, predicted, names=names)
        truth = GroundTruth(dataset=spec, uvd=uvd, names=tuple(names or (f"frame_{i:06d}" for i in range(len(uvd)))),
                            source=indexes[0].root)
        score = score_predictions(read_prediction_file(path, num_joints=joints, dataset=spec.name), truth,
                                  ReadOptions(coords="uvd", check=False), method=job.card.name)
        _write_rows(job.top.metrics, score, run_environment(job.settings.device), job.seed, split="test",
                    marks=_marks(job))
        (job.top.path / FOLDS_JSON).write_text(json.dumps(
            [{"subject": f.subject, "frames": f.frames, "mean_error_mm": f.mean_error_mm, "cube_mm": f.cube_mm}
             for f in folds], indent=1))
        job.top.write_config({"model": job.card.name, "dataset": spec.name, "seed": job.seed,
                              "protocol": job.protocol.origin, "folds": [f.subject for f in folds],
                              "fold_dirs": f"{FOLDS_DIR}/<subject>",
                              "order": "subjects in order, frames in label order"})
    return score


def _write_rows(path: Path, score: Score, environment: dict[str, Any], seed: int, *, split: str,
                marks: dict[str, str]) -> None:
    """``score``'s tidy rows with split ``split``, the run's provenance and ``marks`` (protocol, schedule), to
    ``path``."""
    from hpbench.results import write_results

    rows = score.rows()
    rows["split"] = split
    provenance = {"device": f"{environment['device']}: {environment['device_name']}", "torch": environment["torch"],
                  "hpbench": environment["hpbench"], "git_commit": environment["git_commit"], "seed": seed, **marks}
    for key, value in provenance.items():
        rows[key] = value
    write_results(rows, path)
