"""The prediction-file reader: real malformed files, each refused with file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpbench.data.formats import DatasetError, read_label_file
from hpbench import jointtable
from hpbench.jointtable import TableFileError, read_joint_table
from hpbench.predictions import PredictionFileError, detect_coords, read_prediction_file, write_prediction_file

GOOD_LINE = " ".join(["1.5"] * 6)  # 2 joints


def _write(tmp_path, content: bytes | str, name: str = "pred.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("", None, "empty file"),
        ("\n\n  \n", None, "empty file"),
        (f"{GOOD_LINE}\n\n{GOOD_LINE}\n", 2, "blank line"),
        (f"{GOOD_LINE}\n1 2 3 4 5\n", 2, "5 values, expected 6"),
        (f"{GOOD_LINE} 7 8 9\n", 1, "3 joints x 3: wrong --dataset"),
        (f"{GOOD_LINE}\n1 2 3 4 abc 6\n", 2, "column 5: 'abc' is not a number"),
        (f"{GOOD_LINE}\n1 2 3 4 5 1,5\n", 2, "'1,5' is not a number"),
        (f"{GOOD_LINE}\n{GOOD_LINE}\n1 2 nan 4 5 6\n", 3, "joint 1, coordinate z/d is nan"),
        (f"{GOOD_LINE}\n1 2 3 4 -inf 6\n", 2, "joint 2, coordinate y/v is -inf"),
        (f"a.png {GOOD_LINE}\n{GOOD_LINE}\n", 2, "starts with a frame name"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", None, "binary"),
        (b"1 2 3 4 5 6\n\xff\xfe 1 2\n", 2, "not UTF-8"),
    ],
)
def test_malformed_files_are_refused_with_file_and_line(tmp_path, content, line, message):
    path = _write(tmp_path, content)
    with pytest.raises(PredictionFileError) as caught:
        read_prediction_file(path, num_joints=2, dataset="toy")
    error = caught.value
    assert message in str(error)
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}:" if line else f"{path}:")
    assert "\n" not in str(error)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PredictionFileError, match="cannot read"):
        read_prediction_file(tmp_path / "nope.txt", num_joints=2)


def test_wrong_dataset_joint_count_names_both(tmp_path):
    path = _write(tmp_path, " ".join(["1"] * 42) + "\n")
    with pytest.raises(PredictionFileError, match=r"42 values, expected 48 for icvl \(16 joints\); the line holds 14 joints"):
        read_prediction_file(path, num_joints=16, dataset="icvl")


def test_tabs_crlf_names_and_trailing_blank_lines(tmp_path):
    content = "test_seq_1\\image_0000.png\t1\t2\t3\t4\t5\t6\r\nb.png 7 8 9  10 11 12\r\n\r\n\n"
    parsed = read_prediction_file(_write(tmp_path, content), num_joints=2)
    assert parsed.names == ("test_seq_1\\image_0000.png", "b.png")
    np.testing.assert_array_equal(parsed.joints.reshape(2, 6), [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    np.testing.assert_array_equal(parsed.line_numbers, [1, 2])


def test_labels_and_predictions_share_one_reader_and_one_error_type(tmp_path):
    path = _write(tmp_path, f"a.png {GOOD_LINE}\r\r\nb.png {GOOD_LINE}\r\r\n")  # ICVL's released line ends
    prediction = read_prediction_file(path, num_joints=2)
    names, labels = read_label_file(path, 2)
    assert prediction.names == names == ("a.png", "b.png")
    np.testing.assert_array_equal(prediction.joints, labels)
    np.testing.assert_array_equal(prediction.line_numbers, [1, 2])
    bad = _write(tmp_path, f"{GOOD_LINE}\n1 2 3 4 abc 6\n", "bad.txt")
    with pytest.raises(TableFileError) as as_prediction:
        read_prediction_file(bad, num_joints=2)
    with pytest.raises(TableFileError) as as_labels:
        read_label_file(bad, 2)
    assert isinstance(as_prediction.value, PredictionFileError) and isinstance(as_labels.value, DatasetError)
    assert str(as_prediction.value) == str(as_labels.value) == f"{bad}:2: column 5: 'abc' is not a number"


_values = arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5), st.just(3)),
                 elements=st.floats(-1e4, 1e4, allow_nan=False, width=32))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(joints=_values, separator=st.sampled_from([" ", "\t", "  ", " \t"]), with_names=st.booleans(),
       newline=st.sampled_from(["\n", "\r\n"]), trailing=st.sampled_from(["", "\n", "\n\n"]))
def test_parser_reads_back_what_any_dialect_wrote(tmp_path, joints, separator, with_names, newline, trailing):
    lines = []
    for index, frame in enumerate(joints):
        tokens = [repr(float(v)) for v in frame.reshape(-1)]
        if with_names:
            tokens.insert(0, f"seq/frame_{index}.png")
        lines.append(separator.join(tokens))
    path = _write(tmp_path, newline.join(lines) + newline + trailing)
    parsed = read_prediction_file(path, num_joints=joints.shape[1])
    np.testing.assert_array_equal(parsed.joints, joints)
    assert (parsed.names is not None) == with_names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(joints=_values, bad=st.sampled_from(["nan", "inf", "x1", "--"]), data=st.data())
def test_a_single_bad_token_anywhere_is_found_on_its_line(tmp_path, joints, bad, data):
    flat = [[repr(float(v)) for v in frame.reshape(-1)] for frame in joints]
    row = data.draw(st.integers(0, len(flat) - 1))
    column = data.draw(st.integers(0, len(flat[0]) - 1))
    flat[row][column] = bad
    path = _write(tmp_path, "".join(" ".join(tokens) + "\n" for tokens in flat))
    with pytest.raises(PredictionFileError) as caught:
        read_prediction_file(path, num_joints=joints.shape[1])
    assert caught.value.line == row + 1


def test_write_then_read_round_trip_with_names(tmp_path):
    joints = np.random.default_rng(1).normal(200, 50, (5, 3, 3))
    names = [f"test/depth_1_{i:07d}.png" for i in range(5)]
    parsed = read_prediction_file(write_prediction_file(tmp_path / "p.txt", joints, names=names), num_joints=3)
    np.testing.assert_allclose(parsed.joints, joints, atol=5e-7)
    assert parsed.names == tuple(names)
    with pytest.raises(ValueError, match="nan"):
        write_prediction_file(tmp_path / "q.txt", np.full((1, 1, 3), np.nan))


def test_detect_coords():
    uvd = np.stack(np.broadcast_arrays(np.linspace(0, 640, 10)[:, None], np.linspace(0, 480, 14), 700.0), -1)
    assert detect_coords(uvd) == "uvd"
    xyz = uvd - np.array([320.0, 240.0, 0.0])
    assert detect_coords(xyz) == "xyz"


# --------------------------------------------------------------------------------------------------
# Edge cases of real files (issue 17); expected values are the file contents, written by hand.

_THREE_FRAMES = "1 2 3 4 5 6\n7 8 9 10 11 12\n13 14 15 16 17 18\n"
_THREE_VALUES = np.arange(1.0, 19.0).reshape(3, 2, 3)


@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_utf8_bom_is_not_part_of_the_first_token(tmp_path, named, newline):
    lines = _THREE_FRAMES.splitlines()
    if named:
        lines = [f"f{i}.png {line}" for i, line in enumerate(lines)]
    text = newline.join(lines) + newline
    plain = read_prediction_file(_write(tmp_path, text, "plain.txt"), num_joints=2)
    bom = read_prediction_file(_write(tmp_path, b"\xef\xbb\xbf" + text.encode(), "bom.txt"), num_joints=2)
    np.testing.assert_array_equal(bom.joints, _THREE_VALUES)
    np.testing.assert_array_equal(bom.joints, plain.joints)
    assert bom.names == plain.names == (("f0.png", "f1.png", "f2.png") if named else None)
    np.testing.assert_array_equal(bom.line_numbers, [1, 2, 3])


def test_counts_and_shapes_of_a_parsed_file(tmp_path):
    parsed = read_prediction_file(_write(tmp_path, _THREE_FRAMES), num_joints=2)
    assert parsed.num_frames == 3 and parsed.num_joints == 2
    assert parsed.joints.shape == (3, 2, 3) and parsed.joints.dtype == np.float64
    one = read_prediction_file(_write(tmp_path, "1 2 3 4 5 6 7 8 9 10 11 12\n", "one.txt"), num_joints=4)
    assert one.num_frames == 1 and one.num_joints == 4  # a single frame is a file, not an empty one
    np.testing.assert_array_equal(one.joints[0, 3], [10, 11, 12])


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (f"\n{GOOD_LINE}\n{GOOD_LINE}\n", 1, "blank line inside the data"),  # leading blank line
        (f"{GOOD_LINE}\n \t \n{GOOD_LINE}\n", 2, "blank line inside the data"),  # whitespace only
        (f"{GOOD_LINE}\r\n\r\n{GOOD_LINE}\r\n", 2, "blank line inside the data"),
        (f"{GOOD_LINE}\nb.png {GOOD_LINE}\n", 2, "first token is a frame name but line 1 has none"),
        (f"a.png {GOOD_LINE}\nb.png 1 2 3 4 5\n", 2, "5 values, expected 6"),
        (f"a.png {GOOD_LINE}\nb.png {GOOD_LINE} 7\n", 2, "7 values, expected 6"),
        (f"a.png {GOOD_LINE}\nb.png 1 2 3 x 5 6\n", 2, "column 5: 'x' is not a number"),  # the name is column 1
        (f"a.png {GOOD_LINE}\n7 {GOOD_LINE}\n", 2, "starts with the number '7'"),  # 7 numbers, none a name
        (f"{GOOD_LINE}\n1 2 3 4 1_5 6\n", 2, "column 5: '1_5' is not a number"),  # Python's float says 15
        (f"{GOOD_LINE}\n1 2 \uff13 4 5 6\n", 2, "column 3: '\uff13' is not a number"),  # a full-width 3
        (f"{GOOD_LINE}\n1 2 3 4 5 \u0666\n", 2, "column 6: '\u0666' is not a number"),  # an Arabic-Indic 6
    ],
)
def test_blank_lines_and_name_columns_edge_cases(tmp_path, content, line, message):
    with pytest.raises(PredictionFileError) as caught:
        read_prediction_file(_write(tmp_path, content), num_joints=2)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_trailing_blank_and_whitespace_lines_and_no_final_newline(tmp_path):
    for content in (_THREE_FRAMES.rstrip("\n"), _THREE_FRAMES + "\n \t\n\n", _THREE_FRAMES.replace("\n", "\r\n") + "\r\n"):
        parsed = read_prediction_file(_write(tmp_path, content), num_joints=2)
        np.testing.assert_array_equal(parsed.joints, _THREE_VALUES)
        np.testing.assert_array_equal(parsed.line_numbers, [1, 2, 3])


def test_names_keep_backslashes_and_leading_whitespace_is_ignored(tmp_path):
    content = "  test_seq_1\\image_0000.png  1 2 3 4 5 6\n\ttest_seq_2\\image_0001.png\t7 8 9 10 11 12\n"
    parsed = read_prediction_file(_write(tmp_path, content), num_joints=2)
    assert parsed.names == ("test_seq_1\\image_0000.png", "test_seq_2\\image_0001.png")
    np.testing.assert_array_equal(parsed.joints.reshape(2, 6), [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])


def test_write_format_is_exact(tmp_path):
    joints = [[[1.0, 2.0, 3.0], [4.5, -6.0, 7.0000004]], [[0.0, 0.0, 0.0], [1e-7, 123456.75, -0.5]]]  # a list
    path = write_prediction_file(str(tmp_path / "a" / "b" / "plain.txt"), joints)  # str path, missing folders
    assert path == tmp_path / "a" / "b" / "plain.txt"
    assert path.read_text() == (
        "1.000000 2.000000 3.000000 4.500000 -6.000000 7.000000\n"
        "0.000000 0.000000 0.000000 0.000000 123456.750000 -0.500000\n"
    )
    named = write_prediction_file(tmp_path / "a" / "named.txt", joints, names=["x.png", "y.png"])  # folder exists
    assert named.read_text() == (
        "x.png\t1.000000 2.000000 3.000000 4.500000 -6.000000 7.000000\n"
        "y.png\t0.000000 0.000000 0.000000 0.000000 123456.750000 -0.500000\n"
    )
    four = write_prediction_file(tmp_path / "four.txt", np.arange(12.0).reshape(1, 4, 3))  # N = 1, J = 4
    assert four.read_text().split() == [f"{v:.6f}" for v in range(12)]


@pytest.mark.parametrize(
    ("shape", "names", "message"),
    [
        ((2, 2), None, r"\(N, J, 3\)"),
        ((2, 2, 2), None, r"\(N, J, 3\)"),
        ((2, 2, 4), None, r"\(N, J, 3\)"),
        ((2, 2, 3), ["only_one.png"], "1 names for 2 frames"),
        ((2, 2, 3), ["a", "b", "c"], "3 names for 2 frames"),
    ],
)
def test_write_refuses_bad_input(tmp_path, shape, names, message):
    with pytest.raises(ValueError, match=message):
        write_prediction_file(tmp_path / "bad.txt", np.zeros(shape), names=names)
    assert not (tmp_path / "bad.txt").exists()


def _uv_grid(n_values: int, *, negative_u: int = 0, negative_v: int = 0) -> np.ndarray:
    """(10, n_values // 20, 3) image joints, all u, v >= 0, with the first values of u / v made negative."""
    joints = np.empty((10, n_values // 20, 3))
    joints[..., 0] = 100.0
    joints[..., 1] = 80.0
    joints[..., 2] = 600.0
    u, v = joints[..., 0].reshape(-1), joints[..., 1].reshape(-1)
    u[:negative_u] = -3.0
    v[:negative_v] = -3.0
    joints[..., 0] = u.reshape(joints.shape[:2])
    joints[..., 1] = v.reshape(joints.shape[:2])
    return joints


def test_detect_coords_rule_is_pinned_at_5_percent_of_uv_values():
    # 10 frames x 10 joints = 200 u/v values: 10 negatives is exactly 5 % (uvd), 11 is more (xyz)
    assert detect_coords(_uv_grid(200, negative_u=10)) == "uvd"
    assert detect_coords(_uv_grid(200, negative_u=5, negative_v=5)) == "uvd"
    assert detect_coords(_uv_grid(200, negative_u=11)) == "xyz"
    assert detect_coords(_uv_grid(200, negative_u=6, negative_v=5)) == "xyz"


def test_detect_coords_counts_u_and_v_but_not_depth():
    assert detect_coords(_uv_grid(200, negative_u=30)) == "xyz"  # u alone
    assert detect_coords(_uv_grid(200, negative_v=30)) == "xyz"  # v alone
    behind = _uv_grid(200)
    behind[..., 2] = -600.0  # negative depth (all of it) says nothing about the image axes
    assert detect_coords(behind) == "uvd"


def test_detect_coords_zero_and_sub_pixel_values_are_image_coordinates():
    joints = _uv_grid(200)
    joints[:5, :, 0] = 0.0  # half the frames on the image's left edge, u = 0
    joints[:5, :, 1] = 0.5  # and in its first row, v = 0.5: 50 % of the u/v values are in [0, 1)
    assert detect_coords(joints) == "uvd"


@pytest.mark.parametrize("name", ["", "a b.png", "a\tb.png", "a.png\n", "0001", "1e3"])
def test_write_refuses_names_the_reader_cannot_read_back(tmp_path, name):
    with pytest.raises(ValueError, match="cannot be read back"):
        write_prediction_file(tmp_path / "names.txt", np.ones((2, 2, 3)), names=["ok.png", name])
    assert not (tmp_path / "names.txt").exists()


# --------------------------------------------------------------------------------------------------
# The joint-table reader's own options (hpbench.jointtable: the labels' reader uses them)


def test_joint_table_skips_blank_lines_by_default_and_keeps_line_numbers(tmp_path):
    path = _write(tmp_path, f"\n{GOOD_LINE}\n\n \t\n{GOOD_LINE}\n")
    table = read_joint_table(str(path), num_joints=2)  # a str path
    np.testing.assert_array_equal(table.lines, [2, 5])
    assert table.joints.shape == (2, 2, 3) and table.names is None and table.header == () and table.path == path


def test_joint_table_header_lines_are_set_aside_with_their_numbers(tmp_path):
    path = _write(tmp_path, f"2\n\nx.png {GOOD_LINE}\ny.png {GOOD_LINE}\n")
    table = read_joint_table(path, num_joints=2, header_lines=1)
    assert table.header == ((1, "2"),) and table.names == ("x.png", "y.png")
    np.testing.assert_array_equal(table.lines, [3, 4])


def test_joint_table_explicit_name_column(tmp_path):
    path = _write(tmp_path, f"a.png {GOOD_LINE}\n1 2 3 4 5 6 7\n")
    with pytest.raises(TableFileError, match="each line of this format starts with a frame name") as caught:
        read_joint_table(path, num_joints=2, named=True)
    assert caught.value.line == 2
    with pytest.raises(TableFileError, match="7 values, expected 6") as caught:
        read_joint_table(_write(tmp_path, f"a.png {GOOD_LINE}\n", "b.txt"), num_joints=2, named=False)
    assert caught.value.line == 1


@pytest.mark.parametrize(("named", "names"), [(None, None), (False, None), (True, ())])
def test_an_empty_joint_table_has_no_frames(tmp_path, named, names):
    table = read_joint_table(_write(tmp_path, "\n\n"), num_joints=2, named=named)
    assert table.joints.shape == (0, 2, 3) and table.names == names and len(table.lines) == 0


def test_table_error_names_file_and_line():
    error = TableFileError("labels.txt", "bad value", line=3)
    assert (error.path, error.line, error.reason, str(error)) == (Path("labels.txt"), 3, "bad value", "labels.txt:3: bad value")
    assert str(TableFileError("labels.txt", "unreadable")) == "labels.txt: unreadable"
    assert str(TableFileError(None, "no file")) == "no file" and TableFileError(None, "x").path is None


def test_well_formed_tables_take_the_fast_path(tmp_path, monkeypatch):
    def refuse(self, detected):
        raise AssertionError("a well-formed table went to the line-by-line parser")

    monkeypatch.setattr(jointtable._Rows, "parse_checked", refuse)
    for content in (_THREE_FRAMES, _THREE_FRAMES.replace(" ", "\t").replace("\n", "\r\n"),
                    "".join(f"f{i}.png {line}\n" for i, line in enumerate(_THREE_FRAMES.splitlines()))):
        table = read_joint_table(_write(tmp_path, content), num_joints=2)
        np.testing.assert_array_equal(table.joints, _THREE_VALUES)
    with_blank = read_prediction_file(_write(tmp_path, f"{GOOD_LINE}\n\n"), num_joints=2)  # a trailing blank line
    assert with_blank.num_frames == 1
    assert read_joint_table(_write(tmp_path, ""), num_joints=2).joints.shape == (0, 2, 3)


def test_count_messages_hint_at_a_joint_count_only_for_whole_joints(tmp_path):
    path = _write(tmp_path, f"{GOOD_LINE}\n1 2 3 4 5\n")
    with pytest.raises(PredictionFileError) as caught:
        read_prediction_file(path, num_joints=2, dataset="toy")
    assert str(caught.value) == f"{path}:2: 5 values, expected 6 for toy (2 joints)"
    only_name = _write(tmp_path, f"a.png {GOOD_LINE}\nb.png\n", "name.txt")
    with pytest.raises(PredictionFileError) as caught:
        read_prediction_file(only_name, num_joints=2)
    assert str(caught.value) == f"{only_name}:2: 0 values, expected 6 (2 joints)"


def test_model_predictions_name_frames_relative_to_their_shared_folder_and_survive_spaces_in_the_root():
    from hpbench.evaluate import frame_names

    root = "/data/my datasets/icvl/Testing/Depth"
    files = [f"{root}/test_seq_1/image_0000.png", f"{root}/test_seq_2/image_0001.png"]
    assert frame_names(files) == ["test_seq_1/image_0000.png", "test_seq_2/image_0001.png"]
    assert frame_names([f"{root}/test_seq_1/image 0.png", f"{root}/test_seq_1/image_1.png"]) is None
    assert frame_names([]) is None
