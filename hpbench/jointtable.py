"""The one reader of joint tables: the whitespace text format of labels and predictions alike.

A joint table has one frame per line: J x 3 numbers (u v d, or x y z), separated
by spaces or tabs, optionally led by a frame-name column (``test_seq_1\\image_0000.png``).
Community prediction files, handpose-eval's ground-truth labels, ICVL's label
files and MSRA's ``joint.txt`` (after its count line) are all joint tables.
Line ends may be ``\\n``, ``\\r\\n``, ``\\r`` or ICVL's ``\\r\\r\\n`` (one line end).

One pass over the whole text, vectorized: the bytes are decoded once, line ends
are rewritten only when the file has a ``\r``, and the frame lines go through
pandas' C parser in one call, checked with numpy (shape, numbers, finiteness); no
Python loop touches a number. A file the fast pass does not take is read again
line by line to name the first defect. Every defect is a :class:`TableFileError`
naming the file and line; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["JointTable", "TableFileError", "read_joint_table", "read_text"]


class TableFileError(ValueError):
    """A file that cannot be read as asked; ``str()`` is one line naming the file and line.

    The base of :class:`~hpbench.predictions.PredictionFileError` and
    :class:`~hpbench.data.formats.DatasetError`: ``except TableFileError`` catches both.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str, *, line: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = message
        where = "" if self.path is None else f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class JointTable:
    """A parsed joint table.

    ``joints``: (N, J, 3) float64 as written; ``names``: the frame-name column, or
    None; ``lines``: (N,) 1-based line of each frame; ``header``: the
    ``(line, text)`` pairs skipped before the frames (``header_lines``).
    """

    path: Path
    joints: np.ndarray
    names: tuple[str, ...] | None
    lines: np.ndarray
    header: tuple[tuple[int, str], ...] = ()


def read_joint_table(
    path: str | os.PathLike[str],
    *,
    num_joints: int,
    named: bool | None = None,
    skip_blank_lines: bool = True,
    header_lines: int = 0,
    what: str | None = None,
    error: type[TableFileError] = TableFileError,
) -> JointTable:
    """Read ``path`` as frames of ``num_joints`` x 3 numbers.

    ``named``: whether a frame-name column leads each line; None detects it from the
    first frame line (a leading token that is not a number). ``skip_blank_lines``:
    ignore blank lines anywhere, else refuse them inside the data (trailing ones are
    always dropped). ``header_lines``: non-blank lines to set aside before the
    frames. ``what`` describes the expected values in messages (default
    ``"(J joints)"``). Raises ``error`` (a :class:`TableFileError`) on an unreadable
    or binary file, a wrong number of values, a token that is not a number, nan or inf.
    """
    path = Path(path)
    text = read_text(path, error)
    body = None if header_lines else _frames_only(text)
    if body is not None:  # every line a frame: no list of lines unless the careful pass needs one
        numbers, header = np.arange(1, body.count("\n") + 2, dtype=np.int64), ()
        first = body.partition("\n")[0]
    else:
        lines, numbers, header = _frame_lines(text, skip_blank_lines, header_lines)
        body, first = "\n".join(lines), (lines[0] if lines else "")
    detect = named is None
    if named is None:
        tokens = first.split()
        named = bool(tokens) and not _is_number(tokens[0])
    rows = _Rows(path, body, numbers, named, 3 * num_joints, what or f"({num_joints} joints)", error)
    parsed = rows.parse_fast()
    if parsed is None:  # the careful pass finds and names the first defect
        parsed = rows.parse_checked(detect)
    names, values = parsed
    joints = values.reshape(len(numbers), num_joints, 3)
    _check_finite(path, joints, numbers, error)
    return JointTable(path=path, joints=joints, names=names, lines=numbers, header=header)


_INNER_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")  # a line of whitespace only (\s is str.isspace's set)


def _frames_only(text: str) -> str | None:
    """``text`` less its trailing blank lines when no other line is blank (every line a frame), else None."""
    end = text.find("\n", len(text.rstrip()))
    body = text if end < 0 else text[:end]
    if _blank(body.partition("\n")[0]) or _INNER_BLANK_LINE.search(body) is not None:
        return None  # (the last line is not blank)
    return body


def _frame_lines(text: str, skip_blank_lines: bool, header_lines: int,
                 ) -> tuple[list[str], np.ndarray, tuple[tuple[int, str], ...]]:
    """The frame lines of ``text``, their 1-based line numbers and the ``(line, text)`` header pairs before them
    (trailing blank lines dropped; other blank lines too with ``skip_blank_lines``)."""
    lines = text.split("\n")
    end = len(lines)
    while end and _blank(lines[end - 1]):  # trailing blank lines are no frames
        end -= 1
    del lines[end:]
    numbers = np.arange(1, end + 1, dtype=np.int64)
    if skip_blank_lines:
        keep = np.fromiter((not _blank(line) for line in lines), dtype=bool, count=end)
        if not keep.all():
            lines, numbers = [line for line, kept in zip(lines, keep, strict=True) if kept], numbers[keep]
    header = tuple(zip(numbers[:header_lines].tolist(), lines[:header_lines], strict=True))
    return lines[header_lines:], numbers[header_lines:], header


def _float(token: str) -> float:
    """``float(token)`` of a plain ASCII number: float() alone takes ``1_5`` (15) and non-ASCII digits,
    which pandas' fast path refuses, so the careful pass refuses them too."""
    if "_" in token or not token.isascii():
        raise ValueError(f"not a plain number: {token!r}")
    return float(token)


def _is_number(token: str) -> bool:
    try:
        _float(token)
    except ValueError:
        return False
    return True


def _blank(line: str) -> bool:
    return not line or line.isspace()


def read_text(path: Path, error: type[TableFileError] = TableFileError, *, what: str = "") -> str:
    """The file's text with ``\\n`` line ends, refusing unreadable, binary or non-UTF-8 files (``error``
    names the file and line; ``what``: the kind of file, e.g. "centre file", in the unreadable message)."""
    try:
        raw = path.read_bytes()
    except OSError as caught:
        raise error(path, f"cannot read{' ' + what if what else ''}: {caught.strerror or caught}") from None
    if b"\x00" in raw:
        raise error(path, "binary content (NUL bytes): not a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as caught:
        raise error(path, "not UTF-8 text", line=raw[: caught.start].count(b"\n") + 1) from None
    if "\r" in text:  # a regex pass over every file would cost more than parsing it
        text = re.sub(r"\r+\n", "\n", text).replace("\r", "\n")
    return text


@dataclass(frozen=True)
class _Rows:
    """The frame lines of one file (``body``, joined by ``\\n``) and what they should hold: ``width`` numbers
    after a name when ``named``."""

    path: Path
    body: str
    numbers: np.ndarray
    named: bool
    width: int
    what: str
    error: type[TableFileError]

    def parse_fast(self) -> tuple[tuple[str, ...] | None, np.ndarray] | None:
        """pandas' C parser for well-formed lines (~5x faster than Python); None if anything is off."""
        import pandas as pd

        if not len(self.numbers):
            return (() if self.named else None), np.empty((0, self.width))
        try:
            frame = pd.read_csv(
                io.BytesIO(self.body.encode()), sep=r"\s+", header=None, engine="c", quoting=csv.QUOTE_NONE,
                skip_blank_lines=False, dtype={0: str} if self.named else None,
            )
        except (ValueError, pd.errors.ParserError):
            return None
        if frame.shape != (len(self.numbers), self.width + int(self.named)):
            return None
        block = frame.iloc[:, int(self.named):]
        if not all(dtype.kind in "fi" for dtype in block.dtypes):
            return None
        values = block.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            return None
        names = tuple(frame.iloc[:, 0].astype(str)) if self.named else None
        if names is not None and any(_is_number(name) for name in names):
            return None
        return names, values

    def parse_checked(self, detected: bool) -> tuple[tuple[str, ...] | None, np.ndarray]:
        """Line-by-line parse that raises on the first defect, naming its line."""
        names: list[str] = []
        lines = self.body.split("\n") if len(self.numbers) else []
        values = np.empty((len(lines), self.width))
        for index, (line, number) in enumerate(zip(lines, self.numbers.tolist(), strict=True)):
            tokens = line.split()
            if not tokens:
                raise self.error(self.path, "blank line inside the data", line=number)
            if self.named and _is_number(tokens[0]):
                lead = f"line {int(self.numbers[0])} starts" if detected else "each line of this format starts"
                message = f"{lead} with a frame name but this line starts with the number {tokens[0]!r}"
                raise self.error(self.path, message, line=number)
            if len(tokens) - int(self.named) != self.width:
                separator = _separator(line)
                if separator is not None:
                    message = f"values separated by {separator!r}: expected whitespace-separated numbers"
                    raise self.error(self.path, message, line=number)
                raise self.error(self.path, self._count_message(tokens), line=number)
            if self.named:
                names.append(tokens[0])
            for column, token in enumerate(tokens[int(self.named):]):
                try:
                    values[index, column] = _float(token)
                except ValueError:
                    message = f"column {column + 1 + int(self.named)}: {token!r} is not a number"
                    raise self.error(self.path, message, line=number) from None
        return (tuple(names) if self.named else None), values

    def _count_message(self, tokens: list[str]) -> str:
        count = len(tokens) - int(self.named)
        message = f"{count} values, expected {self.width} {self.what}"
        if count % 3 == 0 and count > 0:
            message += f"; the line holds {count // 3} joints x 3: wrong --dataset or a different joint set?"
        if not self.named and count == self.width + 1 and not _is_number(tokens[0]):
            message += f"; first token is a frame name but line {int(self.numbers[0])} has none"
        return message


def _separator(line: str) -> str | None:
    """The comma or semicolon that separates a line's numbers (a CSV row), or None."""
    for separator in (",", ";"):
        fields = [field.strip() for field in line.split(separator)]
        if len(fields) > 1 and sum(_is_number(field) for field in fields) >= len(fields) - 1:
            return separator
    return None


def _check_finite(path: Path, joints: np.ndarray, numbers: np.ndarray, error: type[TableFileError]) -> None:
    """Refuse nan and inf, naming the first one's line, joint and coordinate."""
    finite = np.isfinite(joints)
    if finite.all():
        return
    frame, joint, axis = (int(i) for i in np.argwhere(~finite)[0])
    raise error(
        path,
        f"joint {joint + 1}, coordinate {'xyz'[axis]}/{'uvd'[axis]} is {float(joints[frame, joint, axis])} "
        f"({int((~finite).sum())} non-finite values in the file)",
        line=int(numbers[frame]),
    )
