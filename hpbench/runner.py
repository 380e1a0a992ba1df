"""The main job: models x dataset -> train, evaluate, profile, report, each model isolated.

Each (model, dataset, seed) runs into its :class:`hpbench.rundir.RunDir`
(``results/<dataset>/<model>-s<seed>/``), which holds everything needed to trust
and reproduce a number: its config, environment, epoch log, checkpoints,
community-format predictions and tidy result rows, or the traceback of its
failure. :func:`run_one` is the one way a run happens (``hpbench train``,
``hpbench run`` and every sweep job); the report is built from the result files
only, next to the published methods' predictions when the test set is a real one
and the handpose-eval folder is present.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpbench._text import plural
from hpbench.rundir import RunDir, RunRefused
from hpbench.runparts import (QUICK_TEST_FRAMES, ModelRun, RunSettings, epoch_log, load_registered_card,
                              protocol_augmenter, protocol_model, resolve_data_root, run_environment, schedule,
                              torch_threads, warning_callback)

if TYPE_CHECKING:
    from hpbench.cards import ModelCard
    from hpbench.data.centers import CentreChoice
    from hpbench.data.specs import DatasetSpec
    from hpbench.protocol import Protocol
    from hpbench.record import ProtocolRecord
    from hpbench.scoring import Score
    from hpbench.train import TrainResult

__all__ = ["FLOOR_MODEL", "QUICK_TEST_FRAMES", "ModelRun", "RunConfig", "RunSettings", "report_dataset", "score_model",
           "resolve_data_root", "run", "run_one", "schedule", "with_floor"]

FLOOR_MODEL = "meanpose"
BEST_ON_TEST = "best-on-test checkpoint"
"""Appended to the protocol label of a result chosen among its epoch checkpoints on the test set."""


@dataclass(frozen=True)
class RunConfig:
    """``models`` (and the mean-pose floor unless ``floor`` is False) on ``dataset`` with ``seed`` and
    ``settings``: run directories under ``results_dir``, the report in ``reports_dir/<dataset>/``,
    published predictions from the handpose-eval folder ``eval_dir`` (None: found as usual)."""

    models: tuple[str, ...]
    dataset: DatasetSpec
    seed: int = 0
    settings: RunSettings = RunSettings()
    results_dir: Path = Path("results")
    reports_dir: Path = Path("reports")
    floor: bool = True
    eval_dir: Path | None = None


def with_floor(models: Sequence[str], floor: bool) -> tuple[str, ...]:
    """``models`` without repeats, then the floor model ``FLOOR_MODEL`` when ``floor`` (unless already there)."""
    names = tuple(dict.fromkeys(models))
    return names + (FLOOR_MODEL,) if floor and FLOOR_MODEL not in names else names


def run_one(model: str, dataset: DatasetSpec, seed: int, settings: RunSettings, *, results_dir: Path,
            progress: bool = True, echo: Callable[[str], None] = print) -> ModelRun:
    """Train, evaluate and (``settings.profile``) profile ``model`` on ``dataset`` with ``seed`` into its
    :class:`RunDir` under ``results_dir``: the one way a run happens. A dataset split by subject
    (MSRA) runs leave-one-subject-out (:func:`hpbench.loso.run_loso`: a run per fold, scored once).

    The data root is :func:`resolve_data_root`'s (a synthetic set is rendered with
    ``seed`` when none is given). The run owns its directory (:meth:`RunDir.lock`) while
    it runs. A refusal (the directory is busy, holds an earlier run without
    ``resume``/``overwrite``, or ``resume`` meets other settings) leaves the directory
    as it was; a failure is not raised: its traceback goes to the run directory's
    error.txt. Either way the returned run carries the one-line message, so that one
    model's failure never sinks the others.
    """
    from hpbench import distributed

    problem = settings.hardware_problem()  # this machine's own check (a sweep's Slurm node is not the submitter)
    if problem:
        return ModelRun(model=model, run_dir=RunDir.of(results_dir, dataset.name, model, seed), refused=True,
                        error=problem)
    if _subject_splits(dataset):
        return _run_loso(model, dataset, seed, settings, results_dir=results_dir, progress=progress, echo=echo)
    run_dir = RunDir.of(results_dir, dataset.name, model, seed)
    try:
        with contextlib.ExitStack() as owned:
            refusal = None
            try:
                if distributed.is_main():  # under torchrun, rank 0 owns the directory for every rank
                    owned.enter_context(run_dir.lock(echo=echo))
                _check_fresh(run_dir, settings)
            except RunRefused as error:
                refusal = error
            _agree(refusal)
            return _attempt(model, dataset, seed, settings, run_dir, progress=progress, echo=echo)
    except RunRefused as refused:
        return ModelRun(model=model, run_dir=run_dir, error=str(refused), refused=True)


def _subject_splits(dataset: DatasetSpec) -> bool:
    """Whether ``dataset`` is split by subject (MSRA's P0..P8) instead of into train and test."""
    return dataset.layout is not None and "train" not in {split.name for split in dataset.layout.splits}


def _run_loso(model: str, dataset: DatasetSpec, seed: int, settings: RunSettings, *, results_dir: Path,
              progress: bool, echo: Callable[[str], None]) -> ModelRun:
    """:func:`run_one` on a dataset split by subject. A card without a leave-one-subject-out protocol for
    it is refused with the card's one-line reason before any work."""
    from hpbench.cards import CardError
    from hpbench.loso import run_loso

    try:
        return run_loso(model, dataset, seed, settings, results_dir=results_dir, progress=progress,
                        echo=echo).as_model_run()
    except (CardError, ValueError) as error:
        return ModelRun(model=model, run_dir=RunDir.of(results_dir, dataset.name, model, seed), error=str(error),
                        refused=True)


def _check_fresh(run_dir: RunDir, settings: RunSettings) -> None:
    """RunRefused when ``run_dir`` holds an earlier run and neither ``resume`` nor ``overwrite`` is set."""
    held = run_dir.held_results()
    if held and not settings.resume and not settings.overwrite:
        raise RunRefused(f"{run_dir.path} already holds a run ({', '.join(held)}): --resume to continue it, "
                         "--overwrite to replace it")


def _agree(refusal: RunRefused | None) -> None:
    """Raise ``refusal``; under torchrun every rank raises when any rank refuses (a collective: every
    rank must call it), so that none is left training alone."""
    from hpbench import distributed

    if distributed.is_distributed():
        import torch

        if distributed.all_reduce_sum(torch.tensor(float(refusal is not None))).item() and refusal is None:
            raise RunRefused(f"refused on another rank (rank 0 says why); this is rank {distributed.rank()}")
    if refusal is not None:
        raise refusal


def _attempt(model: str, dataset: DatasetSpec, seed: int, settings: RunSettings, run_dir: RunDir, *,
             progress: bool, echo: Callable[[str], None]) -> ModelRun:
    """:func:`run_one` in its owned directory: a failure recorded in error.txt, a refusal raised."""
    try:
        with torch_threads(settings.threads):
            return _train_and_score(load_registered_card(model), dataset, seed, settings, run_dir, progress=progress,
                                    echo=echo)
    except RunRefused:
        raise
    except Exception as error:  # recorded and returned: the caller reports it and goes on
        message = f"{type(error).__name__}: {error}"
        try:
            run_dir.record_failure(traceback.format_exc())
        except OSError as unwritable:  # a full disk or a read-only folder: the message still goes back
            message += f" (and {run_dir.error} could not be written: {unwritable.strerror or unwritable})"
        return ModelRun(model=model, run_dir=run_dir, error=message)


# config.json keys that leave the trained weights as they are: a resumed run may change them (the
# protocol and training frames are compared: a run resumed under another protocol is refused naming them)
_UNTRAINED_KEYS = frozenset({"compile", "evaluated_checkpoint", "world_size"})


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """``config``'s training settings as one level: recipe fields by name, crop fields as ``crop.<name>``."""
    flat = {}
    for key, value in config.items():
        if key in _UNTRAINED_KEYS:
            continue
        if key in ("recipe", "crop") and isinstance(value, dict):
            flat.update({(name if key == "recipe" else f"crop.{name}"): item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def _check_resumable(run_dir: RunDir, config: dict[str, Any]) -> None:
    """RunRefused naming each training setting of ``config`` that differs from the run's config.json."""
    import json

    if not run_dir.config.is_file():
        return
    try:
        saved = _flat(run_dir.read_config())
    except ValueError as error:  # names config.json
        raise RunRefused(f"--resume: {error}; --overwrite to start again") from None
    now = _flat(json.loads(json.dumps(config, default=float)))

    def show(value: Any) -> str:
        return value if isinstance(value, str) and value else json.dumps(value)

    changed = [f"{key} {show(saved[key])} in config.json, {show(now[key])} now" for key in now
               if key in saved and saved[key] != now[key]]
    if changed:
        raise RunRefused(f"--resume: {'; '.join(changed)} (resume with the run's settings, or --overwrite to "
                         "start it again)")


def _claim(run_dir: RunDir, config: dict[str, Any], environment: dict[str, Any], settings: RunSettings,
           record: ProtocolRecord) -> None:
    """Checks passed on every rank (their :func:`_agree` let every rank read config.json before rank 0
    writes it): rank 0 clears the directory (``overwrite``) or forgets an earlier failure, and writes
    the config, protocol record and environment of this run."""
    from hpbench import distributed

    if not distributed.is_main():
        return
    if settings.overwrite:
        run_dir.clear()
    run_dir.clear_failure()  # of an earlier attempt
    if not settings.resume:
        run_dir.log.unlink(missing_ok=True)
    run_dir.write_config(config)
    run_dir.write_protocol(record.to_json())
    run_dir.write_environment(environment)


@dataclass(frozen=True)
class _Data:
    """What a run trains and is tested on: the card's ``protocol`` for the dataset (``label`` in result
    rows), its ``crop`` (hpbench.data.cache.CropSettings), the data root given (``data_root``) and
    resolved (``root``), the crop caches, the centre file each split's cache read (None: none) and the
    training frames (hpbench.data.framelists.TrainingFrames)."""

    protocol: Protocol
    label: str
    crop: Any
    data_root: Path | None
    root: Path
    train_cache: Any
    test_cache: Any
    centres: dict[str, CentreChoice]
    frames: Any


def _open_data(card: ModelCard, dataset: DatasetSpec, seed: int, settings: RunSettings, progress: bool) -> _Data:
    """The protocol, crop caches (centres as the protocol chooses them, or from ``settings.centers``) and
    training frames of ``card``'s model on ``dataset``."""
    from hpbench import distributed
    from hpbench.cards import load_protocol
    from hpbench.data.cache import CropSettings, open_protocol_cache
    from hpbench.data.formats import resolve_root
    from hpbench.data.framelists import training_frames
    from hpbench.evaluate import protocol_key
    from hpbench.record import protocol_label

    key = protocol_key(dataset)
    protocol = load_protocol(card.name, key)
    crop = CropSettings.of(protocol.crop)
    with distributed.main_first():  # rank 0 renders the data and builds the caches, the others open them
        data_root = resolve_data_root(dataset, settings, seed=seed, progress=progress)
        (train_cache, train_centres), (test_cache, test_centres) = (
            open_protocol_cache(dataset, split, crop, protocol.centers, given=settings.centers, data_root=data_root,
                                progress=progress) for split in ("train", "test"))
    root = resolve_root(dataset, data_root)
    valid = train_cache.valid if train_centres.file is not None else None
    frames = training_frames(protocol.frames, dataset, root, train_cache.files, valid_centers=valid)
    return _Data(protocol, protocol_label(protocol, key), crop, data_root, root, train_cache, test_cache,
                 {"train": train_centres, "test": test_centres}, frames)


def _run_config(card: ModelCard, dataset: DatasetSpec, seed: int, settings: RunSettings, recipe: Any,
                data: _Data, max_steps: int | None) -> dict[str, Any]:
    """config.json of a run: what ran (mixed precision as used: float16 autocast on CUDA, bfloat16 on a CPU
    with ``--bf16``), under which protocol, on which training frames."""
    from hpbench import distributed

    precision = settings.precision(recipe)
    selection = data.frames.selection
    frames = f"{len(selection.indices)}/{selection.total}: {data.frames.fallback or selection.rule}"
    return {"model": card.name, "dataset": dataset.name, "seed": seed, "protocol": data.label,
            "recipe": {**asdict(recipe), "mixed_precision": precision["mixed_precision"]},
            "autocast": precision["autocast"], "crop": asdict(data.crop), "max_steps": max_steps,
            "train_frames": frames, "quick": settings.quick, "compile": settings.compile,
            "data_root": str(data.data_root or ""),
            "evaluated_checkpoint": ("best of the epoch checkpoints on the test set" if settings.select == "best-test"
                                     else "final (no test-set checkpoint selection)"),
            "world_size": distributed.world_size()}


def _protocol_record(card: ModelCard, dataset: DatasetSpec, data: _Data, recipe: Any, max_steps: int | None,
                     settings: RunSettings, augmentation: Any | None) -> ProtocolRecord:
    """The run's protocol record: the card's protocol and what this run applies."""
    from hpbench import distributed
    from hpbench.record import (ProtocolRecord, ScheduleRecord, augment_record, centre_words, centres_record,
                                crop_record, frames_record)
    from hpbench.train import planned_steps

    protocol, selection, tests = data.protocol, data.frames.selection, len(data.test_cache)
    _, steps = planned_steps(len(selection.indices), recipe, max_steps, distributed.world_size(), card.name)
    centres = tuple(centres_record(split, protocol, cache.center_source,
                                   centre_words(data.centres[split]))
                    for split, cache in (("train", data.train_cache), ("test", data.test_cache)))
    return ProtocolRecord(
        model=card.name, dataset=dataset.name, label=data.label, origin=protocol.origin, borrowed=protocol.borrowed,
        source=protocol.source, differences=protocol.differences, selection=protocol.selection,
        crop=crop_record(protocol, data.crop, dataset.cube_mm),
        train_frames=frames_record(protocol, len(selection.indices), selection.total, selection.rule,
                                   unmatched=selection.unmatched, fallback=data.frames.fallback),
        test_frames=frames_record(protocol, tests, tests, "all label lines", split="test"),
        centres=centres, augmentation=augment_record(protocol, augmentation),
        schedule=ScheduleRecord("quick" if settings.quick else "full", steps, recipe.epochs, recipe.batch_size))


def _training_set(data: _Data, augmentation: Any | None, seed: int) -> Any:
    """The training dataset: the train crop cache, restricted to the protocol's frames when they are fewer."""
    from hpbench.data.cache import CropDataset
    from hpbench.train import FrameSubset

    everything = CropDataset(data.train_cache, augmentation=augmentation, crop=data.protocol.crop, seed=seed)
    indices = data.frames.selection.indices
    return everything if len(indices) == len(data.train_cache) else FrameSubset(everything, indices.tolist())


def _train_and_score(card: ModelCard, dataset: DatasetSpec, seed: int, settings: RunSettings, run_dir: RunDir, *,
                     progress: bool, echo: Callable[[str], None]) -> ModelRun:
    """:func:`run_one` without the failure record. Under torchrun every rank trains; rank 0 alone
    writes, evaluates and profiles."""
    import torch

    from hpbench import distributed
    from hpbench.evaluate import evaluate
    from hpbench.train import train

    data = _open_data(card, dataset, seed, settings, progress)
    recipe, max_steps = schedule(card, settings, len(data.frames.selection.indices))
    main = distributed.is_main()
    environment = run_environment(settings.device)
    config = _run_config(card, dataset, seed, settings, recipe, data, max_steps)
    refusal = None
    try:
        if settings.resume:
            _check_resumable(run_dir, config)
    except RunRefused as error:
        refusal = error
    _agree(refusal)
    augmentation = protocol_augmenter(data.protocol, recipe.augment)
    record = _protocol_record(card, dataset, data, recipe, max_steps, settings, augmentation)
    _claim(run_dir, config, environment, settings, record)
    warn = warning_callback(run_dir, card.name, echo, main)
    if main and data.frames.warn:
        warn(f"training frames: {data.frames.fallback} (the protocol's {data.protocol.frames.train!r} rule is "
             "not applied)")

    torch.manual_seed(seed)
    model = protocol_model(card.name, data.protocol, num_joints=data.train_cache.joints.shape[1])
    result = train(model, _training_set(data, augmentation, seed), recipe, checkpoint_dir=run_dir.checkpoints,
                   seed=seed, max_steps=max_steps, device=settings.device, resume=settings.resume, progress=progress,
                   log=epoch_log(run_dir, card.name, echo), warn=warn, compile=settings.compile,
                   cpu_bf16=settings.bf16, name=card.name)
    if not main:
        return ModelRun(model=card.name, run_dir=run_dir,
                        notes=(f"rank {distributed.rank()}: trained; rank 0 evaluates",))
    label, evaluated = data.label, f"evaluated the final checkpoint {result.checkpoint.name}"
    if settings.select == "best-test":
        evaluated = _select_on_test(model, card.name, dataset, data, run_dir, settings, progress)
        label = f"{data.label}, {BEST_ON_TEST}"
        run_dir.write_protocol(replace(record, checkpoint=evaluated).to_json())
    score = evaluate(model, data.test_cache, dataset=dataset, method=card.name, predictions_path=run_dir.predictions,
                     device=settings.device, progress=progress, crop=data.protocol.crop)
    marks = {"protocol": label, "schedule": record.schedule.name}
    _write_metrics(run_dir, score, environment, seed, marks)
    if settings.profile:
        _write_profile(run_dir, card.name, dataset, settings.threads, marks)
    return ModelRun(model=card.name, run_dir=run_dir, mean_error_mm=score.mean_error_mm,
                    notes=_notes(result, settings.resume, run_dir, evaluated))


def _select_on_test(model: Any, name: str, dataset: DatasetSpec, data: _Data, run_dir: RunDir, settings: RunSettings,
                    progress: bool) -> str:
    """``--select best-test``: score every epoch checkpoint of the run on the test set and load the best
    into ``model`` (TriHorn-Net's and A2J's reported numbers are chosen so); returns the choice in words."""
    import tempfile

    from hpbench.evaluate import evaluate
    from hpbench.train import load_checkpoint_weights

    checkpoints = sorted(run_dir.checkpoints.glob("epoch[0-9][0-9][0-9][0-9].safetensors"))  # weights, not optim
    errors = {}
    with tempfile.TemporaryDirectory(prefix="hpbench-select-") as scratch:
        for path in checkpoints:
            load_checkpoint_weights(model, path)
            errors[path] = evaluate(model, data.test_cache, dataset=dataset, method=f"{name} {path.stem}",
                                    predictions_path=Path(scratch) / "predictions.txt", device=settings.device,
                                    progress=progress, crop=data.protocol.crop).mean_error_mm
    best = min(errors, key=errors.__getitem__)
    load_checkpoint_weights(model, best)
    return (f"best on the test set: {best.stem} ({errors[best]:.2f} mm) of {plural(len(errors), 'epoch checkpoint')} "
            f"(the final {checkpoints[-1].stem}: {errors[checkpoints[-1]]:.2f} mm)")


def _notes(result: TrainResult, resume: bool, run_dir: RunDir, evaluated: str) -> tuple[str, ...]:
    """What training did, said to the user: trained (resumed at epoch N, or from the start when ``resume``
    found no checkpoint), or nothing to train (a finished run resumed); the checkpoint evaluated; warnings."""
    if result.already_finished:
        trained = (f"resumed at epoch {result.epochs}, already finished ({plural(result.steps, 'step')}): "
                   "nothing trained, evaluated again")
    else:
        trained = (f"trained {plural(result.epochs, 'epoch')} / {plural(result.steps, 'step')} in "
                   f"{result.seconds:.0f} s")
        if result.resumed_from_epoch:
            trained += f" (resumed at epoch {result.resumed_from_epoch})"
        elif resume:
            trained += f" (--resume: no checkpoint in {run_dir.checkpoints}, trained from the start)"
    return (trained, evaluated, *result.warnings)


def _write_metrics(run_dir: RunDir, score: Score, environment: dict[str, Any], seed: int,
                   marks: dict[str, str]) -> None:
    """The score's tidy rows with their provenance and ``marks`` (protocol, schedule), to metrics.csv."""
    from hpbench.results import write_results

    rows = score.rows()
    provenance = {"device": f"{environment['device']}: {environment['device_name']}", "torch": environment["torch"],
                  "hpbench": environment["hpbench"], "git_commit": environment["git_commit"], "seed": seed, **marks}
    for key, value in provenance.items():
        rows[key] = value
    write_results(rows, run_dir.metrics)


def _write_profile(run_dir: RunDir, name: str, dataset: DatasetSpec, threads: int | None,
                   marks: dict[str, str]) -> None:
    """Parameters, MACs and a short latency measurement of model ``name`` with ``marks`` (protocol,
    schedule), to profile.csv: one runtime, eager PyTorch on :func:`hpbench.fuse.fuse_for_inference`'s
    model (named in the rows), so that a report has one latency per model (``hpbench profile`` for more)."""
    from hpbench.latency import Budget, Runtime
    from hpbench.profile import profile_models, profile_rows
    from hpbench.results import write_results

    short = Budget(seconds=2.0, samples=10, min_samples=3, rounds=1, repeat=False)  # a glance; figures say if unreliable
    profiles = profile_models([name], dataset=dataset.name, threads=threads, runtimes=(Runtime.FUSED,), budget=short,
                              sweep=False, fvcore=False, onnxruntime=False)
    rows = profile_rows(profiles)
    for key, value in marks.items():
        rows[key] = value
    write_results(rows, run_dir.profile)


def run(config: RunConfig, *, progress: bool = True, echo: Callable[[str], None] = print
        ) -> tuple[list[ModelRun], list[Path]]:
    """Run every model (a failing one is recorded in its error.txt, the rest go on), then report.

    Returns the model runs and the report files written.
    """
    runs = []
    for name in with_floor(config.models, config.floor):
        outcome = run_one(name, config.dataset, config.seed, config.settings, results_dir=config.results_dir,
                          progress=progress, echo=echo)
        if outcome.refused:
            echo(f"{name}: refused: {outcome.error}")
        elif outcome.error is not None:
            echo(f"{name}: FAILED ({outcome.error}); traceback in {outcome.run_dir.error}")
        runs.append(outcome)
    return runs, report_dataset(config.dataset, [r.run_dir for r in runs if r.error is None],
                                out=config.reports_dir / config.dataset.name, eval_dir=config.eval_dir)


def report_dataset(dataset: DatasetSpec, run_dirs: Sequence[RunDir], *, out: Path,
                   eval_dir: Path | None = None) -> list[Path]:
    """Report of the runs' result files plus the published methods on a real test set."""
    from hpbench.report import write_report
    from hpbench.scoring import collect_results, find_eval_dir

    sources = [path for run_dir in run_dirs for path in run_dir.result_files()]
    published_dir = None
    if dataset.test_labels is not None:
        root = find_eval_dir(eval_dir)
        if root is not None and (root / "results" / dataset.name).is_dir():
            published_dir = root / "results" / dataset.name
    results, _ = collect_results(sources + ([published_dir] if published_dir else []), dataset=dataset.name,
                                 eval_dir=eval_dir)
    if results.empty:
        return []
    return write_report(results, out)


def score_model(name: str, checkpoint: Path | None, *, dataset: DatasetSpec, data_root: Path | None,
                save: Path | None, device: str = "cpu", progress: bool = True,
                centers: Path | None = None) -> tuple[Score, Path, Path | None]:
    """Score model ``name`` with ``checkpoint`` (None: its card's shipped one) on ``dataset``'s test split
    (a synthetic one rendered without its train split unless already there), cropped around the test
    centres its protocol chooses or ``centers`` (``--centers``: a file, or a folder holding the protocol's).

    The predictions and result rows go to ``save/<dataset>/<name>.txt`` and ``.csv`` when ``save`` is given;
    otherwise they are written to a temporary folder that is removed. Returns the score, the weights used and
    the predictions file kept (None without ``save``).
    """
    import tempfile

    from hpbench.evaluate import evaluate_checkpoint
    from hpbench.results import write_results

    root = resolve_data_root(dataset, RunSettings(data_root=data_root), progress=progress, test_only=True)
    with tempfile.TemporaryDirectory(prefix="hpbench-eval-") as scratch:
        folder = save / dataset.name if save is not None else Path(scratch)
        score, used = evaluate_checkpoint(name, checkpoint, dataset=dataset, data_root=root,
                                          predictions_path=folder / f"{name}.txt", device=device, progress=progress,
                                          centers=centers)
        if save is None:
            return score, used, None
    write_results(score.rows(), folder / f"{score.method}.csv")
    return score, used, folder / f"{name}.txt"
