"""Which label lines a protocol trains on (``hpbench.protocol.Frames``): all of them, a list of frame
names (TriHorn-Net's 22k ICVL frames), an index file (A2J's validIndex), HandFoldingNet's dated-folder
rule, or the frames with a valid centre (V2V-PoseNet).

Frame names are paths relative to the split's image folder with ``/`` separators, as the label files
write them (ICVL: ``201403121135/image_0000.png``). Errors name the list file and line.

A run finds a protocol's list file (``icvl_train_list.txt``, A2J's ``validIndex.npy``) below the data
root: in the root itself, then in its ``lists/`` and ``centers/`` folders (:data:`LIST_FOLDERS`). When
it is absent, the run trains on all frames and says so (:func:`training_frames`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpbench.data.formats import DatasetError
from hpbench.data.specs import DatasetSpec
from hpbench.protocol import Frames

__all__ = ["A2J_INDEX_FILE", "FrameSelection", "HANDFOLD_EXCLUDED_LINES", "LIST_FOLDERS", "TrainingFrames",
           "find_list_file", "frame_names_below", "read_frame_list", "select_frames", "training_frames"]

LIST_FOLDERS = ("", "lists", "centers")
"""Folders below a data root where a protocol's frame list is looked for, in this order."""
A2J_INDEX_FILE = "validIndex.npy"  # A2J's ICVL training indices (data/icvl/validIndex.npy)

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


def find_list_file(root: Path, name: str) -> Path | None:
    """The first ``root/<folder>/name`` of :data:`LIST_FOLDERS` that is a file; None when none is."""
    for folder in LIST_FOLDERS:
        path = root / folder / name
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class TrainingFrames:
    """The training frames a run uses: ``selection``; ``fallback``: why the protocol's rule was not
    applied and what was used instead ("" when it was); ``warn``: whether the fallback deserves a
    warning (on real data; on a synthetic set the protocol's lists are expected to be absent)."""

    selection: FrameSelection
    fallback: str = ""
    warn: bool = False


def _split_folder(spec: DatasetSpec, root: Path) -> Path:
    """The folder the train split's frame names are relative to (its image folder, else its label file's)."""
    assert spec.layout is not None
    layout = spec.layout.split("train")
    return root / layout.image_dir if layout.image_dir else (root / layout.label_files[0]).parent


def training_frames(frames: Frames, spec: DatasetSpec, root: Path, files: Sequence[str], *,
                    valid_centers: np.ndarray | None) -> TrainingFrames:
    """The train-split frames (``files``: their paths, in label order) that ``frames.train`` keeps on
    ``spec`` below ``root``. ``valid_centers``: (N,) whether each frame's centre came from a centre
    file (None: no centre file was read). Where the rule cannot be applied (its list file is not
    below the root, no centre file, or it keeps no frame of a synthetic set), all frames, said in
    :attr:`TrainingFrames.fallback`."""
    total, rule = len(files), frames.train

    def everything(why: str) -> TrainingFrames:
        return TrainingFrames(FrameSelection(np.arange(total), total, "all label lines"),
                              f"{why}: all {total} frames", warn=not spec.synthetic)

    list_file = None
    if rule in ("list", "a2j-valid"):
        name = frames.train_list if rule == "list" else A2J_INDEX_FILE
        list_file = find_list_file(root, name)
        if list_file is None:
            return everything(f"list {name} not found below {root}")
    if rule == "valid-centers" and valid_centers is None:
        return everything("no centre file")
    lines = np.arange(1, total + 1)
    if rule == "dated-folders":
        from hpbench.data.formats import open_split

        lines = open_split(spec, "train", data_root=root).labels.lines
    chosen = select_frames(frame_names_below([Path(f) for f in files], _split_folder(spec, root)), lines, frames,
                           list_file=list_file, valid_centers=valid_centers)
    if len(chosen.indices) == 0 and spec.synthetic:
        return everything(f"{chosen.rule} keeps no synthetic frame")
    return TrainingFrames(chosen)
