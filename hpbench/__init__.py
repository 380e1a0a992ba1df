"""hpbench: benchmark 3D hand pose estimation from depth, honestly."""

from hpbench.registry import create_model, list_models, register_model

__all__ = ["__version__", "create_model", "list_models", "register_model"]
__version__ = "0.1.0"
