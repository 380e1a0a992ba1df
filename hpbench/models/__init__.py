"""Model architectures and their registries; importing this package registers the built-in models."""

from hpbench.models._registry import (
    backbones,
    create_model,
    heads,
    list_models,
    models,
    register_backbone,
    register_combination,
    register_head,
    register_model,
)
from hpbench.models import a2j, handfold, meanpose, ours, tinycnn, trinet, v2v  # noqa: F401  (register on import)

__all__ = [
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
