"""The parts every run shares: its settings and outcome, data root, schedule, environment record, torch
threads and the trainer's log callbacks (used by :mod:`hpbench.runner` and :mod:`hpbench.loso`)."""

from __future__ import annotations

import contextlib
import math
import platform
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hpbench.rundir import RunDir

if TYPE_CHECKING:
    from hpbench.cards import ModelCard
    from hpbench.data.specs import DatasetSpec
    from hpbench.protocol import Protocol

__all__ = ["QUICK_TEST_FRAMES", "ModelRun", "RunSettings", "epoch_log", "git_commit", "load_registered_card", "protocol_augmenter", "protocol_model",
           "resolve_data_root", "run_environment", "schedule", "torch_threads", "warning_callback"]

QUICK_TEST_FRAMES = 200  # synthetic test split of a quick run: a 13 GMAC baseline scores it in CPU seconds


@dataclass(frozen=True)
class RunSettings:
    """How each run trains, on what data and hardware: the options ``run``, ``train`` and ``sweep`` share.

    ``quick`` trains each model on its card's short schedule ([quick]: steps,
    batch, learning rate; one cosine cycle) instead of its full recipe;
    ``epochs``/``max_steps``/``batch_size`` override either (see :func:`schedule`).
    ``data_root``: the dataset's root (None: its environment variable, or for a
    synthetic dataset a set rendered on demand, sized by ``frames`` and
    :attr:`synthetic_test_frames`). ``device``: cpu or cuda; ``threads``: torch CPU
    threads of a run (None: torch's default); ``compile``: torch.compile the model; ``bf16``: on a CPU,
    forward and loss under bfloat16 autocast where the card's recipe allows mixed precision
    (:func:`hpbench.train.autocast_dtype`; on CUDA such recipes already run float16 autocast);
    ``resume``: continue from the run's newest intact epoch checkpoint (refused when the
    run was made with other settings); ``overwrite``: clear a run directory holding an
    earlier run first (without either, such a directory is refused); ``profile``: also
    measure the trained model's costs (profile.csv); ``centers``: a folder holding the centre files the
    protocol names (``--centers``; None: looked up below the data root, else the centre of mass);
    ``select``: the checkpoint scored: the final one, or (``best-test``, as TriHorn-Net and A2J report) the
    epoch checkpoint best on the test set, labelled so in the result rows' protocol.
    """

    quick: bool = False
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    frames: int = 2000
    test_frames: int | None = None
    data_root: Path | None = None
    device: str = "cpu"
    threads: int | None = None
    compile: bool = False
    bf16: bool = False
    resume: bool = False
    overwrite: bool = False
    profile: bool = True
    centers: Path | None = None
    select: Literal["final", "best-test"] = "final"

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise ValueError("--resume continues a run and --overwrite replaces it: give one of them")
        if self.bf16 and not self.device.startswith("cpu"):
            raise ValueError(f"--bf16 is mixed precision on a CPU; on {self.device} the cards' recipes already "
                             "train under float16 autocast")

    def hardware_problem(self) -> str:
        """Why this machine cannot run these settings ('' when it can): ``bf16`` on a CPU without bfloat16
        instructions, where autocast would emulate them."""
        from hpbench.hostinfo import native_bf16

        if self.bf16 and self.device.startswith("cpu") and native_bf16() is False:
            return ("--bf16: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16 or Arm's bf16): autocast "
                    "would emulate them, slower than float32")
        return ""

    def precision(self, recipe: Any) -> dict[str, Any]:
        """config.json's account of a run's arithmetic under ``recipe``: ``mixed_precision`` as used and the
        ``autocast`` dtype (None: float32 throughout)."""
        from hpbench.train import autocast_dtype

        dtype = autocast_dtype(recipe, self.device, cpu_bf16=self.bf16)
        return {"mixed_precision": dtype is not None, "autocast": None if dtype is None else str(dtype).split(".")[-1]}

    @property
    def synthetic_test_frames(self) -> int | None:
        """Synthetic test frames: ``test_frames``; else ``QUICK_TEST_FRAMES`` when quick; else None (a
        quarter of ``frames``)."""
        return self.test_frames or (QUICK_TEST_FRAMES if self.quick else None)


@dataclass(frozen=True)
class ModelRun:
    """Outcome of one run: its run directory, and the mean error (mm) or the error that stopped it."""

    model: str
    run_dir: RunDir
    mean_error_mm: float | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()
    refused: bool = False  # the run did not start: its directory is as it was (no error.txt)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def run_environment(device: str) -> dict[str, Any]:
    import torch

    import hpbench
    from hpbench.hostinfo import host_fingerprint
    from hpbench.profile import environment

    env = environment(torch.device(device), torch.float32, torch.get_num_threads())
    return {**asdict(env), "hpbench": hpbench.__version__, "python": platform.python_version(),
            "git_commit": git_commit(), "host": host_fingerprint()}


def resolve_data_root(dataset: DatasetSpec, settings: RunSettings, *, seed: int = 0,
                      progress: bool = False, test_only: bool = False) -> Path | None:
    """``settings.data_root`` if given; for a synthetic dataset, its rendered root (made once with
    ``seed``, then reused; ``test_only``: a root holding the test split is enough); else None, and the
    reader looks at the spec's environment variable and says what it expected."""
    if settings.data_root is not None:
        return settings.data_root
    if dataset.synthetic:
        from hpbench.data.synth import ensure_synthetic

        return ensure_synthetic(dataset, frames=settings.frames, test_frames=settings.synthetic_test_frames,
                                seed=seed, progress=progress, test_only=test_only)
    return None


def schedule(card: Any, config: RunSettings, train_frames: int) -> tuple[Any, int | None]:
    """The recipe and step limit ``card``'s model trains with under ``config``.

    Full: the card's recipe. Quick: its [quick] batch, learning rate and augmentation switch, as many
    epochs as the quick steps need, stopped at those steps (the cosine cycle spans
    them). ``config``'s epochs, batch size and max steps override both.
    """
    from hpbench.train import with_overrides

    recipe = card.recipe
    max_steps = config.max_steps
    if config.quick:
        quick = card.quick
        batch = config.batch_size or quick.batch_size
        steps = config.max_steps or quick.steps
        recipe = with_overrides(recipe, batch_size=batch, lr=quick.lr, augment=quick.augment and recipe.augment,
                                epochs=config.epochs or max(1, math.ceil(steps * batch / max(train_frames, 1))))
        return recipe, steps
    return with_overrides(recipe, epochs=config.epochs, batch_size=config.batch_size), max_steps


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` (None: unchanged) for the block, then restored: a debug
    sweep runs its jobs in the caller's process."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_registered_card(name: str) -> ModelCard:
    """The card of registered model ``name``; an unknown name fails first, with close matches."""
    from hpbench.cards import load_card
    from hpbench.models import models

    models.get(name)
    return load_card(name)


def warning_callback(run_dir: RunDir, name: str, echo: Callable[[str], None], main: bool) -> Callable[[str], None]:
    """The trainer's warning callback: echoed, and on rank 0 recorded as a ``{"warning": ...}`` line in log.jsonl."""
    import json

    def warn(text: str) -> None:
        echo(f"{name}: warning: {text}")
        if main:
            with run_dir.log.open("a") as handle:
                handle.write(json.dumps({"warning": text}) + "\n")

    return warn


def epoch_log(run_dir: RunDir, name: str, echo: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """The trainer's epoch callback: one JSON line in the run's log.jsonl (a resumed run first drops the
    lines of the epochs it trains again), one line echoed (seconds)."""
    import json

    first = [True]

    def log(record: dict[str, Any]) -> None:
        if first[0] and run_dir.log.is_file():  # a resumed run: drop the lines of epochs it trains again
            lines = run_dir.log.read_text().splitlines(keepends=True)
            kept = [line for line in lines if _logged_epoch(line) < record["epoch"]]
            if kept != lines:
                run_dir.log.write_text("".join(kept))
        first[0] = False
        with run_dir.log.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        echo(f"{name}: epoch {record['epoch']} loss {record['loss']:.4f} ({record['seconds']:.1f} s)")

    return log


def _logged_epoch(line: str) -> float:
    """The epoch of a log.jsonl line: 0 for a warning, infinity for a line cut short by a kill (dropped)."""
    import json

    try:
        return json.loads(line).get("epoch", 0)
    except ValueError:
        return math.inf


def protocol_model(name: str, protocol: Protocol, *, num_joints: int) -> Any:
    """Registered model ``name`` for ``num_joints`` joints, bound to ``protocol`` where its loss needs the
    protocol's units (A2J: d in mm from the crop's depth extent)."""
    from hpbench.models import create_model
    from hpbench.models.a2j import A2J, LossUnits

    model = create_model(name, num_joints=num_joints)
    if isinstance(model, A2J):  # a2j and every a2j@<backbone>
        model.loss_units = LossUnits.of(protocol.crop)
    return model


def protocol_augmenter(protocol: Protocol, augment: bool) -> Any:
    """The protocol's own training augmentation (hpbench.data.augment.Augmenter) when the recipe
    ``augment``s, else None."""
    from hpbench.data.augment import Augmenter

    return Augmenter(protocol.augment, protocol.crop) if augment else None
