"""Name -> object registries: models (with entry-point plugins), heads, backbones, datasets.

One small ``Registry`` class serves every concept: duplicate names are rejected,
unknown names fail with the closest matches, listing uses fnmatch patterns and
natural sort (as timm's ``list_models``). Third-party models arrive through the
entry-point group ``hpbench.models``; they load lazily on the first lookup or
listing, and a plugin that fails to import is reported and skipped.

Heads and backbones compose: ``create_model("a2j@resnet18")`` builds the head
registered as ``a2j`` on the backbone ``resnet18`` (a registered backbone, else
any timm model; see ``hpbench.models.backbones``). ``list_models`` shows the
combinations registered with :func:`register_combination`; any other
``head@backbone`` is built on demand.
"""

from __future__ import annotations

import difflib
import functools
import fnmatch
import importlib
import importlib.metadata
import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = [
    "DuplicateNameError",
    "Registry",
    "UnknownNameError",
    "backbones",
    "create_model",
    "heads",
    "list_models",
    "models",
    "register_backbone",
    "register_combination",
    "register_head",
    "register_model",
]

T = TypeVar("T")
ENTRY_POINT_GROUP = "hpbench.models"


class UnknownNameError(LookupError):
    """A name that no registry entry has; the message lists close matches."""


class DuplicateNameError(ValueError):
    """A second registration under a name already taken."""


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


class Registry(Generic[T]):
    """Registered objects of one kind (``kind`` names it in messages).

    ``entry_point_group``: import the group's entry points once, on the first
    lookup miss or listing. Each entry point names a module that registers its
    objects on import, or an object to register under the entry point's name.
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None
        self.plugin_errors: dict[str, str] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; returns ``obj``."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        if name in self._entries:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj)

        return decorate

    def get(self, name: str) -> T:
        """The object registered under ``name``; :class:`UnknownNameError` lists close matches."""
        if name not in self._entries:
            self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names matching the fnmatch ``pattern`` (all when None), natural order."""
        self.load_plugins()
        names = self._entries if pattern is None else fnmatch.filter(self._entries, pattern)
        return sorted(names, key=_natural_key)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def load_plugins(self) -> None:
        """Import the entry points of ``entry_point_group`` once; failures go to ``plugin_errors``."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                loaded = entry_point.load()
                if not inspect.ismodule(loaded) and entry_point.name not in self._entries:
                    self.add(entry_point.name, loaded)
            except Exception as error:  # a broken plugin must not take the registry down
                reason = f"{entry_point.value}: {type(error).__name__}: {error}"
                self.plugin_errors[entry_point.name] = reason
                warnings.warn(f"skipped {self.kind} plugin {entry_point.name!r} ({reason})", stacklevel=2)

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries, key=_natural_key)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (registered: {known})"


class ModelRegistry(Registry[Callable[..., Any]]):
    """Model builders: keyword-only functions returning an ``nn.Module``."""

    def add(self, name: str, obj: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(obj):
            raise TypeError(f"model {name!r}: a builder must be callable, got {obj!r}")
        positional = [
            p.name
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if positional:
            raise TypeError(
                f"model {name!r}: builder arguments must be keyword-only (put them after '*'), "
                f"positional: {', '.join(positional)}"
            )
        return super().add(name, obj)

    def get(self, name: str) -> Callable[..., Any]:
        _import_builtin_models()
        if name not in self and COMBINATION_SEPARATOR in name:
            return _combination_builder(name)
        return super().get(name)

    def names(self, pattern: str | None = None) -> list[str]:
        _import_builtin_models()
        return super().names(pattern)


def _import_builtin_models() -> None:
    # Architectures register themselves on import; done on first use so that
    # `import hpbench` and `hpbench --help` stay free of torch.
    importlib.import_module("hpbench.models")


models = ModelRegistry("model", entry_point_group=ENTRY_POINT_GROUP)
register_model = models.register
heads = ModelRegistry("head")
"""Model heads: keyword-only builders taking ``backbone`` (a backbone name) and ``num_joints``."""
register_head = heads.register
backbones: Registry[Callable[..., Any]] = Registry("backbone")
"""Feature extractors: keyword-only builders (``in_chans``, ``output_stride``, ``pretrained_path``)
returning an ``nn.Module`` that maps an image to a list of feature maps and has
``channels`` and ``strides`` (see ``hpbench.models.backbones.create_backbone``)."""
register_backbone = backbones.register
COMBINATION_SEPARATOR = "@"


def _combination_builder(name: str) -> Callable[..., Any]:
    """Builder of ``head@backbone``: the head's builder with ``backbone`` bound (checked when built)."""
    head, _, backbone = name.partition(COMBINATION_SEPARATOR)
    if not head or not backbone:
        raise UnknownNameError(f"model {name!r}: expected 'head{COMBINATION_SEPARATOR}backbone'")
    return functools.partial(heads.get(head), backbone=backbone)


def register_combination(head: str, backbone: str) -> str:
    """List ``head@backbone`` among the models (it needs a card, as every listed model); returns its name."""
    name = f"{head}{COMBINATION_SEPARATOR}{backbone}"

    def build(**kwargs: Any) -> Any:
        return heads.get(head)(backbone=backbone, **kwargs)

    build.__doc__ = f"The {head!r} head on the {backbone!r} backbone."
    models.add(name, build)
    return name


def list_models(pattern: str | None = None) -> list[str]:
    """Names of registered models matching an fnmatch ``pattern``, e.g. ``"ours*"``."""
    return models.names(pattern)


def create_model(name: str, *, num_joints: int | None = None, dataset: str | None = None, **kwargs: Any) -> Any:
    """Build model ``name``; keyword arguments that are None are dropped.

    ``dataset`` (``"icvl"``, ``"nyu"``, ...) sets ``num_joints`` from its spec when
    ``num_joints`` is not given; the two must agree when both are.
    """
    builder = models.get(name)
    if dataset is not None:
        from hpbench.data.specs import get_dataset

        spec_joints = get_dataset(dataset).num_joints
        if num_joints is not None and num_joints != spec_joints:
            raise ValueError(f"num_joints={num_joints} contradicts dataset {dataset!r} ({spec_joints} joints)")
        num_joints = spec_joints
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if num_joints is not None:
        kwargs["num_joints"] = num_joints
    return builder(**kwargs)
