"""A name -> object registry: one ``Registry`` instance per concept (models, backbones, datasets, formats).

Duplicate names are rejected, unknown names fail with the closest matches, listing
uses fnmatch patterns and natural sort (as timm's ``list_models``). A registry may
load the objects of an entry-point group lazily, reporting and skipping the ones
that fail to import. The model registries live in ``hpbench.models._registry``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["DuplicateNameError", "Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(LookupError):
    """A name that no registry entry has; the message lists close matches."""


class DuplicateNameError(ValueError):
    """A second registration under a name already taken."""


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


class Registry(Generic[T]):
    """Registered objects of one kind (``kind`` names it in messages).

    ``entry_point_group``: import the group's entry points once, on the first
    lookup miss or listing. Each entry point names a module that registers its
    objects on import, or an object to register under the entry point's name.
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None
        self.plugin_errors: dict[str, str] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; returns ``obj``."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        if name in self._entries:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj)

        return decorate

    def get(self, name: str) -> T:
        """The object registered under ``name``; :class:`UnknownNameError` lists close matches."""
        if name not in self._entries:
            self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names matching the fnmatch ``pattern`` (all when None), natural order."""
        self.load_plugins()
        names = self._entries if pattern is None else fnmatch.filter(self._entries, pattern)
        return sorted(names, key=_natural_key)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def load_plugins(self) -> None:
        """Import the entry points of ``entry_point_group`` once; failures go to ``plugin_errors``."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                loaded = entry_point.load()
                if not inspect.ismodule(loaded) and entry_point.name not in self._entries:
                    self.add(entry_point.name, loaded)
            except Exception as error:  # a broken plugin must not take the registry down
                reason = f"{entry_point.value}: {type(error).__name__}: {error}"
                self.plugin_errors[entry_point.name] = reason
                warnings.warn(f"skipped {self.kind} plugin {entry_point.name!r} ({reason})", stacklevel=2)

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries, key=_natural_key)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (registered: {known})"
