"""Bounded number types for the typed TOML schemas (model cards, protocols).

``Annotated[int | float, AtLeast(...)]`` is read by :mod:`hpbench.cards`' converter, which refuses a
value outside the bound in one line naming the file, table and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

__all__ = ["AtLeast", "AtMost", "Count", "NonNegative", "Positive", "PositiveInt", "Probability"]


@dataclass(frozen=True)
class AtLeast:
    """Lower bound of an ``Annotated`` number: ``value <= x``, or ``value < x`` when ``strict``."""

    value: float
    strict: bool = False

    def holds(self, number: float) -> bool:
        return number > self.value if self.strict else number >= self.value

    def words(self) -> str:
        return f"{'>' if self.strict else '>='} {self.value:g}"


@dataclass(frozen=True)
class AtMost:
    """Upper bound of an ``Annotated`` number: ``x <= value``."""

    value: float

    def holds(self, number: float) -> bool:
        return number <= self.value

    def words(self) -> str:
        return f"<= {self.value:g}"


PositiveInt = Annotated[int, AtLeast(1)]
Count = Annotated[int, AtLeast(0)]
Positive = Annotated[float, AtLeast(0.0, strict=True)]
NonNegative = Annotated[float, AtLeast(0.0)]
Probability = Annotated[float, AtLeast(0.0), AtMost(1.0)]
