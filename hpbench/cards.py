"""Model cards: the data about each registered model that tests check against the code.

One TOML file per model in zoo/ (shipped as the ``hpbench.zoo`` package data):

    name = "tinycnn"
    summary = "..."                      # one line
    paper = "..."                        # citation, or "none" for reference models
    source = "..."                       # original repository or "hpbench"
    input_shape = [1, 128, 128]          # C, H, W of the normalized crop
    excluded_params = "..."              # optional: parameters left out of the count, and why
    [declared.nyu]                       # one table per dataset: counts of the built model
    params = 63130                       # trainable parameters
    thop_macs = 12868288                 # thop MACs at batch 1
    [published.nyu]                      # optional: the paper's own figures
    mean_error_mm = 8.32
    [recipe]                             # training recipe (read by the trainer)
    optimizer = "adam"
    [quick]                              # optional: the short schedule of `hpbench run --quick`
    steps = 150                          # optimizer steps
    batch_size = 16
    lr = 2e-3                            # optional; default: the recipe's
    augment = false                      # optional; default: false
    [checkpoint.synth]                   # optional: a small trained checkpoint shipped in zoo/
    file = "ours-synth.safetensors"
    sha256 = "..."                       # checked before loading
    command = "hpbench run ..."          # how it was trained
    mean_error_mm = 20.1                 # its test error, measured by `hpbench eval --model`
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["CardError", "Checkpoint", "Declared", "ModelCard", "QuickSchedule", "card_names", "load_card",
           "parse_card", "zoo_checkpoint"]

_PACKAGE = "hpbench.zoo"


class CardError(ValueError):
    """A model card that is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Declared:
    """Counts a card declares for one dataset: trainable parameters and thop MACs at batch 1."""

    params: int
    thop_macs: int


@dataclass(frozen=True)
class QuickSchedule:
    """The short schedule of ``hpbench run --quick``: ``steps`` optimizer steps of ``batch_size``
    crops at learning rate ``lr`` (None: the recipe's), one cosine cycle, augmentation only when
    ``augment`` (off by default: on a few hundred steps it costs more than it gives; ours on
    synth, 400 steps of 8: 28.4 mm without, 33.5 mm with the recipe's augmentation)."""

    steps: int = 100
    batch_size: int = 16
    lr: float | None = None
    augment: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """A trained checkpoint shipped in zoo/: its file name, sha256, the command that trained it
    and the test error it gave (mm)."""

    file: str
    sha256: str
    command: str
    mean_error_mm: float


@dataclass(frozen=True)
class ModelCard:
    """What the zoo records about a model (see the module docstring for the file format)."""

    name: str
    summary: str
    paper: str
    source: str
    input_shape: tuple[int, ...]
    declared: Mapping[str, Declared]
    excluded_params: str = ""
    published: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    recipe: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    quick: QuickSchedule = QuickSchedule()
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=lambda: MappingProxyType({}))


_REQUIRED = {"name", "summary", "paper", "source", "input_shape", "declared"}
_OPTIONAL = {"excluded_params", "published", "recipe", "quick", "checkpoint"}


def _zoo():  # -> importlib.resources.abc.Traversable
    """The zoo folder, wherever the package is installed."""
    return resources.files(_PACKAGE)


def card_names() -> list[str]:
    """Names of all cards in the zoo, sorted."""
    return sorted(entry.name[:-5] for entry in _zoo().iterdir() if entry.name.endswith(".toml"))


def load_card(name: str) -> ModelCard:
    """The card of model ``name`` from zoo/<name>.toml; CardError if missing or malformed."""
    resource = _zoo().joinpath(f"{name}.toml")
    if not resource.is_file():
        raise CardError(f"model {name!r} has no card: expected zoo/{name}.toml")
    return parse_card(resource.read_text(encoding="utf-8"), name)


def parse_card(text: str, name: str) -> ModelCard:
    """The card of model ``name`` from its TOML ``text``; CardError naming zoo/<name>.toml if malformed."""
    where = f"zoo/{name}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CardError(f"{where}: {error}") from None
    missing, unknown = _REQUIRED - data.keys(), data.keys() - _REQUIRED - _OPTIONAL
    if missing or unknown:
        raise CardError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if data["name"] != name:
        raise CardError(f"{where}: name = {data['name']!r} does not match the file name")
    try:
        declared = {
            dataset: Declared(params=int(counts["params"]), thop_macs=int(counts["thop_macs"]))
            for dataset, counts in data["declared"].items()
        }
    except (KeyError, TypeError, ValueError) as error:
        raise CardError(f"{where}: each [declared.<dataset>] needs integer params and thop_macs ({error})") from None
    try:
        quick = QuickSchedule(**data.get("quick", {}))
        checkpoints = {dataset: Checkpoint(**entry) for dataset, entry in data.get("checkpoint", {}).items()}
    except TypeError as error:
        raise CardError(f"{where}: [quick] takes steps, batch_size, lr, augment; [checkpoint.<dataset>] takes file, "
                        f"sha256, command, mean_error_mm ({error})") from None
    if quick.steps < 1 or quick.batch_size < 1:
        raise CardError(f"{where}: [quick] steps and batch_size must be >= 1")
    return ModelCard(
        name=name,
        summary=str(data["summary"]),
        paper=str(data["paper"]),
        source=str(data["source"]),
        input_shape=tuple(int(v) for v in data["input_shape"]),
        declared=MappingProxyType(declared),
        excluded_params=str(data.get("excluded_params", "")),
        published=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in data.get("published", {}).items()}),
        recipe=MappingProxyType(dict(data.get("recipe", {}))),
        quick=quick,
        checkpoints=MappingProxyType(checkpoints),
    )


def zoo_checkpoint(name: str, dataset: str) -> Path:
    """Path of model ``name``'s shipped checkpoint for ``dataset``, its sha256 verified.

    CardError when the card ships none for that dataset or the file is missing or altered.
    """
    card = load_card(name)
    if dataset not in card.checkpoints:
        shipped = ", ".join(sorted(card.checkpoints)) or "none"
        raise CardError(f"model {name!r} ships no checkpoint for {dataset!r} (shipped: {shipped}); "
                        "pass a checkpoint file")
    entry = card.checkpoints[dataset]
    path = Path(str(_zoo().joinpath(entry.file)))
    if not path.is_file():
        raise CardError(f"zoo/{name}.toml names {entry.file}, which is not in zoo/")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise CardError(f"zoo/{entry.file}: sha256 {digest} does not match the card's {entry.sha256}")
    return path
