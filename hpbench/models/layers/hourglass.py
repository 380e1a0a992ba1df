"""One hourglass (Newell et al., "Stacked Hourglass Networks", ECCV 2016) with optional grid mixers.

The recursive layout of the original: at every level a block on the current
grid (up1), max-pool, a block on the coarser grid (low1), the next level (or a
bottom block, low2), a block (low3), nearest x2 upsampling and the sum with up1.
Original code: https://github.com/princeton-vl/pytorch_stacked_hourglass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor, nn

__all__ = ["Hourglass"]


class Hourglass(nn.Module):
    """(B, C, H, W) -> (B, C, H, W), H and W divisible by 2 ** depth.

    ``make_block(c_in, c_out)`` builds every node's block. ``make_mixer(C)``, when
    given, builds a grid mixer (e.g. self-attention) for each level in
    ``mixer_levels``: level k is the grid pooled k times (0 = input grid, ``depth``
    = the lowest grid). A mixer at the lowest level follows the bottom block; at a
    level k < depth it follows the sum that ends level k on the up path.
    """

    def __init__(
        self,
        *,
        depth: int,
        channels: int,
        make_block: Callable[[int, int], nn.Module],
        make_mixer: Callable[[int], nn.Module] | None = None,
        mixer_levels: Iterable[int] = (),
    ) -> None:
        super().__init__()
        levels = sorted(set(mixer_levels))
        if levels and make_mixer is None:
            raise ValueError("mixer_levels given without make_mixer")
        if any(not 0 <= level <= depth for level in levels):
            raise ValueError(f"mixer_levels must lie in 0..{depth}, got {levels}")
        self.depth = depth
        self.up1 = nn.ModuleList(make_block(channels, channels) for _ in range(depth))
        self.low1 = nn.ModuleList(make_block(channels, channels) for _ in range(depth))
        self.low3 = nn.ModuleList(make_block(channels, channels) for _ in range(depth))
        self.low2 = make_block(channels, channels)
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.mixers = nn.ModuleDict({str(level): make_mixer(channels) for level in levels} if make_mixer else {})

    def _mix(self, x: Tensor, level: int) -> Tensor:
        key = str(level)
        return self.mixers[key](x) if key in self.mixers else x

    def _level(self, x: Tensor, level: int) -> Tensor:
        if level == self.depth:
            return self._mix(self.low2(x), level)
        low = self.low1[level](self.pool(x))
        low = self.low3[level](self._level(low, level + 1))
        return self._mix(self.up1[level](x) + self.upsample(low), level)

    def forward(self, x: Tensor) -> Tensor:
        return self._level(x, 0)
