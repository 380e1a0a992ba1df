"""hpbench: benchmark 3D hand pose estimation from depth, honestly."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpbench.models import create_model, list_models, register_model

__all__ = ["__version__", "create_model", "list_models", "register_model"]
__version__ = "0.1.0"
_MODEL_API = frozenset({"create_model", "list_models", "register_model"})


def __getattr__(name: str) -> Any:
    """``create_model``, ``list_models``, ``register_model`` from ``hpbench.models``, imported on first use
    so that ``import hpbench`` and ``hpbench --help`` stay free of torch."""
    if name in _MODEL_API:
        return getattr(importlib.import_module("hpbench.models"), name)
    raise AttributeError(f"module 'hpbench' has no attribute {name!r}")
