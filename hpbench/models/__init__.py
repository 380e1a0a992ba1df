"""Model architectures; importing this package registers the built-in models."""

from hpbench.models import a2j, handfold, meanpose, ours, tinycnn, trinet, v2v  # noqa: F401  (register on import)
