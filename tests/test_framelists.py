"""Training frame lists of the original protocols (hpbench.data.framelists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpbench.data.formats import DatasetError
from hpbench.data.framelists import frame_names_below, read_frame_list, select_frames
from hpbench.protocol import Frames

NAMES = ["201403121135/image_0000.png", "201403121135/image_0001.png", "2014031211/image_0000.png",
         "201403121140/image_0000.png", "rot/image_0000.png"]
LINES = np.array([1, 2, 3, 205510, 5])  # 1-based label lines; 205510 is one HandFoldingNet skips


def test_all_and_valid_centres():
    everything = select_frames(NAMES, LINES, Frames(train="all"))
    assert everything.indices.tolist() == [0, 1, 2, 3, 4] and everything.dropped == 0
    valid = np.array([True, False, True, True, False])
    chosen = select_frames(NAMES, LINES, Frames(train="valid-centers"), valid_centers=valid)
    assert chosen.indices.tolist() == [0, 2, 3] and chosen.dropped == 2


def test_dated_folders_rule_and_excluded_lines():
    # 12-character first components: lines 1, 2 and 4; line 4 is label line 205510, excluded
    chosen = select_frames(NAMES, LINES, Frames(train="dated-folders"))
    assert chosen.indices.tolist() == [0, 1] and chosen.dropped == 3


def test_a_names_list(tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text("201403121135/image_0001.png\n\n201403121140/image_0000.png\nnot/there.png")  # no final newline
    chosen = select_frames(NAMES, LINES, Frames(train="list", train_list="list.txt"), list_file=listed)
    assert chosen.indices.tolist() == [1, 3] and chosen.unmatched == 1 and chosen.dropped == 3
    listed.write_text("other/image_0000.png\n")
    with pytest.raises(DatasetError, match=r"list.txt: none of its 1 names is a frame"):
        select_frames(NAMES, LINES, Frames(train="list", train_list="list.txt"), list_file=listed)
    listed.write_text("a b\n")
    with pytest.raises(DatasetError, match=r"list.txt:1: expected one frame name a line"):
        read_frame_list(listed)
    with pytest.raises(DatasetError, match=r"icvl_train_list.txt: the protocol's list frame list is needed"):
        select_frames(NAMES, LINES, Frames(train="list", train_list="icvl_train_list.txt"))


def test_an_index_file(tmp_path):
    path = tmp_path / "validIndex.npy"
    np.save(path, np.array([[4], [0], [2]]))
    chosen = select_frames(NAMES, LINES, Frames(train="a2j-valid"), list_file=path)
    assert chosen.indices.tolist() == [0, 2, 4]
    np.save(path, np.array([0, 5]))
    with pytest.raises(DatasetError, match=r"validIndex.npy: indices 0..5 outside the 5 label lines"):
        select_frames(NAMES, LINES, Frames(train="a2j-valid"), list_file=path)
    np.save(path, np.array([0.5]))
    with pytest.raises(DatasetError, match="expected integer"):
        select_frames(NAMES, LINES, Frames(train="a2j-valid"), list_file=path)


def test_names_below_a_folder(tmp_path):
    files = [tmp_path / "Depth" / "201403121135" / "image_0000.png"]
    assert frame_names_below(files, tmp_path / "Depth") == ["201403121135/image_0000.png"]


def test_trihorn_icvl_list(eval_dir):
    # design/protocols.md: 22,068 names, 22,066 distinct, `wc -l` 22,067 (no final newline)
    path = eval_dir / "centers" / "icvl" / "icvl_train_list.txt"
    names = read_frame_list(path)
    assert len(names) == 22068 and len(set(names)) == 22066
    assert path.read_bytes().count(b"\n") == 22067
    assert names[0] == "201403121135/image_0000.png"
    # against a labels.txt-like split holding every listed frame and as many rotated copies
    split = sorted(set(names)) + [f"rotated/{i}.png" for i in range(100)]
    chosen = select_frames(split, np.arange(1, len(split) + 1), Frames(train="list", train_list=path.name),
                           list_file=path)
    assert len(chosen.indices) == 22066 and chosen.dropped == 100 and chosen.unmatched == 0
    assert isinstance(chosen.rule, str) and Path(path).name in chosen.rule
