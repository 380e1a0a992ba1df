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
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

__all__ = ["CardError", "Declared", "ModelCard", "card_names", "load_card"]

_PACKAGE = "hpbench.zoo"


class CardError(ValueError):
    """A model card that is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Declared:
    """Counts a card declares for one dataset: trainable parameters and thop MACs at batch 1."""

    params: int
    thop_macs: int


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


_REQUIRED = {"name", "summary", "paper", "source", "input_shape", "declared"}
_OPTIONAL = {"excluded_params", "published", "recipe"}


def card_names() -> list[str]:
    """Names of all cards in the zoo, sorted."""
    return sorted(entry.name[:-5] for entry in resources.files(_PACKAGE).iterdir() if entry.name.endswith(".toml"))


def load_card(name: str) -> ModelCard:
    """The card of model ``name`` from zoo/<name>.toml; CardError if missing or malformed."""
    resource = resources.files(_PACKAGE).joinpath(f"{name}.toml")
    where = f"zoo/{name}.toml"
    if not resource.is_file():
        raise CardError(f"model {name!r} has no card: expected {where}")
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
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
    )
