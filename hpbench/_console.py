"""What the command line prints: text exactly as written, tables whose numbers are never cut.

Every console here has rich markup, emoji codes and highlighting off: file names,
method names, card text and error messages are external text, and ``[bold]x.txt``,
``[/x]`` or ``file:100:`` must print unchanged. Styles come from ``style=`` or
:class:`rich.text.Text` spans, never from markup in a string.

Tables: number cells (and identifiers such as model names) never wrap and
their column is at least as wide as the widest of them; text columns wrap (or
fold a long word) or, for short labels, shorten to one line with an ellipsis.
A table whose numbers need more than the terminal's width is printed wider
(the terminal wraps the lines) instead of cut.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["Kind", "OneLineOSErrors", "console", "fail", "os_error_line", "print_refused", "print_table", "table"]

PIPE_WIDTH = 200
"""Width of output into pipes and logs when $COLUMNS is unset: wide enough not to wrap a table row."""

MIN_TEXT = 6
"""Narrowest a text column gets before a table is printed wider than the terminal."""
COMFORT_TEXT = 16
"""Width a text column gets (at most) in a table printed wider than the terminal."""
HEADER_WORD = 12
"""Longest header word a number column is widened for."""
Kind = Literal["number", "name", "text", "short"]
"""A table column: ``number`` (right-aligned) and ``name`` (an identifier) are never wrapped or cut, ``text``
wraps (a long word folds), ``short`` stays on one line and is shortened with an ellipsis."""


def console(stderr: bool = False) -> Console:
    """A console for the CLI's output: no markup, emoji or highlighting; $COLUMNS wide, else the
    terminal's width, else (pipes, logs) :data:`PIPE_WIDTH`."""
    from rich.console import Console

    out = Console(stderr=stderr, markup=False, emoji=False, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, markup=False, emoji=False, highlight=False, width=PIPE_WIDTH)
    return out


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr, exactly as written on one line (the terminal wraps it), and exit
    with ``code``."""
    from rich.text import Text

    console(stderr=True).print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


def os_error_line(error: OSError) -> str:
    """``error`` in one line naming its file, e.g. ``results/synth: Permission denied``."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename is not None else reason


class OneLineOSErrors(typer.Typer):
    """A Typer whose commands end an OSError that reaches them (a read-only or missing folder, a full disk)
    with one ``error:`` line naming the file (:func:`fail`), not a traceback."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(function)  # typer reads the parameters through __wrapped__
            def guarded(*call_args: Any, **call_kwargs: Any) -> Any:
                try:
                    return function(*call_args, **call_kwargs)
                except OSError as error:
                    fail(os_error_line(error))

            register(guarded)
            return function

        return decorate


def print_refused(reasons: Iterable[str]) -> None:
    """One ``refused <reason>`` line per refused file on stderr, each reason exactly as written."""
    from rich.text import Text

    errors = console(stderr=True)
    for reason in reasons:
        errors.print(Text.assemble(("refused", "bold red"), " ", reason), soft_wrap=True)


def table(columns: Sequence[tuple[str, Kind]], rows: Iterable[Sequence[str]], *, title: str | None = None) -> Table:
    """A rich table of plain-text cells (never markup); ``columns``: (header, kind) pairs.

    The header of a number or name column wraps at the column's widest cell (or its longest word, up to
    :data:`HEADER_WORD` characters: a longer one breaks at a hyphen or is folded).
    """
    import textwrap

    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    rows = [list(row) for row in rows]
    result = Table(title=Text(title, style="italic") if title else None)
    for index, (header, kind) in enumerate(columns):
        if kind in ("number", "name"):
            widest = max((cell_len(row[index]) for row in rows), default=1)
            longest = max(map(len, header.split()), default=0)
            header = "\n".join(textwrap.wrap(header, max(widest, min(HEADER_WORD, longest))))
            result.add_column(Text(header), justify="right" if kind == "number" else "left", no_wrap=True,
                              min_width=widest)
        else:
            result.add_column(Text(header), overflow="ellipsis" if kind == "short" else "fold")
    for row in rows:
        result.add_row(*(Text(cell, no_wrap=kind != "text", overflow="ellipsis" if kind == "short" else "fold")
                         for cell, (_, kind) in zip(row, columns, strict=True)))
    return result


def print_table(out: Console, rendered: Table) -> None:
    """Print ``rendered`` within ``out``'s width, or wider (no cropping) when its numbers need more."""
    from rich.cells import cell_len

    fixed, texts = len(rendered.columns) + 1, []  # the vertical rules
    for column in rendered.columns:
        if column.min_width is not None:  # numbers and names: as wide as the widest cell or header line
            fixed += 2 + max(column.min_width, *map(cell_len, str(column.header).splitlines()))
        else:
            texts.append(max((cell_len(str(cell)) for cell in column.cells), default=1))
    if fixed + sum(2 + min(MIN_TEXT, width) for width in texts) > out.width:
        rendered.width = fixed + sum(2 + min(COMFORT_TEXT, width) for width in texts)
    out.print(rendered, crop=False)
