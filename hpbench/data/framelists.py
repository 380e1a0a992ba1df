"""Which label lines a protocol trains on (``hpbench.protocol.Frames``): all of them, a list of frame
names (TriHorn-Net's 22k ICVL frames), an index file (A2J's validIndex), HandFoldingNet's dated-folder
rule, or the frames with a valid centre (V2V-PoseNet).

Frame names are paths relative to the split's image folder with ``/`` separators, as the label files
write them (ICVL: ``201403121135/image_0000.png``). Errors name the list file and line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpbench.data.formats import DatasetError
from hpbench.protocol import Frames

__all__ = ["FrameSelection", "HANDFOLD_EXCLUDED_LINES", "frame_names_below", "read_frame_list", "select_frames"]

# labels.txt lines (1-based) HandFoldingNet's ICVL preprocessing skips (preprocess_icvl_single.m L141-143)
HANDFOLD_EXCLUDED_LINES = (205510, 304574, 304667)
_DATED_FOLDER_CHARS = 12  # HandFoldingNet keeps lines whose first path component has >= 12 characters


@dataclass(frozen=True)
class FrameSelection:
    """``indices``: (M,) sorted label-line indices (0-based) kept of ``total``; ``rule``: what chose
    them, in words; ``unmatched``: names of a list that no label line has."""

    indices: np.ndarray
    total: int
    rule: str
    unmatched: int = 0

    @property
    def dropped(self) -> int:
        return self.total - len(self.indices)


def frame_names_below(files: Sequence[Path], folder: Path) -> list[str]:
    """``files`` as names relative to ``folder`` (``/`` separators)."""
    return [Path(os.path.relpath(file, folder)).as_posix() for file in files]


def read_frame_list(path: Path) -> list[str]:
    """Frame names, one a line (blank lines skipped); DatasetError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(path, f"cannot read frame list: {getattr(error, 'strerror', None) or error}") from None
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if any(c.isspace() for c in name):
            raise DatasetError(path, f"expected one frame name a line, got {line.strip()!r}", line=number)
        names.append(name)
    if not names:
        raise DatasetError(path, "empty frame list")
    return names


def _read_indices(path: Path, total: int) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(path, f"cannot read index file ({error})") from None
    if values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise DatasetError(path, f"expected integer label-line indices, got {values.size} of {values.dtype}")
    indices = np.unique(values.ravel().astype(np.int64))
    if indices[0] < 0 or indices[-1] >= total:
        raise DatasetError(path, f"indices {indices[0]}..{indices[-1]} outside the {total} label lines "
                                 "(0-based, as numpy indexes the lines)")
    return indices


def select_frames(
    names: Sequence[str],
    lines: np.ndarray,
    frames: Frames,
    *,
    list_file: Path | None = None,
    valid_centers: np.ndarray | None = None,
) -> FrameSelection:
    """The training lines ``frames.train`` keeps of a split whose frames are ``names`` (read from
    label-file lines ``lines``, 1-based). ``list_file``: the names list (``list``) or the index file
    (``a2j-valid``); ``valid_centers``: (N,) bool, for ``valid-centers``."""
    total = len(names)
    rule = frames.train
    if rule == "all":
        return FrameSelection(np.arange(total), total, "all label lines")
    if rule == "valid-centers":
        if valid_centers is None or len(valid_centers) != total:
            raise ValueError("valid-centers needs one validity flag per frame")
        return FrameSelection(np.flatnonzero(valid_centers), total, "lines whose centre is valid")
    if rule == "dated-folders":
        dated = np.array([len(name.split("/")[0]) >= _DATED_FOLDER_CHARS for name in names], dtype=bool)
        kept = dated & ~np.isin(np.asarray(lines), HANDFOLD_EXCLUDED_LINES)
        return FrameSelection(np.flatnonzero(kept), total,
                              f"lines in dated folders (>= {_DATED_FOLDER_CHARS} characters), "
                              f"less lines {', '.join(map(str, HANDFOLD_EXCLUDED_LINES))}")
    if list_file is None:
        raise DatasetError(Path(frames.train_list or "validIndex.npy"),
                           f"the protocol's {rule} frame list is needed: pass its file")
    if rule == "a2j-valid":
        return FrameSelection(_read_indices(list_file, total), total, f"indices in {list_file}")
    wanted = set(read_frame_list(list_file))
    kept = np.array([name in wanted for name in names], dtype=bool)
    if not kept.any():
        raise DatasetError(list_file, f"none of its {len(wanted)} names is a frame of the split "
                                      f"(first frame: {names[0] if names else 'none'})")
    return FrameSelection(np.flatnonzero(kept), total, f"names in {list_file}",
                          unmatched=len(wanted - set(names)))
