"""Property tests (issue 17): the joint-table reader over any valid layout and any single corruption,
camera uvd <-> xyz round trips (any intrinsics, any non-zero depth) and crop <-> image round trips."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpbench import jointtable, metrics
from hpbench.data.camera import Camera
from hpbench.data.crop import crop_transform
from hpbench.data.specs import get_dataset
from hpbench.jointtable import read_joint_table
from hpbench.predictions import PredictionFileError, read_prediction_file

SETTINGS = settings(max_examples=60, deadline=None)

# ------------------------------------------------------------------------------------------ joint tables

_number = st.one_of(
    st.floats(-5000, 5000, allow_nan=False).map(repr),
    st.floats(-5000, 5000, allow_nan=False).map(lambda v: f"{v:.6f}"),
    st.floats(-5000, 5000, allow_nan=False).map(lambda v: f"{v:e}"),
    st.integers(-5000, 5000).map(str),
)
_gap = st.sampled_from([" ", "\t", "  ", " \t", "\t ", "\t\t"])
_edge = st.sampled_from(["", " ", "\t", " \t "])
_newline = st.sampled_from(["\n", "\r\n", "\r", "\r\r\n"])


@st.composite
def _tables(draw, min_frames: int = 1):
    """(tokens per frame line, names or None, num_joints): the content of a valid table."""
    num_joints = draw(st.integers(1, 4))
    frames = draw(st.integers(min_frames, 6))
    rows = [[draw(_number) for _ in range(3 * num_joints)] for _ in range(frames)]
    names = [f"seq_{draw(st.integers(0, 9))}\\frame_{i:04d}.png" for i in range(frames)] if draw(st.booleans()) else None
    return rows, names, num_joints


def _render(draw, rows, names, *, newline=None) -> tuple[str, str]:
    """A random valid layout of a table: per-gap separators, edge whitespace, line ends, final newline."""
    newline = newline or draw(_newline)
    lines = []
    for index, tokens in enumerate(rows):
        tokens = ([names[index]] if names else []) + tokens
        line = tokens[0]
        for token in tokens[1:]:
            line += draw(_gap) + token
        lines.append(draw(_edge) + line + draw(_edge))
    final = draw(st.sampled_from(["", newline, newline + newline, newline + " \t" + newline]))
    return newline.join(lines) + final, newline


def _write(text: str, folder: str, name: str = "table.txt", bom: bool = False) -> Path:
    path = Path(folder) / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


@SETTINGS
@given(table=_tables(), bom=st.booleans(), data=st.data())
def test_any_valid_layout_reads_and_scores_identically(table, bom, data):
    rows, names, num_joints = table
    text, _ = _render(data.draw, rows, names)
    canonical = "".join((f"{names[i]} " if names else "") + " ".join(tokens) + "\n" for i, tokens in enumerate(rows))
    expected = np.array([[float(token) for token in tokens] for tokens in rows]).reshape(len(rows), num_joints, 3)
    with tempfile.TemporaryDirectory() as folder:
        reference = read_prediction_file(_write(canonical, folder, "canonical.txt"), num_joints=num_joints)
        parsed = read_prediction_file(_write(text, folder, bom=bom), num_joints=num_joints)
        table_read = read_joint_table(Path(folder) / "table.txt", num_joints=num_joints)
    np.testing.assert_array_equal(parsed.joints, reference.joints)
    np.testing.assert_array_equal(table_read.joints, reference.joints)
    np.testing.assert_allclose(parsed.joints, expected, rtol=1e-15, atol=0)
    assert parsed.names == table_read.names == (tuple(names) if names else None)
    np.testing.assert_array_equal(parsed.line_numbers, np.arange(1, len(rows) + 1))
    # scores identically: the same errors against a fixed ground truth, whatever the layout
    camera = get_dataset("nyu").camera
    truth = camera.uvd_to_xyz(np.full_like(expected, 300.0))
    assert metrics.mean_error_mm(metrics.joint_errors_mm(camera.uvd_to_xyz(parsed.joints), truth)) == \
        metrics.mean_error_mm(metrics.joint_errors_mm(camera.uvd_to_xyz(reference.joints), truth))


@SETTINGS
@given(table=_tables(), data=st.data())
def test_the_careful_pass_reads_what_the_fast_pass_reads(table, data):
    rows, names, num_joints = table
    text, _ = _render(data.draw, rows, names)
    with tempfile.TemporaryDirectory() as folder:
        path = _write(text, folder)
        fast = read_joint_table(path, num_joints=num_joints)
        with mock.patch.object(jointtable._Rows, "parse_fast", lambda self: None):
            careful = read_joint_table(path, num_joints=num_joints)
    np.testing.assert_array_equal(careful.joints, fast.joints)
    assert careful.names == fast.names
    np.testing.assert_array_equal(careful.lines, fast.lines)


_CORRUPTIONS = ["token", "missing", "extra", "blank"]


@SETTINGS
@given(table=_tables(min_frames=2), kind=st.sampled_from(_CORRUPTIONS), data=st.data())
def test_any_single_corruption_is_refused_naming_its_line(table, kind, data):
    rows, names, num_joints = table
    rows = [list(tokens) for tokens in rows]
    frame = data.draw(st.integers(0, len(rows) - 1) if kind != "blank" else st.integers(1, len(rows) - 1))
    column = data.draw(st.integers(0, len(rows[frame]) - 1))
    if kind == "token":
        rows[frame][column] = data.draw(st.sampled_from(["x", "1,5", "--", "1.2.3", "nan", "-inf", "0x10", "1e"]))
    elif kind == "missing":
        del rows[frame][column]
    elif kind == "extra":
        rows[frame].insert(column, data.draw(_number))
    text, newline = _render(data.draw, rows, names)
    expected_line = frame + 1
    if kind == "blank":  # an empty or whitespace-only line before frame `frame` (never the first or last line)
        lines = text.split(newline)
        lines.insert(frame, data.draw(st.sampled_from(["", " ", "\t", " \t "])))
        text = newline.join(lines)
        expected_line = frame + 1
    with tempfile.TemporaryDirectory() as folder:
        path = _write(text, folder)
        with pytest.raises(PredictionFileError) as caught:
            read_prediction_file(path, num_joints=num_joints)
    assert caught.value.line == expected_line, str(caught.value)
    assert str(caught.value).startswith(f"{path}:{expected_line}: ")


# ------------------------------------------------------------------------------------------------ camera

_depth = st.one_of(st.floats(1.0, 5000.0), st.floats(-5000.0, -1.0))


@st.composite
def _cameras(draw):
    if draw(st.booleans()):
        return get_dataset(draw(st.sampled_from(["icvl", "nyu", "msra"]))).camera
    fy = draw(st.floats(50.0, 1500.0)) * draw(st.sampled_from([1.0, -1.0]))
    return Camera(fx=draw(st.floats(50.0, 1500.0)), fy=fy, cx=draw(st.floats(0.0, 640.0)),
                  cy=draw(st.floats(0.0, 480.0)), width_px=640, height_px=480)


@SETTINGS
@given(camera=_cameras(), u=st.floats(-200, 900), v=st.floats(-200, 700), d=_depth)
def test_uvd_xyz_round_trip_any_camera_any_non_zero_depth(camera, u, v, d):
    uvd = np.array([u, v, d])
    xyz = camera.uvd_to_xyz(uvd)
    assert xyz[2] == d
    np.testing.assert_allclose(camera.xyz_to_uvd(xyz), uvd, rtol=1e-9, atol=1e-7)
    # x, y grow linearly with depth along a pixel's ray, and vanish on the principal ray
    np.testing.assert_allclose(camera.uvd_to_xyz([u, v, 2 * d])[:2], 2 * xyz[:2], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(camera.uvd_to_xyz([camera.cx, camera.cy, d])[:2], [0.0, 0.0], atol=1e-12)
    # the signs: right of the principal point is +x in front of the camera; y follows fy's sign
    assert np.sign(xyz[0]) == np.sign(u - camera.cx) * np.sign(d) or abs(u - camera.cx) < 1e-9
    assert np.sign(xyz[1]) == np.sign(v - camera.cy) * np.sign(d) * np.sign(camera.fy) or abs(v - camera.cy) < 1e-9


@SETTINGS
@given(camera=_cameras(), x=st.floats(-1000, 1000), y=st.floats(-1000, 1000), z=_depth,
       shape=st.tuples(st.integers(1, 3), st.integers(1, 4)))
def test_xyz_uvd_round_trip_batched(camera, x, y, z, shape):
    xyz = np.broadcast_to(np.array([x, y, z]), shape + (3,)) * np.linspace(0.5, 1.5, shape[1])[:, None]
    back = camera.uvd_to_xyz(camera.xyz_to_uvd(xyz))
    assert back.shape == xyz.shape
    np.testing.assert_allclose(back, xyz, rtol=1e-9, atol=1e-7)


# -------------------------------------------------------------------------------------------------- crop


@SETTINGS
@given(camera=_cameras(), centre_u=st.floats(0, 640), centre_v=st.floats(0, 480), centre_d=st.floats(150, 3000),
       cube=st.floats(100, 400), size=st.sampled_from([32, 64, 96, 128]), rotation=st.floats(-np.pi, np.pi),
       scale=st.floats(0.8, 1.25), offsets=st.lists(st.tuples(st.floats(-120, 120), st.floats(-120, 120),
                                                               st.floats(-300, 300)), min_size=1, max_size=5))
def test_crop_and_inverse_round_trip(camera, centre_u, centre_v, centre_d, cube, size, rotation, scale, offsets):
    centre = np.array([centre_u, centre_v, centre_d])
    transform = crop_transform(centre, cube, camera, size, rotation_rad=rotation, scale=scale)
    uvd = centre + np.array(offsets)  # (J, 3) joints near the centre
    crop = transform.to_crop(uvd)
    np.testing.assert_allclose(transform.to_image(crop), uvd, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(transform.to_world(crop, camera), camera.uvd_to_xyz(uvd), rtol=1e-9, atol=1e-6)
    # the centre is the crop's middle at normalized depth 0; the cube's back face is depth 1
    middle = (size - 1) / 2
    np.testing.assert_allclose(transform.to_crop(centre[None]), [[middle, middle, 0.0]], atol=1e-9)
    back_face = centre + [0.0, 0.0, cube * scale / 2]
    np.testing.assert_allclose(transform.to_crop(back_face[None])[0, 2], 1.0, rtol=1e-12)
    linear = transform.inverse_matrix[:, :2] @ transform.matrix[:, :2]
    np.testing.assert_allclose(linear, np.eye(2), atol=1e-9)


@SETTINGS
@given(camera=_cameras(), centre_d=st.floats(150, 3000), cube=st.floats(100, 400), size=st.sampled_from([32, 96]))
def test_unrotated_crop_spans_the_cube_projection(camera, centre_d, cube, size):
    # by hand: the cube's half side, cube / 2 mm at depth d, spans cube / 2 * f / d image px, which is
    # S / 2 crop px; so the point that far right of (and below) the centre is at middle + S / 2
    centre = np.array([camera.cx, camera.cy, centre_d])
    transform = crop_transform(centre, cube, camera, size)
    edge = centre + [cube / 2 * camera.fx / centre_d, cube / 2 * abs(camera.fy) / centre_d, 0.0]
    middle = (size - 1) / 2
    np.testing.assert_allclose(transform.to_crop(edge[None]), [[middle + size / 2, middle + size / 2, 0.0]],
                               rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("depth", [0.0, -300.0])
def test_crop_refuses_a_centre_at_or_behind_the_camera(depth):
    with pytest.raises(ValueError, match="positive depth"):
        crop_transform(np.array([160.0, 120.0, depth]), 250.0, get_dataset("icvl").camera, 64)
