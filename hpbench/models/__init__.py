"""Model architectures; importing this package registers the built-in models."""

from hpbench.models import meanpose, ours, tinycnn  # noqa: F401  (register on import)
