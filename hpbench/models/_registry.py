"""The model, head and backbone registries, and ``create_model`` / ``list_models`` (as timm's ``_registry``).

Architectures register themselves when ``hpbench.models`` imports them, so every
lookup here finds the built-in models. Third-party models arrive through the
entry-point group ``hpbench.models``; they load lazily on the first lookup miss or
listing, and a plugin that fails to import is reported and skipped.

Heads and backbones compose: ``create_model("a2j@resnet18")`` builds the head
registered as ``a2j`` on the backbone ``resnet18`` (a registered backbone, else
any timm model; see ``hpbench.models.backbones``). ``list_models`` shows the
combinations registered with :func:`register_combination`; any other
``head@backbone`` is built on demand.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpbench.registry import Registry, UnknownNameError

if TYPE_CHECKING:
    from hpbench.data.specs import DatasetSpec

__all__ = [
    "ModelRegistry",
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

ENTRY_POINT_GROUP = "hpbench.models"
COMBINATION_SEPARATOR = "@"


class ModelRegistry(Registry[Callable[..., Any]]):
    """Model builders: keyword-only functions returning an ``nn.Module``.

    With ``heads``, a name ``head@backbone`` that is not registered resolves to the
    head's builder with ``backbone`` bound (the backbone is checked when built).
    """

    def __init__(
        self, kind: str, *, entry_point_group: str | None = None, heads: Registry[Callable[..., Any]] | None = None
    ) -> None:
        super().__init__(kind, entry_point_group=entry_point_group)
        self.heads = heads

    def add(self, name: str, obj: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(obj):
            raise TypeError(f"{self.kind} {name!r}: a builder must be callable, got {obj!r}")
        positional = [
            p.name
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if positional:
            raise TypeError(
                f"{self.kind} {name!r}: builder arguments must be keyword-only (put them after '*'), "
                f"positional: {', '.join(positional)}"
            )
        return super().add(name, obj)

    def get(self, name: str) -> Callable[..., Any]:
        if self.heads is not None and COMBINATION_SEPARATOR in name and name not in self:
            head, _, backbone = name.partition(COMBINATION_SEPARATOR)
            if not head or not backbone:
                raise UnknownNameError(f"{self.kind} {name!r}: expected 'head{COMBINATION_SEPARATOR}backbone'")
            return functools.partial(self.heads.get(head), backbone=backbone)
        return super().get(name)


heads = ModelRegistry("head")
"""Model heads: keyword-only builders taking ``backbone`` (a backbone name) and ``num_joints``."""
register_head = heads.register
models = ModelRegistry("model", entry_point_group=ENTRY_POINT_GROUP, heads=heads)
register_model = models.register
backbones: Registry[Callable[..., Any]] = Registry("backbone")
"""Feature extractors: keyword-only builders (``in_chans``, ``output_stride``, ``pretrained_path``)
returning an ``nn.Module`` that maps an image to a list of feature maps and has
``channels`` and ``strides`` (see ``hpbench.models.backbones.create_backbone``)."""
register_backbone = backbones.register


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


def create_model(
    name: str, *, num_joints: int | None = None, dataset: DatasetSpec | str | None = None, **kwargs: Any
) -> Any:
    """Build model ``name``; keyword arguments that are None are dropped.

    ``dataset`` (a :class:`~hpbench.data.specs.DatasetSpec`, or its registered name
    such as ``"icvl"``) sets ``num_joints`` when ``num_joints`` is not given; the two
    must agree when both are.
    """
    builder = models.get(name)
    if dataset is not None:
        if isinstance(dataset, str):
            from hpbench.data.specs import get_dataset  # the dataset modules stay unimported until asked for

            dataset = get_dataset(dataset)
        if num_joints is not None and num_joints != dataset.num_joints:
            raise ValueError(f"num_joints={num_joints} contradicts dataset {dataset.name!r} ({dataset.num_joints} joints)")
        num_joints = dataset.num_joints
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if num_joints is not None:
        kwargs["num_joints"] = num_joints
    return builder(**kwargs)
