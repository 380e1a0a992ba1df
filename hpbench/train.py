"""Training loop: plain PyTorch driven by a model card's typed recipe (hpbench.cards.Recipe), checkpointed each epoch.

Determinism: the shuffle of epoch e is drawn from (seed, e), augmentations from
(seed, e, frame) (hpbench.data.cache.CropDataset) and torch's RNG is reseeded
from (seed, e) at each epoch start, so a run resumed from the checkpoint of
epoch e continues exactly as the uninterrupted run would (on CPU; GPU kernels may
differ in the last bits). A checkpoint is the model weights (safetensors), the
optimizer tensors (safetensors) and a JSON state (epoch, step, optimizer groups,
scheduler, log), each written atomically, then ``<epoch>.sha256`` with their sha256
(``sha256sum -c`` format); ``last.json`` names the newest one. Resuming verifies
them and passes over a damaged (truncated, altered) newest checkpoint for the
newest intact one, with a warning; a checkpoint of another model, recipe or seed
is a one-line error.

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

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpbench import distributed
from hpbench.cards import Constant, Cosine, Recipe, StepDecay

__all__ = ["FUSED_DEVICES", "FrameSubset", "Recipe", "TrainResult", "autocast_dtype", "fused_adam",
           "load_checkpoint_weights", "planned_steps", "train", "with_overrides"]


class FrameSubset(torch.utils.data.Subset):
    """The frames ``indices`` (rows of ``dataset``) that a protocol trains on; ``set_epoch`` reaches the
    dataset, so its augmentations stay drawn from (seed, epoch, row)."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


@dataclass(frozen=True)
class TrainResult:
    """How training ended: epochs and steps done, the last epoch's mean loss, the checkpoint."""

    epochs: int
    steps: int
    final_loss: float
    checkpoint: Path
    resumed_from_epoch: int
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def already_finished(self) -> bool:
        """Whether a resumed run had already reached its last step: nothing was trained now."""
        return self.resumed_from_epoch > 0 and self.epochs == self.resumed_from_epoch


FUSED_DEVICES = ("cpu", "cuda")
"""Devices where torch (>= 2.4) has one fused kernel for Adam's and AdamW's whole step."""


def fused_adam(params: Sequence[torch.Tensor]) -> bool | None:
    """``fused`` for Adam/AdamW over ``params``: True when all are floating-point tensors on
    :data:`FUSED_DEVICES`, else None (torch's choice). On the CPU torch's default is a Python loop over the
    tensors: for ours' 238 tensors 6.5 ms a step against 1.7 ms fused (2-3 % of a batch-8 step), the same
    update up to rounding (losses 2e-3 apart after 50 steps, as far as summation order moves them)."""
    fits = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)
    return True if fits else None


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model``'s trainable parameters, with all of its hyperparameters; Adam and
    AdamW fused where torch can (:func:`fused_adam`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = recipe.weight_decay
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=decay,
                                fused=fused_adam(params))
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=decay,
                                 fused=fused_adam(params))
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, eps=recipe.eps, weight_decay=decay, momentum=recipe.momentum)
    return torch.optim.SGD(params, lr=recipe.lr, weight_decay=decay, momentum=recipe.momentum)


def _scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int, steps_per_epoch: int
               ) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's learning-rate schedule, stepped once per optimizer step."""
    schedule = recipe.schedule
    if isinstance(schedule, Cosine):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
        )
    if isinstance(schedule, StepDecay):
        every = schedule.step_epochs * steps_per_epoch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=schedule.gamma)
    assert isinstance(schedule, Constant), schedule
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    from hpbench.files import atomic_write

    atomic_write(path, write)


def _checkpoint_name(epoch: int) -> str:
    return f"epoch{epoch:04d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_checkpoint(directory: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any]) -> Path:
    """Weights, optimizer tensors and JSON state of epoch ``epoch``, then ``<name>.sha256`` (sha256sum
    format) of the three, then ``last.json`` naming it: each file atomic, the set complete once named."""
    from safetensors.torch import save

    name = _checkpoint_name(epoch)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in optim_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    payload = {**state, "epoch": epoch, "optimizer_groups": optim_state["param_groups"],
               "optimizer_scalars": scalars, "scheduler": scheduler.state_dict()}
    files = {f"{name}.safetensors": save(weights), f"{name}.optim.safetensors": save(tensors),
             f"{name}.json": json.dumps(payload, indent=1, default=float).encode()}
    for file_name, data in files.items():
        _atomic_write(directory / file_name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    sums = "".join(f"{_sha256(data)}  {file_name}\n" for file_name, data in files.items())
    _atomic_write(directory / f"{name}.sha256", lambda tmp: Path(tmp).write_text(sums))
    _atomic_write(directory / "last.json", lambda tmp: Path(tmp).write_text(json.dumps({"checkpoint": name})))
    return directory / f"{name}.safetensors"


def _candidates(directory: Path, warn: Callable[[str], None]) -> list[int]:
    """Epochs with checkpoint files in ``directory``, newest first, none newer than ``last.json``'s. Without
    ``last.json`` (a run killed before naming its first checkpoint) every checkpoint present is a
    candidate; so it is when ``last.json`` is unreadable, which ``warn`` is told."""
    epochs = {int(path.name[5:9]) for path in directory.glob("epoch[0-9][0-9][0-9][0-9].*")}
    last_json = directory / "last.json"
    if not last_json.exists():
        return sorted(epochs, reverse=True)
    try:
        last = json.loads(last_json.read_text())["checkpoint"]
        epochs = {epoch for epoch in epochs if epoch <= int(last[5:])}
    except (OSError, ValueError, KeyError, TypeError) as error:
        warn(f"{last_json} is unreadable ({type(error).__name__}: {error}): trying every checkpoint present, "
             "newest first")
    return sorted(epochs, reverse=True)


def _read_intact(directory: Path, epoch: int) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The three files of checkpoint ``epoch`` (read once), checked against its sha256 file, and its
    parsed state; ValueError saying what is wrong. A checkpoint without a sha256 file (hpbench
    before checksums) is read unchecked."""
    name = _checkpoint_name(epoch)
    names = (f"{name}.safetensors", f"{name}.optim.safetensors", f"{name}.json")
    try:
        data = {file_name: (directory / file_name).read_bytes() for file_name in names}
    except FileNotFoundError as error:
        raise ValueError(f"incomplete ({Path(error.filename).name} missing)") from None
    sums_path = directory / f"{name}.sha256"
    if sums_path.is_file():
        recorded = {parts[1]: parts[0] for parts in map(str.split, sums_path.read_text().splitlines())
                    if len(parts) == 2}
        for file_name, content in data.items():
            if recorded.get(file_name) != _sha256(content):
                raise ValueError(f"corrupt ({file_name} does not match its sha256 in {sums_path.name})")
    try:
        state = json.loads(data[f"{name}.json"])
    except ValueError:
        raise ValueError(f"corrupt ({name}.json is not valid JSON)") from None
    missing = _STATE_KEYS - set(state) if isinstance(state, dict) else _STATE_KEYS
    if missing:
        raise ValueError(f"corrupt ({name}.json lacks {', '.join(sorted(missing))})")
    return data, state


_STATE_KEYS = frozenset({"epoch", "step", "history", "optimizer_groups", "optimizer_scalars", "scheduler"})
"""What resuming reads of a checkpoint's JSON state."""


def _fit(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``weights`` into ``model``; ValueError naming ``path`` (one line) when they belong to another model."""
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # shape mismatches
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(f"{path}: does not fit the model ({lines[1] if len(lines) > 1 else lines[0]})") from None
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _load_checkpoint(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     warn: Callable[[str], None]) -> dict[str, Any] | None:
    """Restore the newest intact checkpoint in ``directory`` (None: there is none to resume). A corrupt
    or incomplete newer one is passed over with ``warn``; none intact is a one-line ValueError."""
    from safetensors.torch import load

    problems: list[str] = []
    for epoch in _candidates(directory, warn):
        name = _checkpoint_name(epoch)
        try:
            data, state = _read_intact(directory, epoch)
            weights, tensors = load(data[f"{name}.safetensors"]), load(data[f"{name}.optim.safetensors"])
        except Exception as error:  # safetensors' own errors have several types: any unreadable file is corrupt
            problems.append(f"{name} {error}" if isinstance(error, ValueError) else f"{name} unreadable ({error!r})")
            continue
        if problems:
            warn(f"{directory}: resuming from {name}, the newest intact checkpoint: {'; '.join(problems)}")
        _fit(model, weights, directory / f"{name}.safetensors")
        entries: dict[int, dict[str, Any]] = {}
        for key, value in list(tensors.items()) + list(state["optimizer_scalars"].items()):
            param_id, field = key.split(".", 1)
            entries.setdefault(int(param_id), {})[field] = value
        try:
            optimizer.load_state_dict({"state": entries, "param_groups": state["optimizer_groups"]})
        except (ValueError, KeyError, RuntimeError) as error:
            raise ValueError(f"{directory / name}.optim.safetensors: does not fit the optimizer ({error})") from None
        scheduler.load_state_dict(state["scheduler"])
        return state
    if problems:
        raise ValueError(f"{directory}: no intact checkpoint to resume from ({'; '.join(problems)})")
    return None


def load_checkpoint_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load safetensors weights (no pickle) into ``model``; a clear error on a mismatch, or when the
    file differs from the sha256 recorded beside it (``<epoch>.sha256`` of a training checkpoint)."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    sums = path.with_name(path.name.split(".")[0] + ".sha256")
    if sums.is_file():
        recorded = {parts[1]: parts[0] for parts in map(str.split, sums.read_text().splitlines()) if len(parts) == 2}
        if path.name in recorded and recorded[path.name] != _sha256(data):
            raise ValueError(f"{path}: corrupt (does not match its sha256 in {sums.name})")
    _fit(model, load(data), path)
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


def autocast_dtype(recipe: Recipe, device: str | torch.device, *, cpu_bf16: bool = False) -> torch.dtype | None:
    """The dtype a training step's forward and loss run in under autocast, None for float32: float16 (with
    gradient scaling) on CUDA when ``recipe.mixed_precision``; bfloat16 on a CPU when asked (``cpu_bf16``,
    ``--bf16``) and the recipe allows mixed precision; float32 otherwise. Weights, gradients and the optimizer
    stay float32 in every case."""
    kind = torch.device(device).type
    if not recipe.mixed_precision:
        return None
    if kind == "cuda":
        return torch.float16
    return torch.bfloat16 if kind == "cpu" and cpu_bf16 else None


@dataclass(frozen=True)
class _Loop:
    """The fixed parts of a run that every optimizer step uses (see :func:`train`)."""

    model: nn.Module
    forward: Callable[[torch.Tensor], Any]  # model.forward_train, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    autocast: torch.dtype | None  # the mixed-precision dtype of forward and loss (None: float32)
    recipe: Recipe
    dataset_size: int
    total_steps: int
    world: int
    rank: int
    on_step: Callable[[int, float], None] | None
    bar: Any  # (rich Progress, task id) on rank 0 with progress shown, else None
    name: str = "model"  # the model's, leading the progress bar's text


def _ddp_forward(model: nn.Module, world: int, device: torch.device) -> Callable[[torch.Tensor], Any]:
    """``model.forward_train``, wrapped in DistributedDataParallel inside a process group of N > 1."""
    if world == 1:
        return model.forward_train
    from torch.nn.parallel import DistributedDataParallel

    # static_graph: models with parameters that get no gradient (profile.unused_parameters) work
    # without find_unused_parameters' graph walk at every step.
    return DistributedDataParallel(_ForwardTrain(model), static_graph=True,
                                   device_ids=[device.index] if device.type == "cuda" else None)


def _epoch_loader(dataset: Any, loop: _Loop, seed: int, epoch: int, workers: int) -> torch.utils.data.DataLoader:
    """Epoch ``epoch``'s batches, shuffled by (seed, epoch): all of each batch, or under DDP this rank's share."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    batch_size = loop.recipe.batch_size
    if loop.world == 1:
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                           num_workers=workers, persistent_workers=False)
    # the loader still gets a generator so that its worker-seed draw leaves torch's RNG alone
    shares = _RankShares(len(dataset), batch_size, seed * 100_003 + epoch, rank=loop.rank, world=loop.world)
    return torch.utils.data.DataLoader(dataset, batch_sampler=shares, generator=generator, num_workers=workers,
                                       persistent_workers=False)


def _run_epoch(loop: _Loop, loader: torch.utils.data.DataLoader, epoch: int, step: int) -> tuple[int, list[float]]:
    """The optimizer steps of one epoch from global step ``step`` (stopping at ``loop.total_steps``):
    the step reached and each step's global-batch loss."""
    loop.model.train()
    losses: list[float] = []
    batch_size = loop.recipe.batch_size
    for index, batch in enumerate(loader):
        depth = batch["depth"].to(loop.device, non_blocking=True)
        target = batch["joints"].to(loop.device)
        mask = batch["visible"].to(loop.device)
        loop.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(loop.device.type, dtype=loop.autocast, enabled=loop.autocast is not None):
            loss = loop.model.loss(loop.forward(depth), target, mask)
        if loop.world == 1:
            value = loss.item()
        else:
            global_size = min(batch_size, loop.dataset_size - index * batch_size)
            loss, value = _rank_weighted(loss, global_size, loop.world, loop.rank)
        if not math.isfinite(value):  # before the step: the weights and the checkpoints on disk stay finite
            raise FloatingPointError(f"{loop.name}: the loss is {value} (not finite) at step {step + 1}, epoch "
                                     f"{epoch + 1}: training stopped; the checkpoints of earlier epochs are intact")
        loop.scaler.scale(loss).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.scheduler.step()
        step += 1
        losses.append(value)
        if loop.bar is not None:
            loop.bar[0].update(loop.bar[1], advance=1,
                               description=epoch_description(loop.name, epoch, loop.recipe.epochs, losses[-1]))
        if loop.on_step is not None:
            loop.on_step(step, losses[-1])
        if step >= loop.total_steps:
            break
    return step, losses


def _rank_device(device: str, world: int) -> torch.device:
    """``device``; under DDP on CUDA without an index, this rank's GPU (set by hpbench.distributed)."""
    device_t = torch.device(device)
    if world > 1 and device_t.type == "cuda" and device_t.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device_t


def _end_epoch(loop: _Loop, checkpoint_dir: Path, history: list[dict[str, Any]], seed: int,
               log: Callable[[dict[str, Any]], None] | None) -> Path:
    """Rank 0 logs the epoch's record (the last of ``history``) and checkpoints; every rank waits for
    the checkpoint to be on disk (before moving on or resuming from it) and gets its weights' path."""
    epoch, step = history[-1]["epoch"], history[-1]["step"]
    if loop.rank == 0:
        if log is not None:
            log(history[-1])
        _save_checkpoint(checkpoint_dir, epoch, loop.model, loop.optimizer, loop.scheduler,
                         {"step": step, "history": history, "seed": seed, "recipe": asdict(loop.recipe)})
    distributed.barrier()
    return checkpoint_dir / f"{_checkpoint_name(epoch)}.safetensors"


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
    cpu_bf16: bool = False,
    progress: bool = False,
    name: str = "model",
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (items: ``depth``, ``joints``, ``visible``) with ``recipe``.

    Checkpoints after every epoch into ``checkpoint_dir``; ``resume`` continues from the newest one there.
    ``max_steps`` stops early (checkpointing there). ``cpu_bf16``: see :func:`autocast_dtype`. ``on_step(step,
    loss)`` is called after each optimizer step, ``log(record)`` after each epoch with its mean loss, learning
    rate and seconds; ``name`` leads the progress bar's text.
    Resuming checks each checkpoint against its sha256 file and passes over a corrupt or incomplete newest
    one (or an unreadable ``last.json``), telling ``warn`` (default: a RuntimeWarning); it refuses a checkpoint
    of another recipe, seed or model. Resuming a run that already reached its last step trains nothing and
    returns its final checkpoint (:attr:`TrainResult.already_finished`); resuming from a folder without any
    checkpoint trains from the start (``resumed_from_epoch`` 0). A non-finite loss stops training at once
    (FloatingPointError naming ``name``, the epoch and the step), before that step changes the weights.
    An empty ``dataset`` is a ValueError before any work.

    Inside a process group of N > 1 (:mod:`hpbench.distributed`) it trains with
    DDP on each rank's share of the global batch ``recipe.batch_size`` (see the
    module docstring); ``checkpoint_dir`` must then be one folder every rank sees.
    """
    checkpoint_dir = Path(checkpoint_dir)
    world, rank = distributed.world_size(), distributed.rank()
    steps_per_epoch, total_steps = planned_steps(len(dataset), recipe, max_steps, world, name)
    device_t = _rank_device(device, world)
    model.to(device_t)
    optimizer = _optimizer(model, recipe)
    scheduler = _scheduler(optimizer, recipe, total_steps, steps_per_epoch)
    said: list[str] = []
    state = _resume(checkpoint_dir, model, optimizer, scheduler, recipe, seed, _Warn(said, warn)) if resume else None
    start_epoch, step, history = (0, 0, []) if state is None else (state["epoch"], state["step"], state["history"])
    undo_sync_batchnorm = _sync_batchnorm(model) if world > 1 and device_t.type == "cuda" else (lambda: None)
    if compile:
        model.compile()  # compiles __call__; forward_train goes through it unless a model overrides it
    autocast, started = autocast_dtype(recipe, device_t, cpu_bf16=cpu_bf16), time.perf_counter()
    bar = _progress(progress and rank == 0, total_steps, step, name)
    checkpoint = checkpoint_dir / "none"
    try:
        loop = _Loop(model=model, forward=_ddp_forward(model, world, device_t), optimizer=optimizer, bar=bar,
                     scheduler=scheduler, device=device_t, autocast=autocast, recipe=recipe, on_step=on_step,
                     scaler=torch.amp.GradScaler("cuda", enabled=autocast == torch.float16),  # not for bfloat16
                     dataset_size=len(dataset), total_steps=total_steps, world=world, rank=rank, name=name)
        for epoch in range(start_epoch, recipe.epochs):
            if step >= total_steps:
                break
            torch.manual_seed(seed * 100_003 + epoch + _RANK_SEED_STRIDE * rank)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            loader = _epoch_loader(dataset, loop, seed, epoch, workers)
            epoch_start = time.perf_counter()
            step, losses = _run_epoch(loop, loader, epoch, step)
            history.append({"epoch": epoch + 1, "step": step, "loss": float(sum(losses) / len(losses)),
                            "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - epoch_start})
            checkpoint = _end_epoch(loop, checkpoint_dir, history, seed, log)
        distributed.broadcast_buffers(model)  # per-rank BatchNorm statistics: every rank ends with rank 0's
    finally:
        undo_sync_batchnorm()
        if bar is not None:
            bar[0].stop()
    if checkpoint.name == "none":  # resumed a finished run
        checkpoint = checkpoint_dir / f"{_checkpoint_name(start_epoch)}.safetensors"
    return TrainResult(epochs=history[-1]["epoch"], steps=step, final_loss=history[-1]["loss"],
                       checkpoint=checkpoint, resumed_from_epoch=start_epoch,
                       seconds=time.perf_counter() - started, warnings=tuple(said))


def planned_steps(size: int, recipe: Recipe, max_steps: int | None, world: int = 1,
                  name: str = "model") -> tuple[int, int]:
    """Steps per epoch and in all over ``size`` samples (a last batch short of ``recipe.batch_size`` is
    trained, not dropped); ValueError for an empty set, a step limit below 1 or a global batch that
    ``world`` processes cannot share evenly."""
    if recipe.batch_size % world:
        raise ValueError(f"batch size {recipe.batch_size} is the global batch, split over {world} processes: "
                         f"it must be a multiple of {world}")
    if size == 0:
        raise ValueError(f"{name}: the training set is empty (0 frames): nothing to train on")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"{name}: max_steps must be at least 1, got {max_steps}")
    steps_per_epoch = math.ceil(size / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    return steps_per_epoch, total if max_steps is None else min(max_steps, total)


@dataclass(frozen=True)
class _Warn:
    """A warning of :func:`train`: kept in ``said``, passed to ``warn`` (None: a RuntimeWarning)."""

    said: list[str]
    warn: Callable[[str], None] | None

    def __call__(self, text: str) -> None:
        self.said.append(text)
        if self.warn is not None:
            self.warn(text)
        else:
            warnings.warn(text, RuntimeWarning, stacklevel=4)


def _resume(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, recipe: Recipe,
            seed: int, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The state of the newest intact checkpoint, restored into ``model``, ``optimizer`` and ``scheduler``
    (None: nothing to resume); ValueError when it was trained with another recipe or seed."""
    state = _load_checkpoint(directory, model, optimizer, scheduler, warn)
    if state is not None:
        _check_resumed(state, recipe, seed, directory)
    return state


def _check_resumed(state: dict[str, Any], recipe: Recipe, seed: int, directory: Path) -> None:
    """ValueError naming the fields in which the checkpoint's recipe or seed differ from this run's."""
    now = {**json.loads(json.dumps(asdict(recipe), default=float)), "seed": seed}
    saved = {**state.get("recipe", {}), "seed": state.get("seed", seed)}
    changed = [f"{key} {saved[key]} in the checkpoint, {now[key]} now" for key in now
               if key in saved and saved[key] != now[key]]
    if changed:
        raise ValueError(f"{directory}: cannot resume with other settings: {'; '.join(changed)}")


def epoch_description(name: str, epoch: int, epochs: int, loss: float) -> str:
    """The training bar's text during epoch ``epoch`` (counted from 0) of ``epochs``, its last step's ``loss``."""
    return f"{name}: training epoch {epoch + 1}/{epochs}, loss {loss:.3f}"


def _progress(show: bool, total: int, done: int, name: str):
    """The training bar of ``name`` (rich Progress, task id), started; None unless ``show``. Its text is
    printed as written, never read as rich markup."""
    if not show:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), transient=True)
    task = bar.add_task(f"{name}: training", total=total, completed=done)
    bar.start()
    return bar, task


def with_overrides(recipe: Recipe, *, epochs: int | None = None, batch_size: int | None = None,
                   lr: float | None = None, augment: bool | None = None) -> Recipe:
    """``recipe`` with the given fields replaced (None keeps the recipe's value)."""
    changes = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "augment": augment}.items()
               if v is not None}
    return replace(recipe, **changes)
