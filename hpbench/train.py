"""Training loop: plain PyTorch driven by a model card's recipe, checkpointed every epoch.

Determinism: the shuffle of epoch e is drawn from (seed, e), augmentations from
(seed, e, frame) (hpbench.data.cache.CropDataset) and torch's RNG is reseeded
from (seed, e) at each epoch start, so a run resumed from the checkpoint of
epoch e continues exactly as the uninterrupted run would (on CPU; GPU kernels may
differ in the last bits). A checkpoint is the model weights (safetensors), the
optimizer tensors (safetensors) and a JSON state (epoch, step, optimizer groups,
scheduler, log), each written atomically; ``last.json`` names the newest one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Recipe", "TrainResult", "load_checkpoint_weights", "recipe_from_card", "train", "with_overrides"]


@dataclass(frozen=True)
class Recipe:
    """A training recipe: optimizer, schedule, length, batch and augmentation switch."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    schedule: str = "cosine"  # cosine (one cycle over all steps), step, constant
    step_epochs: int = 10
    gamma: float = 0.1
    momentum: float = 0.0
    augment: bool = True
    mixed_precision: bool = True  # used on GPU only

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd", "rmsprop"):
            raise ValueError(f"unknown optimizer {self.optimizer!r} (adam, adamw, sgd, rmsprop)")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r} (cosine, step, constant)")
        if self.batch_size < 1 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("batch_size and epochs must be >= 1 and lr > 0")


def recipe_from_card(recipe: Mapping[str, Any]) -> Recipe:
    """A :class:`Recipe` from a card's free-form ``[recipe]`` table; unknown keys are ignored.

    ``schedule`` is matched on its first word ("cosine, one cycle" -> cosine,
    "StepLR 10 x 0.2" -> step); ``augmentation`` switches augmentation on when non-empty.
    """
    fields: dict[str, Any] = {}
    for key in ("lr", "weight_decay", "gamma", "momentum"):
        if key in recipe:
            fields[key] = float(recipe[key])
    for key in ("batch_size", "epochs", "step_epochs"):
        if key in recipe:
            fields[key] = int(recipe[key])
    if "optimizer" in recipe:
        fields["optimizer"] = str(recipe["optimizer"]).lower()
    if "schedule" in recipe:
        word = str(recipe["schedule"]).lower().replace(",", " ").split()[0]
        fields["schedule"] = {"steplr": "step", "multistep": "step", "none": "constant"}.get(word, word)
    if "augmentation" in recipe:
        fields["augment"] = bool(recipe["augmentation"])
    if "mixed_precision" in recipe:
        fields["mixed_precision"] = bool(recipe["mixed_precision"])
    return Recipe(**fields)


@dataclass(frozen=True)
class TrainResult:
    """How training ended: epochs and steps done, the last epoch's mean loss, the checkpoint."""

    epochs: int
    steps: int
    final_loss: float
    checkpoint: Path
    resumed_from_epoch: int
    seconds: float


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum)
    return torch.optim.SGD(params, lr=recipe.lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum)


def _scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int, steps_per_epoch: int):
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
        )
    if recipe.schedule == "step":
        every = max(1, recipe.step_epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=recipe.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _save_checkpoint(directory: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    name = f"epoch{epoch:04d}"
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(directory / f"{name}.safetensors", lambda tmp: save_file(weights, tmp))
    optim_state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in optim_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    _atomic_write(directory / f"{name}.optim.safetensors", lambda tmp: save_file(tensors, tmp))
    payload = {**state, "epoch": epoch, "optimizer_groups": optim_state["param_groups"],
               "optimizer_scalars": scalars, "scheduler": scheduler.state_dict()}
    text = json.dumps(payload, indent=1, default=float)
    _atomic_write(directory / f"{name}.json", lambda tmp: Path(tmp).write_text(text))
    _atomic_write(directory / "last.json", lambda tmp: Path(tmp).write_text(json.dumps({"checkpoint": name})))
    return directory / f"{name}.safetensors"


def _load_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
                     ) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    last = directory / "last.json"
    if not last.is_file():
        return None
    name = json.loads(last.read_text())["checkpoint"]
    state = json.loads((directory / f"{name}.json").read_text())
    model.load_state_dict(load_file(directory / f"{name}.safetensors"))
    tensors = load_file(directory / f"{name}.optim.safetensors")
    entries: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(state["optimizer_scalars"].items()):
        param_id, field = key.split(".", 1)
        entries.setdefault(int(param_id), {})[field] = value
    optimizer.load_state_dict({"state": entries, "param_groups": state["optimizer_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    return state


def load_checkpoint_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load safetensors weights (no pickle) into ``model``; a clear error on a mismatch."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    except RuntimeError as error:  # shape mismatches
        detail = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ValueError(f"{path}: does not fit the model ({detail})") from None
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def train(
    model: nn.Module,
    dataset: Any,
    recipe: Recipe,
    *,
    checkpoint_dir: str | os.PathLike[str],
    seed: int = 0,
    max_steps: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    resume: bool = False,
    compile: bool = False,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (items: ``depth``, ``joints``, ``visible``) with ``recipe``.

    Checkpoints after every epoch into ``checkpoint_dir``; ``resume`` continues
    from the newest one there. ``max_steps`` stops early (checkpointing there).
    ``on_step(step, loss)`` is called after each optimizer step, ``log(record)``
    after each epoch with its mean loss, learning rate and seconds.
    """
    checkpoint_dir = Path(checkpoint_dir)
    device_t = torch.device(device)
    model.to(device_t)
    steps_per_epoch = math.ceil(len(dataset) / recipe.batch_size)
    if steps_per_epoch == 0:
        raise ValueError("the training set is empty")
    total_steps = recipe.epochs * steps_per_epoch if max_steps is None else min(max_steps, recipe.epochs * steps_per_epoch)
    optimizer = _optimizer(model, recipe)
    scheduler = _scheduler(optimizer, recipe, total_steps, steps_per_epoch)
    start_epoch, step, history = 0, 0, []
    if resume:
        state = _load_checkpoint(checkpoint_dir, model, optimizer, scheduler)
        if state is not None:
            start_epoch, step, history = state["epoch"], state["step"], state["history"]
    resumed_from = start_epoch
    if compile:
        model.compile()  # compiles __call__; forward_train goes through it unless a model overrides it
    amp = recipe.mixed_precision and device_t.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    started = time.perf_counter()
    bar = _progress(progress, total_steps, step)
    loss_mean, checkpoint = float("nan"), checkpoint_dir / "none"
    try:
        for epoch in range(start_epoch, recipe.epochs):
            if step >= total_steps:
                break
            torch.manual_seed(seed * 100_003 + epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True,
                                                 generator=generator, num_workers=workers,
                                                 persistent_workers=False)
            model.train()
            epoch_start, losses = time.perf_counter(), []
            for batch in loader:
                depth = batch["depth"].to(device_t, non_blocking=True)
                target = batch["joints"].to(device_t)
                mask = batch["visible"].to(device_t)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_t.type, enabled=amp):
                    loss = model.loss(model.forward_train(depth), target, mask)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step} (epoch {epoch + 1})")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                losses.append(loss.item())
                if bar is not None:
                    bar[0].update(bar[1], advance=1, description=f"epoch {epoch + 1}/{recipe.epochs} loss {losses[-1]:.3f}")
                if on_step is not None:
                    on_step(step, losses[-1])
                if step >= total_steps:
                    break
            loss_mean = float(sum(losses) / len(losses))
            record = {"epoch": epoch + 1, "step": step, "loss": loss_mean, "lr": scheduler.get_last_lr()[0],
                      "seconds": time.perf_counter() - epoch_start}
            history.append(record)
            if log is not None:
                log(record)
            checkpoint = _save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, scheduler,
                                          {"step": step, "history": history, "seed": seed, "recipe": asdict(recipe)})
    finally:
        if bar is not None:
            bar[0].stop()
    if not history:
        raise ValueError(f"nothing to train: the run in {checkpoint_dir} already finished; drop --resume to retrain")
    if checkpoint.name == "none":  # resumed a finished run
        name = json.loads((checkpoint_dir / "last.json").read_text())["checkpoint"]
        checkpoint = checkpoint_dir / f"{name}.safetensors"
    return TrainResult(epochs=history[-1]["epoch"], steps=step, final_loss=history[-1]["loss"],
                       checkpoint=checkpoint, resumed_from_epoch=resumed_from,
                       seconds=time.perf_counter() - started)


def _progress(show: bool, total: int, done: int):
    if not show:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   transient=True)
    task = bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar, task


def with_overrides(recipe: Recipe, *, epochs: int | None = None, batch_size: int | None = None,
                   lr: float | None = None) -> Recipe:
    """``recipe`` with the given fields replaced (None keeps the recipe's value)."""
    changes = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr}.items() if v is not None}
    return replace(recipe, **changes)
