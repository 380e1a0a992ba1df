"""hpbench: benchmark 3D hand pose estimation from depth, honestly."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpbench.fuse import FuseReport, fuse_for_inference, fuse_with_report
    from hpbench.models import create_model, list_models, register_model

from hpbench.allocator import keep_freed_memory

__all__ = [
    "FuseReport",
    "__version__",
    "create_model",
    "fuse_for_inference",
    "fuse_with_report",
    "keep_freed_memory",
    "list_models",
    "register_model",
]
__version__ = "0.1.0"
_MODEL_API = frozenset({"create_model", "list_models", "register_model"})
_FUSE_API = frozenset({"FuseReport", "fuse_for_inference", "fuse_with_report"})


def __getattr__(name: str) -> Any:
    """``create_model``, ``list_models``, ``register_model`` from ``hpbench.models`` and
    ``fuse_for_inference``, ``fuse_with_report``, ``FuseReport`` from ``hpbench.fuse``, imported on
    first use so that ``import hpbench`` and ``hpbench --help`` stay free of torch."""
    if name in _MODEL_API:
        return getattr(importlib.import_module("hpbench.models"), name)
    if name in _FUSE_API:
        return getattr(importlib.import_module("hpbench.fuse"), name)
    raise AttributeError(f"module 'hpbench' has no attribute {name!r}")
