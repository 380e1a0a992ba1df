"""Model cards (TOML), shipped as the package data ``hpbench.zoo``."""
