"""The main job: models x dataset -> train, evaluate, profile, report, each model isolated.

A run directory per (dataset, model, seed) under results/ holds everything needed
to trust and reproduce a number: config.json, environment.json (torch, device,
git commit), log.jsonl (one line per epoch), checkpoints/, predictions.txt
(community format), metrics.csv and profile.csv (tidy rows). The report is built
from those result files only, next to the published methods' predictions when
the test set is a real one and the handpose-eval folder is present.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelRun", "RunConfig", "config_data_root", "resolve_data_root", "run", "run_model", "schedule"]

FLOOR_MODEL = "meanpose"
QUICK_TEST_FRAMES = 200  # synthetic test split of a quick run: a 13 GMAC baseline scores it in CPU seconds


@dataclass(frozen=True)
class RunConfig:
    """One sweep: ``models`` on ``dataset`` (with the mean-pose floor unless ``floor`` is False).

    ``quick`` trains each model on its card's short schedule ([quick]: steps,
    batch, learning rate; one cosine cycle) instead of its full recipe;
    ``epochs``/``max_steps``/``batch_size`` override either. ``frames`` and
    ``test_frames`` size the synthetic splits when the dataset is synthetic and no
    ``data_root`` is given (test default: a quarter of ``frames``; ``QUICK_TEST_FRAMES`` when quick).
    """

    models: tuple[str, ...]
    dataset: str = "synth"
    seed: int = 0
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    frames: int = 2000
    test_frames: int | None = None
    quick: bool = False
    data_root: Path | None = None
    results_dir: Path = Path("results")
    reports_dir: Path = Path("reports")
    device: str = "cpu"
    threads: int | None = None
    workers: int = 0
    resume: bool = False
    profile: bool = True
    floor: bool = True
    eval_dir: Path | None = None
    compile: bool = False


@dataclass(frozen=True)
class ModelRun:
    """Outcome of one model: its run directory, and the mean error or the error that stopped it."""

    model: str
    run_dir: Path
    mean_error_mm: float | None = None
    error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _environment(device: str) -> dict[str, Any]:
    import torch

    import hpbench
    from hpbench.profile import environment

    env = environment(torch.device(device), torch.float32, torch.get_num_threads())
    return {**asdict(env), "hpbench": hpbench.__version__, "python": platform.python_version(),
            "git_commit": _git_commit()}


def resolve_data_root(dataset: str, data_root: Path | None, *, frames: int = 2000, test_frames: int | None = None,
                      seed: int = 0, progress: bool = False) -> Path | None:
    """``data_root`` if given; for a synthetic dataset, its rendered root (made once, then reused);
    else None, and the reader looks at the spec's environment variable and says what it expected."""
    from hpbench.data.specs import get_dataset

    spec = get_dataset(dataset)
    if data_root is not None:
        return data_root
    if spec.name.startswith("synth"):
        from hpbench.data.synth import ensure_synthetic

        return ensure_synthetic(spec.name, frames=frames, test_frames=test_frames, seed=seed, progress=progress)
    return None


def config_data_root(config: RunConfig, *, progress: bool = False) -> Path | None:
    """The data root of ``config``'s dataset (see :func:`resolve_data_root`); quick runs render
    ``QUICK_TEST_FRAMES`` synthetic test frames unless ``test_frames`` says otherwise."""
    test_frames = config.test_frames or (QUICK_TEST_FRAMES if config.quick else None)
    return resolve_data_root(config.dataset, config.data_root, frames=config.frames, test_frames=test_frames,
                             seed=config.seed, progress=progress)


def schedule(card: Any, config: RunConfig, train_frames: int) -> tuple[Any, int | None]:
    """The recipe and step limit ``card``'s model trains with under ``config``.

    Full: the card's recipe. Quick: its [quick] batch, learning rate and augmentation switch, as many
    epochs as the quick steps need, stopped at those steps (the cosine cycle spans
    them). ``config``'s epochs, batch size and max steps override both.
    """
    from hpbench.train import recipe_from_card, with_overrides

    recipe = recipe_from_card(card.recipe)
    max_steps = config.max_steps
    if config.quick:
        quick = card.quick
        batch = config.batch_size or quick.batch_size
        steps = config.max_steps or quick.steps
        recipe = with_overrides(recipe, batch_size=batch, lr=quick.lr, augment=quick.augment and recipe.augment,
                                epochs=config.epochs or max(1, math.ceil(steps * batch / max(train_frames, 1))))
        return recipe, steps
    return with_overrides(recipe, epochs=config.epochs, batch_size=config.batch_size), max_steps


def run_model(name: str, config: RunConfig, *, data_root: Path | None, progress: bool = True,
              echo: Callable[[str], None] = print) -> ModelRun:
    """Train, evaluate and profile one model; its files go to ``results/<dataset>/<name>-s<seed>/``."""
    import torch

    from hpbench import distributed
    from hpbench.cards import load_card
    from hpbench.data.cache import CropDataset, open_crop_cache
    from hpbench.data.crop import Augmentation
    from hpbench.evaluate import crop_settings, evaluate
    from hpbench.registry import create_model, models
    from hpbench.results import write_results
    from hpbench.train import train

    run_dir = config.results_dir / config.dataset / f"{name}-s{config.seed}"
    models.get(name)  # an unknown name fails here with close matches, before any work
    card = load_card(name)
    settings = crop_settings(card)
    with distributed.main_first():  # under torchrun rank 0 builds the caches, the others open them
        train_cache = open_crop_cache(config.dataset, "train", settings, data_root=data_root, progress=progress)
        test_cache = open_crop_cache(config.dataset, "test", settings, data_root=data_root, progress=progress)
    recipe, max_steps = schedule(card, config, len(train_cache))
    run_dir.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()  # under torchrun every rank trains; rank 0 alone writes, evaluates, profiles
    environment = _environment(config.device)
    if main:
        (run_dir / "config.json").write_text(json.dumps(
            {"model": name, "dataset": config.dataset, "seed": config.seed, "recipe": asdict(recipe),
             "crop": asdict(settings), "max_steps": max_steps, "quick": config.quick, "compile": config.compile,
             "data_root": str(data_root or ""), "evaluated_checkpoint": "final (no test-set checkpoint selection)",
             "world_size": distributed.world_size()}, indent=1))
        (run_dir / "environment.json").write_text(json.dumps(environment, indent=1))

    torch.manual_seed(config.seed)
    model = create_model(name, num_joints=train_cache.joints.shape[1])
    augmentation = Augmentation() if recipe.augment else None
    log_path = run_dir / "log.jsonl"
    if main and not config.resume and log_path.exists():
        log_path.unlink()

    def log(record: dict[str, Any]) -> None:
        with log_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        echo(f"{name}: epoch {record['epoch']} loss {record['loss']:.4f} ({record['seconds']:.1f} s)")

    result = train(model, CropDataset(train_cache, augmentation=augmentation, seed=config.seed), recipe,
                   checkpoint_dir=run_dir / "checkpoints", seed=config.seed, max_steps=max_steps,
                   device=config.device, workers=config.workers, resume=config.resume, progress=progress, log=log,
                   compile=config.compile)
    if not main:
        return ModelRun(model=name, run_dir=run_dir, notes=(f"rank {distributed.rank()}: trained; rank 0 evaluates",))
    score = evaluate(model, test_cache, method=name, predictions_path=run_dir / "predictions.txt",
                     device=config.device, progress=progress)
    provenance = {"device": f"{environment['device']}: {environment['device_name']}", "torch": environment["torch"],
                  "hpbench": environment["hpbench"], "git_commit": environment["git_commit"], "seed": config.seed}
    rows = score.rows()
    for key, value in provenance.items():
        rows[key] = value
    write_results(rows, run_dir / "metrics.csv")
    if config.profile:
        from hpbench.profile import profile_models, profile_rows

        profiles = profile_models([name], dataset=config.dataset, threads=config.threads, rounds=1,
                                  min_run_time_s=0.5, throughput_batch=0, fvcore=False)
        write_results(profile_rows(profiles), run_dir / "profile.csv")
    notes = (f"trained {result.epochs} epochs / {result.steps} steps in {result.seconds:.0f} s"
             + (f" (resumed at epoch {result.resumed_from_epoch})" if result.resumed_from_epoch else ""),
             f"evaluated the final checkpoint {result.checkpoint.name}")
    return ModelRun(model=name, run_dir=run_dir, mean_error_mm=score.mean_error_mm, notes=notes)


def run(config: RunConfig, *, progress: bool = True, echo: Callable[[str], None] = print
        ) -> tuple[list[ModelRun], list[Path]]:
    """Run every model (a failing one is recorded in its error.txt, the rest go on), then report.

    Returns the model runs and the report files written.
    """
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    names = list(dict.fromkeys(config.models))
    if config.floor and FLOOR_MODEL not in names:
        names.append(FLOOR_MODEL)
    data_root = config_data_root(config, progress=progress)
    runs = []
    for name in names:
        try:
            runs.append(run_model(name, config, data_root=data_root, progress=progress, echo=echo))
        except Exception as error:  # one model's failure must not sink the sweep
            run_dir = config.results_dir / config.dataset / f"{name}-s{config.seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            runs.append(ModelRun(model=name, run_dir=run_dir, error=f"{type(error).__name__}: {error}"))
            echo(f"{name}: FAILED ({type(error).__name__}: {error}); traceback in {run_dir / 'error.txt'}")
    return runs, report_dataset(config.dataset, [r.run_dir for r in runs if r.error is None],
                                out=config.reports_dir / config.dataset, eval_dir=config.eval_dir)


def report_dataset(dataset: str, run_dirs: Sequence[Path], *, out: Path, eval_dir: Path | None = None) -> list[Path]:
    """Report of the runs' result files plus the published methods on a real test set."""
    from hpbench.data.specs import get_dataset
    from hpbench.report import write_report
    from hpbench.scoring import collect_results, find_eval_dir

    sources = [path for run_dir in run_dirs for path in sorted(run_dir.glob("*.csv"))]
    spec = get_dataset(dataset)
    published_dir = None
    if spec.test_labels is not None:
        root = find_eval_dir(eval_dir)
        if root is not None and (root / "results" / spec.name).is_dir():
            published_dir = root / "results" / spec.name
    results, _ = collect_results(sources + ([published_dir] if published_dir else []), dataset=spec.name,
                                 eval_dir=eval_dir)
    if results.empty:
        return []
    written = write_report(results, out)
    return written
