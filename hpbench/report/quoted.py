"""Costs the seed paper quotes for the published methods (its Tables 1 and 2), and where they are wrong.

Li Li Liu, "Light Weight Computation and Compact Network for 3D Hand Pose Estimation from Depth"
(2023) compares its model with baselines by mean error, "FLOPs" (thop multiply-accumulates at
batch 1, G) and parameters (M). The facts below come from design/ours.md (its own row),
design/profiling.md and design/baselines.md (the baselines' figures measured on their original
code). Errors are not repeated here: each card's ``[published.<dataset>]`` holds its paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QUOTED", "Quote", "quote_of"]


@dataclass(frozen=True, kw_only=True)
class Quote:
    """The seed paper's cost figures for one method (None: not quoted) and footnotes where they are wrong.

    ``gmac``: its "FLOPs (G)" as printed; ``batch``: the batch that figure was counted at (the
    per-sample cost is ``gmac / batch``); ``params_m``: its parameters (M). ``gmac_note`` and
    ``params_note`` explain a figure that disagrees with the original code.
    """

    model: str
    gmac: float | None = None
    batch: int = 1
    params_m: float | None = None
    gmac_note: str = ""
    params_note: str = ""

    @property
    def gmac_per_sample(self) -> float | None:
        """The quoted MACs divided by the batch they were counted at, G per sample."""
        return None if self.gmac is None else self.gmac / self.batch


QUOTED: tuple[Quote, ...] = (
    Quote(model="ours", gmac=0.27, params_m=0.18),
    Quote(model="trinet", gmac=13.47),
    Quote(model="v2v", gmac=38.453,
          gmac_note="thop counts V2V-PoseNet's two 3D transposed convolutions by output volume (8x); "
                    "the exact conv/linear count is 36.38 G"),
    Quote(model="a2j", params_m=82.01,
          params_note="A2J's original code has 44.74 M parameters, 2.05 M of them an unused ImageNet fc "
                      "(42.69 M without it, as measured here); 82.01 M matches no configuration of it"),
    Quote(model="handfold", gmac=35.788, batch=32,
          gmac_note="35.788 G is thop's count at batch 32: 1.118 G per sample (ICVL, 16 joints)"),
)
"""The seed paper's cost figures, in its tables' order (ours first)."""


def quote_of(model: str) -> Quote | None:
    """The seed paper's quote for registry model ``model``, or None when it quotes no cost for it."""
    return next((quote for quote in QUOTED if quote.model == model), None)
