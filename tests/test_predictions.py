"""The prediction-file reader: real malformed files, each refused with file and line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpbench.data.formats import DatasetError, read_label_file
from hpbench.jointtable import TableFileError
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
