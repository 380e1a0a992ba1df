"""Model cards: the data about each registered model that the library reads and tests check.

One TOML file per model in zoo/ (shipped as the ``hpbench.zoo`` package data), parsed once
into the frozen dataclasses below. Every table maps 1:1 onto a dataclass: an unknown key, a
missing required key, a wrong type or an unknown choice is refused with a one-line
:class:`CardError` naming the file, the table and the field, and what was expected::

    name = "tinycnn"                     # must match the file name
    summary = "..."                      # free text, one line
    paper = "..."                        # citation, or "none" for reference models
    source = "..."                       # original repository or "hpbench"
    input_shape = [1, 128, 128]          # C, H, W of the normalized crop (integers >= 1)
    excluded_params = "..."              # optional free text: parameters left out of the count, and why

    [declared.nyu]                       # one table per dataset: counts of the built model (Declared)
    params = 63130                       # trainable parameters
    thop_macs = 12868288                 # thop MACs at batch 1

    [published.nyu]                      # optional, per dataset: the paper's own figures (Published)
    mean_error_mm = 8.32                 # each optional: mean_error_mm, params, thop_macs

    [recipe]                             # the full training recipe (Recipe), all machine-read
    optimizer = "adam"                   # adam | adamw | sgd | rmsprop
    lr = 1e-3                            # peak learning rate
    weight_decay = 1e-5                  # optional, default 0
    # momentum (sgd, rmsprop), betas (adam, adamw), eps (adam, adamw, rmsprop): optional, torch's defaults
    batch_size = 32                      # global batch
    epochs = 10
    schedule = { kind = "step", step_epochs = 10, gamma = 0.2 }  # or { kind = "cosine" }, { kind = "constant" }
    augment = true                       # the protocol's augmentation (hpbench.data.augment.Augmenter) on/off
    mixed_precision = true               # autocast + grad scaling, on GPU only

    [quick]                              # optional: the short schedule of `hpbench run --quick` (QuickSchedule)
    steps = 150                          # optimizer steps
    batch_size = 16
    lr = 2e-3                            # optional; default: the recipe's
    augment = false                      # optional; default: false

    [checkpoints.synth]                  # optional: a small trained checkpoint shipped in zoo/ (Checkpoint)
    file = "ours-synth.safetensors"
    sha256 = "..."                       # checked before loading
    command = "hpbench run ..."          # how it was trained
    mean_error_mm = 20.1                 # its test error, measured by `hpbench eval --model`

    [notes]                              # optional free text for people (crop, loss, cost, augmentation, ...):
    loss = "..."                         # any keys, string values, never parsed by the library

    [protocol.nyu]                       # per dataset: the original's data and training protocol
    origin = "TriHorn-Net"               # (hpbench.protocol.Protocol: frames, centers, crop, augment, loss,
    ...                                  # selection; see zoo/trinet.toml)
    protocols_from = "trinet"            # instead of [protocol.*]: use another card's protocols (variants)

Extending the schema: add a frozen dataclass and a field of that type to its parent. The
converter (:func:`_from_table`) reads the field names and annotations: ``int`` (not bool),
``float`` (ints accepted), ``bool``, ``str``, ``Literal[...]``, ``tuple[T, ...]`` and
``tuple[T, T]``, ``T | None``, nested dataclasses, a union of dataclasses told apart by their
``kind: Literal[...]`` field, ``Mapping[str, T]`` (e.g. per dataset), and ``Annotated[int |
float, AtLeast(...)]`` bounds. Fields with a default are optional; cross-field rules live in
``__post_init__`` (a ValueError there is reported like a type error).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from hpbench.protocol import Protocol
from hpbench.schema import AtLeast, Count, NonNegative, Positive, PositiveInt

__all__ = ["AtLeast", "CardError", "Checkpoint", "Constant", "Cosine", "Declared", "ModelCard", "Published",
           "QuickSchedule", "Recipe", "Schedule", "StepDecay", "card_names", "load_card", "load_protocol", "protocol_table",
           "parse_card", "zoo_checkpoint"]

_PACKAGE = "hpbench.zoo"
T = TypeVar("T")


class CardError(ValueError):
    """A model card that is missing or malformed; the message names the file."""


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Declared:
    """Counts a card declares for one dataset: trainable parameters and thop MACs at batch 1."""

    params: Count
    thop_macs: Count


@dataclass(frozen=True, kw_only=True)
class Published:
    """A paper's own figures for one dataset: mean 3D error (mm), parameters, thop MACs; None: not given."""

    mean_error_mm: Positive | None = None
    params: Positive | None = None
    thop_macs: Positive | None = None


@dataclass(frozen=True, kw_only=True)
class Cosine:
    """One cosine cycle from the recipe's lr down to 0 over all training steps."""

    kind: Literal["cosine"] = "cosine"


@dataclass(frozen=True, kw_only=True)
class StepDecay:
    """torch's StepLR: the lr is multiplied by ``gamma`` every ``step_epochs`` epochs."""

    kind: Literal["step"] = "step"
    step_epochs: PositiveInt
    gamma: Positive


@dataclass(frozen=True, kw_only=True)
class Constant:
    """The recipe's lr throughout."""

    kind: Literal["constant"] = "constant"


Schedule = Cosine | StepDecay | Constant


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A training recipe (``hpbench.train.Recipe``): the optimizer with its hyperparameters (peak
    learning rate, weight decay, momentum, Adam betas and eps), the learning-rate schedule, epochs,
    the global batch (crops), hpbench's augmentation switch and mixed precision (GPU only). The crop is
    the protocol's (``[protocol.<dataset>]``).

    Hyperparameters left at their defaults are torch's; each is refused on optimizers without it.
    """

    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"]
    lr: Positive
    weight_decay: NonNegative = 0.0
    momentum: NonNegative = 0.0
    betas: tuple[NonNegative, NonNegative] = (0.9, 0.999)
    eps: Positive = 1e-8
    batch_size: PositiveInt
    epochs: PositiveInt
    schedule: Schedule
    augment: bool
    mixed_precision: bool

    def __post_init__(self) -> None:
        adam = self.optimizer in ("adam", "adamw")
        if self.momentum and adam:
            raise ValueError(f"momentum applies to sgd and rmsprop, not {self.optimizer}")
        if self.betas != (0.9, 0.999) and not adam:
            raise ValueError(f"betas apply to adam and adamw, not {self.optimizer}")
        if self.eps != 1e-8 and self.optimizer == "sgd":
            raise ValueError("eps applies to adam, adamw and rmsprop, not sgd")


@dataclass(frozen=True, kw_only=True)
class QuickSchedule:
    """The short schedule of ``hpbench run --quick``: ``steps`` optimizer steps of ``batch_size``
    crops at learning rate ``lr`` (None: the recipe's), one cosine cycle, augmentation only when
    ``augment`` (off by default: on a few hundred steps it costs more than it gives; ours on
    synth, 400 steps of 8: 28.4 mm without, 33.5 mm with the recipe's augmentation)."""

    steps: PositiveInt = 100
    batch_size: PositiveInt = 16
    lr: Positive | None = None
    augment: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """A trained checkpoint shipped in zoo/: its file name, sha256, the command that trained it
    and the test error it gave (mm)."""

    file: str
    sha256: str
    command: str
    mean_error_mm: Positive


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What the zoo records about a model (see the module docstring for the file format)."""

    name: str
    summary: str
    paper: str
    source: str
    input_shape: tuple[PositiveInt, ...]
    excluded_params: str = ""
    declared: Mapping[str, Declared]
    published: Mapping[str, Published] = field(default_factory=_empty)
    recipe: Recipe
    quick: QuickSchedule = QuickSchedule()
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=_empty)
    notes: Mapping[str, str] = field(default_factory=_empty)
    protocol: Mapping[str, Protocol] = field(default_factory=_empty)
    protocols_from: str = ""

    def __post_init__(self) -> None:
        if self.protocol and self.protocols_from:
            raise ValueError("a card gives [protocol.<dataset>] tables or protocols_from (another card), not both")


class _Refused(Exception):
    """A value the schema refuses: ``path`` (table names, then the field) and what was wrong."""

    def __init__(self, path: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.path, self.problem = path, problem


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _kinds(tp: Any) -> dict[str, type] | None:
    """``kind`` value -> class for a union of dataclasses (None for any other type)."""
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ()
    if members and all(dataclasses.is_dataclass(m) for m in members):
        return {typing.get_args(_hints(m)["kind"])[0]: m for m in members}
    return None


def _expected(tp: Any) -> str:
    """What a value of type ``tp`` looks like in TOML, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return f"{_expected(args[0])} " + " and ".join(bound.words() for bound in args[1:])
    if (kinds := _kinds(tp)) is not None:
        return "a table with kind = " + " | ".join(f'"{k}"' for k in kinds)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in args)
    if origin is tuple:
        each = _expected(args[0])
        return f"a list, each {each}" if args[-1] is Ellipsis else f"a list of {len(args)} items, each {each}"
    if origin is Mapping:
        return f"a table of named entries, each {_expected(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def _shown(value: Any) -> str:
    """A TOML value as the error message shows it: its kind and its text."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, dict):
        return "a table"
    kind = {int: "integer", float: "number", list: "list"}.get(type(value), type(value).__name__)
    return f"the {kind} {value!r}"


def _convert(tp: Any, value: Any, path: tuple[str, ...]) -> Any:
    """``value`` (from tomllib) as type ``tp``; _Refused naming ``path`` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def refuse() -> _Refused:
        return _Refused(path, f"expected {_expected(tp)}, got {_shown(value)}")

    if origin is Annotated:
        try:
            number = _convert(args[0], value, path)
        except _Refused:
            raise refuse() from None
        if not all(bound.holds(number) for bound in args[1:]):
            raise refuse()
        return number
    if (kinds := _kinds(tp)) is not None:
        if not isinstance(value, dict):
            raise refuse()
        if value.get("kind") not in kinds:
            got = _shown(value["kind"]) if "kind" in value else "nothing"
            raise _Refused(path + ("kind",), f"expected {_expected(Literal[tuple(kinds)])}, got {got}")
        return _from_table(kinds[value["kind"]], value, path)
    if origin in (typing.Union, types.UnionType):  # T | None: TOML has no null, so a value present is a T
        return _convert(next(a for a in args if a is not type(None)), value, path)
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise refuse()
        return value
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise refuse()
        try:
            return tuple(_convert(args[0], item, path) for item in value)
        except _Refused:
            raise refuse() from None
    if origin is Mapping:
        if not isinstance(value, dict):
            raise refuse()
        return MappingProxyType({key: _convert(args[1], item, path + (key,)) for key, item in value.items()})
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise refuse()
        return _from_table(tp, value, path)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise refuse()
    return value


def _from_table(cls: type[T], table: Mapping[str, Any], path: tuple[str, ...] = ()) -> T:
    """Dataclass ``cls`` from a TOML table whose keys are its fields (see the module docstring).

    _Refused names the table ``path`` and the field for an unknown, missing or mistyped key.
    """
    hints = _hints(cls)
    for key in table:
        if key not in hints:
            close = difflib.get_close_matches(key, hints, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise _Refused(path + (key,), f"unknown field ({hint}expected one of: {', '.join(hints)})")
    required = {f.name for f in dataclasses.fields(cls)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for key in hints:
        if key in required and key not in table:
            raise _Refused(path + (key,), f"missing (expected {_expected(hints[key])})")
    values = {key: _convert(hints[key], value, path + (key,)) for key, value in table.items()}
    try:
        return cls(**values)
    except ValueError as error:  # a cross-field rule of __post_init__
        raise _Refused(path + ("",), str(error)) from None


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


@functools.lru_cache(maxsize=128)
def parse_card(text: str, name: str) -> ModelCard:
    """The card of model ``name`` from its TOML ``text``; a one-line CardError naming
    zoo/<name>.toml, the table and the field if malformed. Memoized on the text (a card is frozen):
    a report asks for the same cards dozens of times."""
    where = f"zoo/{name}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CardError(f"{where}: {error}") from None
    try:
        card = _from_table(ModelCard, data)
    except _Refused as refused:
        *table, key = refused.path
        located = " ".join(filter(None, [f"[{'.'.join(table)}]" if table else "", key]))
        raise CardError(f"{where}: {located}: {refused.problem}") from None
    if card.name != name:
        raise CardError(f'{where}: name: expected "{name}" (the file name), got the string "{card.name}"')
    return card


def load_protocol(name: str, dataset: str) -> Protocol:
    """Model ``name``'s protocol for ``dataset`` (a dataset format name: icvl, nyu, msra), following
    ``protocols_from``; CardError when no card in the chain has one for that dataset."""
    seen: list[str] = []
    card = load_card(name)
    while card.protocols_from:
        seen.append(card.name)
        if card.protocols_from in seen:
            raise CardError(f"zoo/{card.name}.toml: protocols_from loops: {' -> '.join(seen + [card.protocols_from])}")
        card = load_card(card.protocols_from)
    if dataset not in card.protocol:
        known = ", ".join(sorted(card.protocol))
        via = f" (through zoo/{card.name}.toml)" if card.name != name else ""
        raise CardError(f"model {name!r} has no protocol for {dataset!r}{via}: zoo/{card.name}.toml has {known}")
    return card.protocol[dataset]


def protocol_table() -> str:
    """A Markdown table of every card's own protocols (one row per model and dataset), for the README."""
    from hpbench.protocol import describe_augment, describe_centers, describe_crop, describe_frames

    lines = ["| Model | Dataset | Protocol | Crop | Centres | Train frames | Augmentation | Original checkpoint |",
             "|:--|:--|:--|:--|:--|:--|:--|:--|"]
    for name in card_names():
        card = load_card(name)
        if card.protocols_from:
            lines.append(f"| {name} | all | as {card.protocols_from} | | | | | |")
            continue
        for dataset, protocol in sorted(card.protocol.items()):
            origin = protocol.origin + (" (borrowed)" if protocol.borrowed else "")
            cells = [name, dataset, origin, describe_crop(protocol.crop), describe_centers(protocol.centers),
                     describe_frames(protocol.frames), describe_augment(protocol.augment), protocol.selection]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
