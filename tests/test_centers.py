"""Hand centres chosen by each model's protocol, files of both formats, and `hpbench centers`.

Expected values come from outside the code: hand-made files, design/protocols.md (TriHorn-Net's NYU
centres are refined u v d files; V2V-PoseNet's are world x y z with `invalid` lines that drop the
frame) and the real files of ../shared/handpose-eval/centers (README: 8,252 and 72,757 lines, test
line 1 = 217.1 249.9 762.0).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hpbench.cards import load_protocol
from hpbench.cli import app
from hpbench.data.cache import (
    CENTER_DEPTH, CENTER_FILE, CENTER_INVALID, CENTER_LABELS, CenterFile, CropSettings, build_crop_cache,
    describe_center_sources, open_protocol_cache,
)
from hpbench.data.centers import center_from_depth, read_center_file, resolve_centers, write_center_file
from hpbench.data.formats import open_split
from hpbench.data.specs import get_dataset
from hpbench.data.synth import synthesize
from hpbench.protocol import Centers

NYU = get_dataset("nyu")
ICVL = get_dataset("icvl")
SYNTH = get_dataset("synth")
REFINED_UVD = Centers(train="refined", test="refined", format="uvd", train_file="center_train_refined.txt",
                      test_file="center_test_refined.txt")  # TriHorn-Net's NYU protocol (protocols.md §1)
runner = CliRunner()


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize("synth", root, frames=3, test_frames=3, seed=5, workers=1)
    return root


# --------------------------------------------------------------------------- writing and reading files


def test_uvd_file_round_trip_is_exact(tmp_path):
    uvd = np.array([[217.142992, 249.913935, 761.998108], [10.5, 20.25, 500.0]])
    path = write_center_file(tmp_path / "c.txt", uvd, np.array([True, True]), coords="uvd", camera=NYU.camera)
    assert path.read_text() == "217.142992 249.913935 761.998108\n10.500000 20.250000 500.000000\n"
    back, valid = read_center_file(path, NYU.camera, coords="uvd")
    np.testing.assert_array_equal(back, uvd)
    assert valid.all()


def test_uvd_file_refuses_a_frame_without_centre(tmp_path):
    uvd = np.array([[1.0, 2.0, 300.0], [np.nan, np.nan, np.nan]])
    with pytest.raises(ValueError, match=r"c\.txt: 1 frame without a centre \(first: frame 1"):
        write_center_file(tmp_path / "c.txt", uvd, np.array([True, False]), coords="uvd", camera=NYU.camera)
    assert not (tmp_path / "c.txt").exists()


def test_a_valid_frame_must_have_a_centre(tmp_path):
    with pytest.raises(ValueError, match="frame 0 .* depth > 0"):
        write_center_file(tmp_path / "c.txt", np.array([[1.0, 2.0, 0.0]]), np.array([True]), coords="xyz",
                          camera=NYU.camera)


def test_xyz_file_by_hand_and_round_trip(tmp_path):
    # NYU: fx 588.03, fy -587.07, cx 320, cy 240 (handpose-eval README): u = 320 + 588.03 x / z, v = 240 - 587.07 y / z
    camera = NYU.camera
    uvd = np.array([[320.0 + 588.03 * 0.1, 240.0 - 587.07 * 0.05, 800.0], [np.nan] * 3, [320.0, 240.0, 600.0]])
    path = write_center_file(tmp_path / "c.txt", uvd, np.array([True, False, True]), coords="xyz", camera=camera)
    assert path.read_text() == "80.000000 40.000000 800.000000\ninvalid\n0.000000 0.000000 600.000000\n"
    back, valid = read_center_file(path, camera, coords="xyz")
    assert valid.tolist() == [True, False, True]
    np.testing.assert_allclose(back[valid], uvd[[0, 2]], atol=1e-9)
    down = write_center_file(tmp_path / "down.txt", uvd, np.array([True, False, True]), coords="xyz",
                             camera=camera, y_axis="down")
    assert down.read_text().splitlines()[0] == "80.000000 -40.000000 800.000000"


# --------------------------------------------------------------------------- V2V's invalid lines in the cache


def test_invalid_lines_flag_their_frames_for_dropping(synth_root, tmp_path):
    index = open_split("synth", "train", data_root=synth_root)
    lines = (synth_root / "center_train_refined.txt").read_text().splitlines()
    assert len(lines) == 3
    hand_made = tmp_path / "v2v.txt"
    hand_made.write_text(f"invalid\n{lines[1]}\ninvalid\n")
    cache = build_crop_cache(index, CropSettings(size_px=16), centers=CenterFile(hand_made), cache_dir=tmp_path)
    assert cache.center_source.tolist() == [CENTER_INVALID, CENTER_FILE, CENTER_INVALID]
    assert cache.valid.tolist() == [False, True, False] and int((~cache.valid).sum()) == 2
    assert describe_center_sources(cache.center_source) == ("1 frame from the centre file; "
                                                            "2 frames invalid in the centre file, dropped")


def test_an_invalid_frame_stays_invalid_when_its_depth_is_empty_too(synth_root, tmp_path):
    index = open_split("synth", "train", data_root=synth_root)
    hand_made = tmp_path / "v2v.txt"
    hand_made.write_text("invalid\ninvalid\ninvalid\n")
    # no depth inside 1-2 mm: the placeholder centre falls back to the labels, the frame stays invalid
    cache = build_crop_cache(index, CropSettings(size_px=16), centers=CenterFile(hand_made), com_range_mm=(1, 2),
                             cache_dir=tmp_path)
    assert (cache.center_source == CENTER_INVALID).all()
    labelled = build_crop_cache(index, CropSettings(size_px=16), com_range_mm=(1, 2), cache_dir=tmp_path)
    assert (labelled.center_source == CENTER_LABELS).all()


def test_the_centre_of_mass_range_is_a_parameter_and_in_the_cache_key(synth_root, tmp_path):
    index = open_split("synth", "test", data_root=synth_root)
    wide = build_crop_cache(index, CropSettings(size_px=16), com_range_mm=(0, 500), cache_dir=tmp_path)
    near = build_crop_cache(index, CropSettings(size_px=16), com_range_mm=(0, 100), cache_dir=tmp_path)
    assert wide.path != near.path
    assert (wide.center_source == CENTER_DEPTH).all() and (near.center_source == CENTER_LABELS).all()
    depth = index.load_depth(0)
    expected = center_from_depth(depth, SYNTH.camera, cube_mm=SYNTH.cube_mm, hand_range_mm=(0, 500))
    np.testing.assert_allclose(wide.transform.center_uvd[0], expected)


# --------------------------------------------------------------------------- resolve_centers


def test_refined_files_are_found_given_then_in_the_root_then_in_centers(tmp_path):
    given, root = tmp_path / "given", tmp_path / "root"
    (root / "centers").mkdir(parents=True)
    given.mkdir()
    (root / "centers" / "center_test_refined.txt").write_text("1 2 300\n")
    choice = resolve_centers(REFINED_UVD, "test", spec=NYU, root=root, given=given)
    assert choice.file == CenterFile(root / "centers" / "center_test_refined.txt", "uvd")
    assert not choice.fallback and choice.source == "file"
    (root / "center_test_refined.txt").write_text("1 2 300\n")
    assert resolve_centers(REFINED_UVD, "test", spec=NYU, root=root).file.path == root / "center_test_refined.txt"
    (given / "center_test_refined.txt").write_text("1 2 300\n")
    choice = resolve_centers(REFINED_UVD, "test", spec=NYU, root=root, given=given)
    assert choice.file.path == given / "center_test_refined.txt" and "(--centers)" in choice.note
    single = tmp_path / "mine.txt"
    single.write_text("1 2 300\n")
    assert resolve_centers(REFINED_UVD, "test", spec=NYU, root=root, given=single).file.path == single


def test_a_missing_refined_file_falls_back_to_the_centre_of_mass_recorded(tmp_path):
    choice = resolve_centers(REFINED_UVD, "test", spec=NYU, root=tmp_path)
    assert choice.file is None and choice.fallback
    assert choice.com_range_mm == (10.0, 1500.0)  # NYU's hand range: TriHorn's NYU protocol has no CoM range
    assert choice.note.startswith(f"center_test_refined.txt not found in {tmp_path}, {tmp_path / 'centers'}: "
                                  "centre of mass of 10-1500 mm")
    assert json.loads(json.dumps(choice.record())) == {
        "split": "test", "requested": "refined", "used": "com", "file": "", "format": "",
        "com_range_mm": [10.0, 1500.0], "fallback": True, "note": choice.note}
    a2j_icvl = load_protocol("a2j", "icvl").centers  # train: CoM 0-500 mm; test: refined (protocols.md §2)
    choice = resolve_centers(a2j_icvl, "test", spec=ICVL, root=tmp_path)
    assert choice.com_range_mm == (0.0, 500.0) and "icvl_center_test.txt not found" in choice.note


def test_a_com_protocol_uses_its_range_unless_centres_are_given(tmp_path):
    trinet_icvl = load_protocol("trinet", "icvl").centers  # CoM of 0 < d <= 500 mm (protocols.md §1)
    choice = resolve_centers(trinet_icvl, "train", spec=ICVL, root=tmp_path)
    assert choice.file is None and not choice.fallback and choice.com_range_mm == (0.0, 500.0)
    assert choice.note == "centre of mass of 0-500 mm (protocol)"
    mine = tmp_path / "mine.txt"
    mine.write_text("1 2 300\n")
    choice = resolve_centers(trinet_icvl, "train", spec=ICVL, root=tmp_path, given=mine)
    assert choice.file == CenterFile(mine, "uvd") and choice.fallback
    assert "instead of the protocol's centre of mass" in choice.note


def test_v2v_reads_world_xyz(tmp_path):
    (tmp_path / "center_train_refined.txt").write_text("invalid\n")
    choice = resolve_centers(load_protocol("v2v", "nyu").centers, "train", spec=NYU, root=tmp_path)
    assert choice.file == CenterFile(tmp_path / "center_train_refined.txt", "xyz")


def test_joints_and_predicted_are_not_implemented_and_say_so(tmp_path):
    handfold = load_protocol("handfold", "icvl").centers  # train: GT joints; test: saved_fold1.txt (protocols.md §4)
    train = resolve_centers(handfold, "train", spec=ICVL, root=tmp_path)
    assert train.file is None and train.fallback
    assert train.note == ("centre of mass of 10-500 mm (the dataset's hand range; the protocol gives none): "
                          "the protocol's ground-truth joint regions are not implemented")
    (tmp_path / "center_test_refined.txt").write_text("1 2 300\n")
    test = resolve_centers(handfold, "test", spec=ICVL, root=tmp_path, given=tmp_path)
    assert test.file.path == tmp_path / "center_test_refined.txt" and test.fallback
    assert "predicted joints (saved_fold1.txt) are not implemented" in test.note


def test_synthetic_sets_use_their_own_xyz_file(synth_root, tmp_path):
    choice = resolve_centers(REFINED_UVD, "test", spec=SYNTH, root=synth_root)
    assert choice.file == CenterFile(synth_root / "center_test_refined.txt", "xyz") and not choice.fallback
    assert "synthetic" in choice.note
    com = resolve_centers(replace(REFINED_UVD, train="com", train_file=""), "train", spec=SYNTH, root=synth_root)
    assert com.file is None
    cache, used = open_protocol_cache("synth", "test", CropSettings(size_px=16), REFINED_UVD, data_root=synth_root,
                                      cache_dir=tmp_path)
    assert used == choice and (cache.center_source == CENTER_FILE).all()
    empty = Centers(train="com", test="com", com_range_mm=(1.0, 2.0))  # no synthetic depth in 1-2 mm
    cache, used = open_protocol_cache("synth", "test", CropSettings(size_px=16), empty, data_root=synth_root,
                                      cache_dir=tmp_path)
    assert used.com_range_mm == (1.0, 2.0) and (cache.center_source == CENTER_LABELS).all()


def test_bad_requests_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--centers .*nowhere"):
        resolve_centers(REFINED_UVD, "test", spec=NYU, root=tmp_path, given=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        resolve_centers(REFINED_UVD, "P3", spec=NYU, root=tmp_path)
    per_fold = replace(REFINED_UVD, test_file="center_test_{fold}_refined.txt")
    with pytest.raises(ValueError, match="per fold"):
        resolve_centers(per_fold, "test", spec=NYU, root=tmp_path)
    (tmp_path / "center_test_3_refined.txt").write_text("1 2 300\n")
    assert resolve_centers(per_fold, "test", spec=NYU, root=tmp_path, fold=3).file.path.name == \
        "center_test_3_refined.txt"


# --------------------------------------------------------------------------- hpbench centers


@pytest.mark.parametrize("fmt", ["uvd", "xyz"])
def test_the_centers_command_writes_what_the_reader_reads(synth_root, tmp_path, fmt):
    out = tmp_path / f"c_{fmt}.txt"
    result = runner.invoke(app, ["centers", "--dataset", "synth", "--split", "test", "--data-root", str(synth_root),
                                 "--out", str(out), "--format", fmt, "--range", "0,500"])
    assert result.exit_code == 0, result.output
    assert "3 centres" in result.output
    read, valid = read_center_file(out, SYNTH.camera, coords=fmt)
    index = open_split("synth", "test", data_root=synth_root)
    expected = np.array([center_from_depth(index.load_depth(i), SYNTH.camera, cube_mm=SYNTH.cube_mm,
                                           hand_range_mm=(0, 500)) for i in range(3)])
    assert valid.all()
    np.testing.assert_allclose(read, expected, atol=1e-5)


def test_the_centers_command_marks_empty_frames_invalid_or_refuses(synth_root, tmp_path):
    common = ["centers", "-d", "synth", "--split", "test", "--data-root", str(synth_root), "--range", "1,2"]
    out = tmp_path / "c.txt"
    result = runner.invoke(app, [*common, "--out", str(out), "--format", "xyz"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == "invalid\n" * 3 and "3 without depth in range: invalid" in result.output
    refused = runner.invoke(app, [*common, "--out", str(tmp_path / "u.txt")])
    assert refused.exit_code == 2 and "3 frames without a centre" in refused.output
    assert not (tmp_path / "u.txt").exists()
    bad = runner.invoke(app, ["centers", "-d", "synth", "--split", "test", "--out", str(out), "--range", "500,0"])
    assert bad.exit_code == 2 and "--range takes LOW,HIGH" in bad.output


# --------------------------------------------------------------------------- the real NYU refined centres


@pytest.mark.evaldata
def test_trihorn_nyu_refined_centres(eval_dir, tmp_path):
    folder = eval_dir / "centers" / "nyu"
    test, valid = read_center_file(folder / "center_test_refined.txt", NYU.camera, coords="uvd", num_frames=8252)
    assert valid.all()
    np.testing.assert_allclose(test[0], [217.1, 249.9, 762.0], atol=0.05)
    train, valid = read_center_file(folder / "center_train_refined.txt", NYU.camera, coords="uvd")
    assert train.shape == (72757, 3) and valid.all()
    trinet = load_protocol("trinet", "nyu").centers
    for split in ("test", "train"):
        choice = resolve_centers(trinet, split, spec=NYU, root=tmp_path, given=folder)
        assert choice.file == CenterFile(folder / f"center_{split}_refined.txt", "uvd")
        assert not choice.fallback and choice.note.endswith("(--centers)")
        assert choice.record()["file"] == str(folder / f"center_{split}_refined.txt")
        assert choice.record()["format"] == "uvd" and choice.record()["used"] == "file"

