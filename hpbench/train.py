"""Training loop: plain PyTorch driven by a model card's recipe, checkpointed every epoch.

Determinism: the shuffle of epoch e is drawn from (seed, e), augmentations from
(seed, e, frame) (hpbench.data.cache.CropDataset) and torch's RNG is reseeded
from (seed, e) at each epoch start, so a run resumed from the checkpoint of
epoch e continues exactly as the uninterrupted run would (on CPU; GPU kernels may
differ in the last bits). A checkpoint is the model weights (safetensors), the
optimizer tensors (safetensors) and a JSON state (epoch, step, optimizer groups,
scheduler, log), each written atomically; ``last.json`` names the newest one.

Distributed data parallel (``torchrun``; see :mod:`hpbench.distributed`): when a
process group of N > 1 is initialized, ``train`` wraps the model in
DistributedDataParallel and every rank trains on its share of the same global
batches single-process training draws:

- Sampler. ``recipe.batch_size`` stays the GLOBAL batch (it must be divisible by
  N, else a clear error). Each rank iterates the very loader single-process
  training uses (same (seed, epoch) generator) over the sample indices and takes
  a contiguous share of every global batch, so the union of the ranks' batches at
  step s is the single-process batch of step s. torch's DistributedSampler is
  not used: it deals indices out round-robin over the whole epoch and pads the
  last batch with repeated samples, which changes the optimization.
- Gradients. DDP averages gradients over ranks. Each rank's loss is scaled by
  N * n_rank / n_global before backward, so the average is the gradient of the
  global batch's per-sample mean loss, also for a short last batch (a rank with
  no sample left runs one stand-in sample with weight 0, keeping the collectives
  in step). The equality holds for losses that are per-sample means; a loss
  normalized by a data-dependent count (the default masked mean over visible
  joints) is averaged per rank, which weights ranks equally rather than joints.
- Loss. The step loss is all-reduced (weighted by share) before backward, so
  every rank logs the global-batch loss, the epoch loss is the single-process
  epoch loss, and a non-finite loss stops all ranks together instead of leaving
  one waiting in a collective.
- BatchNorm. Per-rank batch statistics are not the global batch's. On CUDA,
  BatchNorm layers run as SyncBatchNorm during training (global statistics; the
  model gets its own layers back, sharing the same tensors, when training ends).
  torch's SyncBatchNorm refuses CPU tensors, so under gloo on CPU each rank
  normalizes with its own share's statistics (ghost batch norm) and the running
  statistics are rank 0's (DDP broadcasts them before every forward; they are
  broadcast again when training ends). A model with BatchNorm therefore trains
  slightly differently on N CPU processes than on one; models without it train
  the same up to float rounding (tests/test_distributed.py).
- Rank 0 alone shows progress, calls ``log`` and writes checkpoints, followed by
  a barrier; ``on_step`` runs on every rank with the global loss. Resume loads
  the same checkpoint on every rank. torch's RNG (dropout and the like) is
  reseeded per (seed, epoch, rank); augmentations depend on (seed, epoch, frame)
  only, so they match single-process training.
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

from hpbench import distributed

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


def _checkpoint_name(epoch: int) -> str:
    return f"epoch{epoch:04d}"


def _save_checkpoint(directory: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    name = _checkpoint_name(epoch)
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


_RANK_SEED_STRIDE = 1_000_003  # torch's RNG seed of rank r is the single-process one + r * this


def _share(total: int, world: int, rank: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous share of a global batch of ``total`` samples."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class _RankShares(torch.utils.data.Sampler[list[int]]):
    """Batch sampler of one rank: its share of each global batch of the single-process loader.

    The global batches come from a loader built exactly like the single-process
    one (batch size, shuffle, a generator seeded with ``generator_seed``) over the
    indices, so they are the same by construction, not by imitating its internals.
    A rank whose share of a short last batch is empty gets that batch's first
    sample as a stand-in (weighted 0 by the loop).
    """

    def __init__(self, size: int, batch_size: int, generator_seed: int, *, rank: int, world: int) -> None:
        self.size, self.batch_size, self.generator_seed = size, batch_size, generator_seed
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.generator_seed)
        order = torch.utils.data.DataLoader(range(self.size), batch_size=self.batch_size, shuffle=True,
                                            generator=generator, collate_fn=list)
        for batch in order:
            start, stop = _share(len(batch), self.world, self.rank)
            yield batch[start:stop] if stop > start else batch[:1]


class _ForwardTrain(nn.Module):
    """Routes DDP's forward (which arms the gradient all-reduce) to ``model.forward_train``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, depth: torch.Tensor) -> Any:
        return self.model.forward_train(depth)


def _sync_batchnorm(model: nn.Module) -> Callable[[], None]:
    """Swap ``model``'s BatchNorm layers for SyncBatchNorm ones sharing their tensors; returns the undo."""
    swapped = []
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                synced = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                setattr(parent, child_name, synced)
                swapped.append((parent, child_name, child, synced))

    def undo() -> None:
        for parent, child_name, child, synced in swapped:
            setattr(parent, child_name, child.train(synced.training))

    return undo


def _rank_weighted(loss: torch.Tensor, total: int, world: int, rank: int) -> tuple[torch.Tensor, float]:
    """This rank's loss scaled for DDP's gradient average, and the loss of the whole global batch.

    DDP averages gradients over the ``world`` ranks; scaling rank r's mean loss by
    ``world * n_r / total`` makes that average the gradient of the global batch's mean.
    """
    start, stop = _share(total, world, rank)
    global_loss = distributed.all_reduce_sum(loss.detach().float() * ((stop - start) / total)).item()
    if (stop - start) * world != total:  # a short last batch; full batches keep the loss untouched
        loss = loss * ((stop - start) * world / total)
    return loss, global_loss


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

    Inside a process group of N > 1 (:mod:`hpbench.distributed`) it trains with
    DDP on each rank's share of the global batch ``recipe.batch_size`` (see the
    module docstring); ``checkpoint_dir`` must then be one folder every rank sees.
    """
    checkpoint_dir = Path(checkpoint_dir)
    world, rank = distributed.world_size(), distributed.rank()
    if recipe.batch_size % world:
        raise ValueError(f"batch size {recipe.batch_size} is the global batch, split over {world} processes: "
                         f"it must be a multiple of {world}")
    device_t = torch.device(device)
    if world > 1 and device_t.type == "cuda" and device_t.index is None:
        device_t = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU, set by hpbench.distributed
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
    undo_sync_batchnorm: Callable[[], None] = lambda: None
    if world > 1 and device_t.type == "cuda":
        undo_sync_batchnorm = _sync_batchnorm(model)
    if compile:
        model.compile()  # compiles __call__; forward_train goes through it unless a model overrides it
    amp = recipe.mixed_precision and device_t.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    started = time.perf_counter()
    bar = _progress(progress and rank == 0, total_steps, step)
    loss_mean, checkpoint = float("nan"), checkpoint_dir / "none"
    try:
        forward = model.forward_train
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # static_graph: models with parameters that get no gradient (profile.unused_parameters) work
            # without find_unused_parameters' graph walk at every step.
            forward = DistributedDataParallel(_ForwardTrain(model), static_graph=True,
                                              device_ids=[device_t.index] if device_t.type == "cuda" else None)
        for epoch in range(start_epoch, recipe.epochs):
            if step >= total_steps:
                break
            torch.manual_seed(seed * 100_003 + epoch + _RANK_SEED_STRIDE * rank)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            if world == 1:
                loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True,
                                                     generator=generator, num_workers=workers,
                                                     persistent_workers=False)
            else:  # the loader still gets a generator so that its worker-seed draw leaves torch's RNG alone
                shares = _RankShares(len(dataset), recipe.batch_size, seed * 100_003 + epoch, rank=rank, world=world)
                loader = torch.utils.data.DataLoader(dataset, batch_sampler=shares, generator=generator,
                                                     num_workers=workers, persistent_workers=False)
            model.train()
            epoch_start, losses = time.perf_counter(), []
            for index, batch in enumerate(loader):
                depth = batch["depth"].to(device_t, non_blocking=True)
                target = batch["joints"].to(device_t)
                mask = batch["visible"].to(device_t)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_t.type, enabled=amp):
                    loss = model.loss(forward(depth), target, mask)
                if world == 1:
                    value = loss.item()
                else:
                    global_size = min(recipe.batch_size, len(dataset) - index * recipe.batch_size)
                    loss, value = _rank_weighted(loss, global_size, world, rank)
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at step {step} (epoch {epoch + 1})")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                losses.append(value)
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
            if rank == 0:
                if log is not None:
                    log(record)
                checkpoint = _save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, scheduler,
                                              {"step": step, "history": history, "seed": seed,
                                               "recipe": asdict(recipe)})
            else:
                checkpoint = checkpoint_dir / f"{_checkpoint_name(epoch + 1)}.safetensors"
            distributed.barrier()  # the checkpoint is on disk before any rank moves on (or resumes from it)
        distributed.broadcast_buffers(model)  # per-rank BatchNorm statistics: every rank ends with rank 0's
    finally:
        undo_sync_batchnorm()
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
                   lr: float | None = None, augment: bool | None = None) -> Recipe:
    """``recipe`` with the given fields replaced (None keeps the recipe's value)."""
    changes = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "augment": augment}.items()
               if v is not None}
    return replace(recipe, **changes)
