"""Crop transforms, depth crops and augmentations against values worked out by hand.

Every expected number below is computed in the comments from the definitions in hpbench/data/crop.py's
docstring (a cube of ``cube`` mm at depth d spans ``cube * f / d`` image px; crop pixel centres at
0..S-1 with the middle (S - 1) / 2 on the centre; depth (d - d_c) / (cube / 2), background +1, nearer
than the cube -1; nearest neighbour rounds halves up), not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpbench.data.camera import Camera
from hpbench.data.crop import (
    AugmentParams,
    Augmentation,
    CropTransform,
    augment_crops,
    crop_depth,
    crop_transform,
    normalize_depth,
    sample_augmentation,
)

# fx != |fy|, so a u/v mix-up shows; fy < 0 (world y up) must not flip the crop
WIDE = Camera(fx=200.0, fy=-100.0, cx=10.0, cy=20.0, width_px=120, height_px=80)


def _transform(matrix, centre, half, size) -> CropTransform:
    return CropTransform(np.asarray(matrix, dtype=np.float64), np.asarray(centre, dtype=np.float64),
                         np.asarray(half, dtype=np.float64), size)


def _params(rotation=(0.0,), scale=(1.0,), shift=((0.0, 0.0, 0.0),), dropout=(0.0,)) -> AugmentParams:
    return AugmentParams(np.array(rotation, dtype=np.float64), np.array(scale, dtype=np.float64),
                         np.array(shift, dtype=np.float64), np.array(dropout, dtype=np.float64))


# ------------------------------------------------------------------------------------ crop_transform


def test_crop_transform_matrix_by_hand():
    # centre 0: (60, 30) px at 500 mm, cube 100, S = 10. Half cube 50 mm spans 50 * 200 / 500 = 20 px
    # across and 50 * 100 / 500 = 10 px down: steps of 40 / 10 = 4 and 20 / 10 = 2 image px per crop px.
    # The middle 4.5 sits on the centre: offsets 60 - 4 * 4.5 = 42 and 30 - 2 * 4.5 = 21.
    # centre 1: (20, 50) px at 1000 mm, cube 300: half 150 mm -> 30 and 15 px, steps 6 and 3,
    # offsets 20 - 27 = -7 and 50 - 13.5 = 36.5.
    centres = np.array([[60.0, 30.0, 500.0], [20.0, 50.0, 1000.0]])
    transform = crop_transform(centres, np.array([100.0, 300.0]), WIDE, 10)
    np.testing.assert_allclose(transform.matrix, [[[4, 0, 42], [0, 2, 21]], [[6, 0, -7], [0, 3, 36.5]]],
                               atol=1e-12)
    np.testing.assert_array_equal(transform.center_uvd, centres)
    assert transform.center_uvd is not centres
    np.testing.assert_allclose(transform.depth_half_mm, [50.0, 150.0])
    assert transform.depth_half_mm.shape == (2,) and len(transform) == 2 and transform.size_px == 10
    # inverse by hand: u_crop = (u - 42) / 4, v_crop = (v - 21) / 2; u_crop = (u + 7) / 6, v_crop = (v - 36.5) / 3
    np.testing.assert_allclose(transform.inverse_matrix,
                               [[[0.25, 0, -10.5], [0, 0.5, -10.5]], [[1 / 6, 0, 7 / 6], [0, 1 / 3, -36.5 / 3]]],
                               atol=1e-12)


def test_crop_transform_scale_multiplies_the_cube():
    # scale 2: cube 200 -> steps 8 and 4, offsets 60 - 36 = 24 and 30 - 18 = 12, half depth 100
    transform = crop_transform(np.array([[60.0, 30.0, 500.0]]), 100.0, WIDE, 10, scale=2.0)
    np.testing.assert_allclose(transform.matrix[0], [[8, 0, 24], [0, 4, 12]], atol=1e-12)
    np.testing.assert_allclose(transform.depth_half_mm, [100.0])
    half = crop_transform(np.array([[60.0, 30.0, 500.0]]), 100.0, WIDE, 10, scale=0.5)
    np.testing.assert_allclose(half.matrix[0], [[2, 0, 51], [0, 1, 25.5]], atol=1e-12)
    np.testing.assert_allclose(half.depth_half_mm, [25.0])


def test_crop_transform_rotation_by_a_quarter_turn():
    # rotation pi/2 turns the window counter-clockwise as displayed: the crop's +u (right) is the image's
    # -v (up) and the crop's +v (down) is the image's +u (right). Crop pixels stay square in mm: one crop
    # px is cube / S = 10 mm, which is 10 * 200 / 500 = 4 image px along u and 10 * 100 / 500 = 2 along v.
    # So image u = 4 q_v + a, v = -2 q_u + b with the middle (4.5, 4.5) on (60, 30): a = 42, b = 39.
    expected = [[0, 4, 42], [-2, 0, 39]]
    batched = crop_transform(np.array([[60.0, 30.0, 500.0]]), 100.0, WIDE, 10, rotation_rad=np.pi / 2)
    np.testing.assert_allclose(batched.matrix[0], expected, atol=1e-12)
    single = crop_transform(np.array([60.0, 30.0, 500.0]), 100.0, WIDE, 10, rotation_rad=np.pi / 2)
    assert single.matrix.shape == (2, 3) and single.depth_half_mm.shape == () and single.center_uvd.shape == (3,)
    np.testing.assert_allclose(single.matrix, expected, atol=1e-12)
    # the crop's top-right pixel (9, 0) shows the image point above the centre: (42, 39 - 18) = (42, 21)
    np.testing.assert_allclose(single.to_image(np.array([[9.0, 0.0, 0.0]])), [[42.0, 21.0, 500.0]], atol=1e-12)
    # clockwise (-pi/2): the crop's right is the image's down
    clockwise = crop_transform(np.array([60.0, 30.0, 500.0]), 100.0, WIDE, 10, rotation_rad=-np.pi / 2)
    np.testing.assert_allclose(clockwise.matrix, [[0, -4, 78], [2, 0, 21]], atol=1e-12)


def test_rotated_crop_equals_the_unrotated_crop_augmented_by_the_same_rotation():
    # two routes to one window: crop_transform(rotation_rad=a), or rotating the unrotated crop by a
    centre = np.array([[60.0, 30.0, 500.0]])
    for angle in (0.3, np.pi / 2, -2.0):
        direct = crop_transform(centre, 100.0, WIDE, 10, rotation_rad=angle)
        plain = crop_transform(centre, 100.0, WIDE, 10)
        _, _, augmented = augment_crops(np.zeros((1, 10, 10)), np.zeros((1, 1, 3)), plain, _params(rotation=(angle,)))
        np.testing.assert_allclose(augmented.matrix, direct.matrix, atol=1e-9)


@pytest.mark.parametrize("depth", [0.0, -5.0])
def test_crop_transform_refuses_a_centre_at_or_behind_the_camera(depth):
    with pytest.raises(ValueError, match="positive depth"):
        crop_transform(np.array([[60.0, 30.0, 500.0], [60.0, 30.0, depth]]), 100.0, WIDE, 10)


def test_crop_transform_accepts_any_positive_depth():
    # 0.5 mm is absurd for a hand but positive: half cube 50 mm spans 50 * 200 / 0.5 = 20000 px
    transform = crop_transform(np.array([0.0, 0.0, 0.5]), 100.0, WIDE, 10)
    np.testing.assert_allclose(transform.matrix[0, 0], 4000.0)


# -------------------------------------------------------------------------- CropTransform's mappings


def test_to_crop_and_to_image_by_hand():
    transform = crop_transform(np.array([[60.0, 30.0, 500.0], [20.0, 50.0, 1000.0]]), np.array([100.0, 300.0]),
                               WIDE, 10)
    image = np.array([[[50.0, 25.0, 525.0], [42.0, 21.0, 450.0]],
                      [[-7.0, 36.5, 1150.0], [23.0, 42.5, 925.0]]])
    # (50 - 42) / 4 = 2, (25 - 21) / 2 = 2, (525 - 500) / 50 = 0.5; (42, 21, 450) -> (0, 0, -1);
    # (-7 + 7) / 6 = 0, (36.5 - 36.5) / 3 = 0, 150 / 150 = 1; (23 + 7) / 6 = 5, (42.5 - 36.5) / 3 = 2, -75 / 150
    crop = [[[2.0, 2.0, 0.5], [0.0, 0.0, -1.0]], [[0.0, 0.0, 1.0], [5.0, 2.0, -0.5]]]
    np.testing.assert_allclose(transform.to_crop(image), crop, atol=1e-12)
    np.testing.assert_allclose(transform.to_image(crop), image, atol=1e-12)
    assert transform.to_crop(image.tolist()).dtype == np.float64  # lists are taken too


def test_a_general_affine_matrix_by_hand():
    # crop (1, 2) -> u = 2 * 1 + 3 * 2 + 5 = 13, v = 7 * 1 + 11 * 2 + 13 = 42; d = 0.5 * 40 + 800 = 820
    # crop (-1, 3) -> u = -2 + 9 + 5 = 12, v = -7 + 33 + 13 = 39; d = -0.25 * 40 + 800 = 790
    transform = _transform([[2, 3, 5], [7, 11, 13]], [0.0, 0.0, 800.0], 40.0, 8)
    crop = np.array([[1.0, 2.0, 0.5], [-1.0, 3.0, -0.25]])
    image = np.array([[13.0, 42.0, 820.0], [12.0, 39.0, 790.0]])
    np.testing.assert_allclose(transform.to_image(crop), image, atol=1e-12)
    # det [[2, 3], [7, 11]] = 1: inverse [[11, -3], [-7, 2]], offset -(11 * 5 - 3 * 13, -7 * 5 + 2 * 13) = (-16, 9)
    np.testing.assert_allclose(transform.inverse_matrix, [[11, -3, -16], [-7, 2, 9]], atol=1e-9)
    np.testing.assert_allclose(transform.to_crop(image), crop, atol=1e-9)
    # world: x = (13 - 10) * 820 / 200 = 12.3, y = (42 - 20) * 820 / -100 = -180.4; (2 * 790 / 200, -19 * 7.9)
    np.testing.assert_allclose(transform.to_world(crop, WIDE), [[12.3, -180.4, 820.0], [7.9, -150.1, 790.0]],
                               atol=1e-9)


def test_round_trips_on_chosen_points():
    transform = crop_transform(np.array([[60.0, 30.0, 500.0]]), 100.0, WIDE, 10, rotation_rad=0.7, scale=1.3)
    points = np.array([[[60.0, 30.0, 500.0], [0.0, 0.0, 1.0], [119.0, 79.0, 2000.0], [-30.0, 200.0, 300.0]]])
    np.testing.assert_allclose(transform.to_image(transform.to_crop(points)), points, atol=1e-9)
    crop = np.array([[[4.5, 4.5, 0.0], [0.0, 9.0, -1.0], [-3.0, 12.0, 2.5]]])
    np.testing.assert_allclose(transform.to_crop(transform.to_image(crop)), crop, atol=1e-9)
    # the centre is the middle at depth 0
    np.testing.assert_allclose(transform.to_crop(points[:, :1]), [[[4.5, 4.5, 0.0]]], atol=1e-9)


def test_indexing_length_and_arrays():
    transform = crop_transform(np.array([[60.0, 30.0, 500.0], [20.0, 50.0, 1000.0], [5.0, 5.0, 250.0]]),
                               np.array([100.0, 300.0, 50.0]), WIDE, 10)
    assert len(transform) == 3
    second = transform[1]
    np.testing.assert_allclose(second.matrix, [[6, 0, -7], [0, 3, 36.5]], atol=1e-12)
    np.testing.assert_array_equal(second.center_uvd, [20.0, 50.0, 1000.0])
    assert second.depth_half_mm == 150.0 and second.size_px == 10
    tail = transform[1:]
    assert len(tail) == 2
    np.testing.assert_array_equal(tail.depth_half_mm, [150.0, 25.0])
    picked = transform[np.array([2, 0])]
    np.testing.assert_array_equal(picked.center_uvd[:, 2], [250.0, 500.0])
    arrays = transform.as_arrays()
    assert sorted(arrays) == ["center_uvd", "depth_half_mm", "matrix"]
    assert arrays["matrix"] is transform.matrix and arrays["center_uvd"] is transform.center_uvd
    assert arrays["depth_half_mm"] is transform.depth_half_mm


# ---------------------------------------------------------------------------------- normalize_depth


def test_normalize_depth_chosen_values():
    # centre 500 mm, half cube 100 mm: the cube spans 400..600
    depth = np.array([0.0, -3.0, 1.0, 350.0, 400.0, 450.0, 500.0, 550.0, 600.0, 650.0, 700.0])
    expected = [1.0, 1.0,  # no reading (0, or a negative code): background
                -1.0, -1.0, -1.0,  # 1 mm is a (very near) reading: clamped like anything in front of the cube
                -0.5, 0.0, 0.5, 1.0,
                1.0, 1.0]  # behind the back face: background
    out = normalize_depth(depth, 500.0, 100.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-7)


# ---------------------------------------------------------------------------------------- crop_depth

# a 3 x 4 frame, depth 1000 + 10 row + col mm; with centre 1000 and half cube 100 it normalizes to
# (10 row + col) / 100
FRAME = (1000.0 + 10.0 * np.arange(3)[:, None] + np.arange(4)[None, :]).astype(np.float32)


def test_crop_depth_shift_and_edges():
    # matrix: crop (q_u, q_v) -> image (q_u - 1, q_v - 1); S = 6. Crop row 0 / column 0 look at -1 (outside);
    # rows 1..3 see image rows 0..2; rows 4, 5 see rows 3, 4 (outside, H = 3); columns 1..4 see 0..3,
    # column 5 sees 4 (outside, W = 4)
    transform = _transform([[[1, 0, -1], [0, 1, -1]]], [[0.0, 0.0, 1000.0]], [100.0], 6)
    crop = crop_depth(FRAME[None], transform)
    b = 1.0
    expected = [[b, b, b, b, b, b],
                [b, 0.00, 0.01, 0.02, 0.03, b],
                [b, 0.10, 0.11, 0.12, 0.13, b],
                [b, 0.20, 0.21, 0.22, 0.23, b],
                [b, b, b, b, b, b],
                [b, b, b, b, b, b]]
    assert crop.shape == (1, 6, 6) and crop.dtype == np.float32
    np.testing.assert_allclose(crop[0], expected, atol=1e-6)


def test_crop_depth_rounds_halves_up():
    # u = q_u + 0.5 rounds to q_u + 1; v = q_v - 0.4 rounds to q_v: crop[i, j] = frame[i, j + 1]
    transform = _transform([[1, 0, 0.5], [0, 1, -0.4]], [0.0, 0.0, 1000.0], 100.0, 3)
    crop = crop_depth(FRAME, transform)  # no batch dimension
    assert crop.shape == (3, 3)
    np.testing.assert_allclose(crop, [[0.01, 0.02, 0.03], [0.11, 0.12, 0.13], [0.21, 0.22, 0.23]], atol=1e-6)


def test_crop_depth_quarter_turn_moves_known_pixels():
    # crop (q_u, q_v) -> image column q_v, row 2 - q_u: crop[i, j] = frame[2 - j, i] (the frame turned clockwise)
    transform = _transform([[[0, 1, 0], [-1, 0, 2]]], [[0.0, 0.0, 1000.0]], [100.0], 3)
    crop = crop_depth(FRAME[None], transform)[0]
    np.testing.assert_allclose(crop, [[0.20, 0.10, 0.00], [0.21, 0.11, 0.01], [0.22, 0.12, 0.02]], atol=1e-6)
    # the frame's top-left pixel (row 0, column 0) is now top-right
    assert crop[0, 2] == normalize_depth(FRAME[0, 0], 1000.0, 100.0)


def test_crop_depth_batches_use_their_own_transform_and_background():
    frames = np.stack([FRAME, FRAME.copy()])
    frames[1, 1, 2] = 0.0  # a missing reading
    frames[1, 2, 1] = 5000.0  # far behind
    frames[1, 0, 0] = 10.0  # far in front
    # frame 0: identity at centre 1000 mm / half 100; frame 1: identity at centre 1010 mm / half 50
    transform = _transform([[[1, 0, 0], [0, 1, 0]]] * 2, [[0.0, 0.0, 1000.0], [0.0, 0.0, 1010.0]], [100.0, 50.0], 3)
    crops = crop_depth(frames, transform)
    np.testing.assert_allclose(crops[0], [[0.00, 0.01, 0.02], [0.10, 0.11, 0.12], [0.20, 0.21, 0.22]], atol=1e-6)
    # (1000 + 10 r + c - 1010) / 50
    np.testing.assert_allclose(crops[1], [[-1.0, -0.18, -0.16], [0.0, 0.02, 1.0], [0.2, 1.0, 0.24]], atol=1e-6)
    # two leading dimensions
    nested = crop_depth(frames[None], _transform(transform.matrix[None], transform.center_uvd[None],
                                                 transform.depth_half_mm[None], 3))
    np.testing.assert_allclose(nested[0], crops, atol=0)


def test_crop_depth_of_a_one_pixel_frame():
    # a 1 x 1 frame at the centre's depth; S = 3 around it: only the middle pixel is inside
    transform = _transform([[1, 0, -1], [0, 1, -1]], [0.0, 0.0, 700.0], 100.0, 3)
    crop = crop_depth(np.array([[700.0]]), transform)
    np.testing.assert_allclose(crop, [[1, 1, 1], [1, 0, 1], [1, 1, 1]])


def test_crop_of_a_synthetic_frame_through_crop_transform():
    # square camera f = 100; centre (5, 4) px at 1000 mm, cube 40 mm -> 20 * 100 / 1000 = 2 px per half side,
    # S = 4: one image px per crop px, offset 5 - 1.5 = 3.5 and 4 - 1.5 = 2.5: crop (0, 0) -> image (3.5, 2.5),
    # nearest (rounding up) column 4, row 3; so crop[r, c] = frame[r + 3, c + 4]
    camera = Camera(fx=100.0, fy=100.0, cx=6.0, cy=4.0, width_px=12, height_px=8)
    rows, cols = np.mgrid[0:8, 0:12]
    frame = 1000.0 + (cols - 5) + 2.0 * (rows - 4)  # mm
    transform = crop_transform(np.array([5.0, 4.0, 1000.0]), 40.0, camera, 4)
    crop = crop_depth(frame, transform)
    # corners: frame[3, 4] = 997 -> -3 / 20; frame[3, 7] = 1000 -> 0; frame[6, 4] = 1003; frame[6, 7] = 1006
    assert crop[0, 0] == pytest.approx(-0.15) and crop[0, 3] == 0.0
    assert crop[3, 0] == pytest.approx(0.15) and crop[3, 3] == pytest.approx(0.3)
    # the four middle pixels surround the centre: frame[4..5, 5..6] = 1000, 1001, 1002, 1003
    np.testing.assert_allclose(crop[1:3, 1:3], [[0.0, 0.05], [0.1, 0.15]], atol=1e-6)


# -------------------------------------------------------------------------------------- augmentation


def test_augmentation_defaults():
    defaults = Augmentation()
    assert defaults.rotation_deg == 180.0 and defaults.scale == (0.9, 1.1)
    assert defaults.shift_mm == 8.0 and defaults.dropout == 0.0


def test_sample_augmentation_ranges():
    settings = Augmentation(rotation_deg=30.0, scale=(0.8, 1.2), shift_mm=5.0, dropout=0.25)
    params = sample_augmentation(settings, np.random.default_rng(0), 2000)
    limit = np.pi / 6  # 30 degrees
    assert params.rotation_rad.shape == (2000,)
    assert -limit <= params.rotation_rad.min() < -0.95 * limit and 0.95 * limit < params.rotation_rad.max() <= limit
    assert params.scale.shape == (2000,)
    assert 0.8 <= params.scale.min() < 0.82 and 1.18 < params.scale.max() <= 1.2
    assert params.shift_mm.shape == (2000, 3)
    assert (params.shift_mm >= -5).all() and (params.shift_mm <= 5).all()
    assert (params.shift_mm.min(0) < -4.5).all() and (params.shift_mm.max(0) > 4.5).all()
    assert params.dropout.shape == (2000,)
    assert 0 <= params.dropout.min() < 0.01 and 0.24 < params.dropout.max() <= 0.25


def test_zero_ranges_leave_a_crop_unchanged():
    params = sample_augmentation(Augmentation(rotation_deg=0.0, scale=(1.0, 1.0), shift_mm=0.0, dropout=0.0),
                                 np.random.default_rng(1), 3)
    np.testing.assert_array_equal(params.rotation_rad, np.zeros(3))
    np.testing.assert_array_equal(params.scale, np.ones(3))
    np.testing.assert_array_equal(params.shift_mm, np.zeros((3, 3)))
    np.testing.assert_array_equal(params.dropout, np.zeros(3))
    crops = np.linspace(-1, 1, 3 * 16, dtype=np.float32).reshape(3, 4, 4)
    transform = crop_transform(np.array([[60.0, 30.0, 500.0]] * 3), 100.0, WIDE, 4)
    joints = np.array([[[0.0, 3.0, 0.5], [1.5, 1.5, 0.0]]] * 3)
    new_crops, new_joints, new_transform = augment_crops(crops, joints, transform, params, np.random.default_rng(2))
    np.testing.assert_array_equal(new_crops, crops)
    np.testing.assert_allclose(new_joints, joints, atol=1e-12)
    np.testing.assert_allclose(new_transform.matrix, transform.matrix, atol=1e-12)
    np.testing.assert_allclose(new_transform.center_uvd, transform.center_uvd, atol=1e-12)
    np.testing.assert_array_equal(new_transform.depth_half_mm, transform.depth_half_mm)


OLD3 = _transform([[[1, 0, 10], [0, 1, 20]]], [[11.0, 21.0, 600.0]], [50.0], 3)  # middle 1 on (11, 21)
OLD4 = _transform([[[1, 0, 10], [0, 1, 20]]], [[11.5, 21.5, 600.0]], [50.0], 4)  # middle 1.5 on (11.5, 21.5)


def test_augment_quarter_turn():
    # new crop q -> old crop p = middle + R(-pi/2) (q - middle), R(-pi/2) = [[0, 1], [-1, 0]]:
    # p_u = q_v, p_v = 2 - q_u, so new[i, j] = old[2 - j, i]: the content turns clockwise
    old = np.array([[[0.1, 0.2, 0.3], [0.4, 0.5, 1.0], [-1.0, 0.7, 0.8]]], dtype=np.float32)
    joints = np.array([[[2.0, 0.0, 0.3], [1.0, 1.0, -0.5], [0.0, 0.0, 0.0]]])
    new, new_joints, transform = augment_crops(old, joints, OLD3, _params(rotation=(np.pi / 2,)))
    np.testing.assert_allclose(new[0], [[-1.0, 0.4, 0.1], [0.7, 0.5, 0.2], [0.8, 1.0, 0.3]], atol=1e-6)
    assert new.dtype == np.float32
    # q = (2 - p_v, p_u): old top-right (2, 0) goes bottom-right (2, 2), top-left (0, 0) goes top-right (2, 0)
    np.testing.assert_allclose(new_joints, [[[2.0, 2.0, 0.3], [1.0, 1.0, -0.5], [2.0, 0.0, 0.0]]], atol=1e-9)
    # image = old matrix @ p: new matrix [[0, 1, 10], [-1, 0, 2 + 20]]; centre and half cube unchanged
    np.testing.assert_allclose(transform.matrix, [[[0, 1, 10], [-1, 0, 22]]], atol=1e-12)
    np.testing.assert_allclose(transform.center_uvd, [[11.0, 21.0, 600.0]], atol=1e-12)
    np.testing.assert_array_equal(transform.depth_half_mm, [50.0])
    assert transform.size_px == 3


def test_augment_scale_zooms_out_and_renormalizes_depth():
    # scale 2: p = 1.5 + 2 (q - 1.5) = 2 q - 1.5: q = 0 -> -1.5 (rounds to -1: outside), 1 -> 0.5 (rounds up
    # to 1), 2 -> 2.5 (to 3), 3 -> 4.5 (5: outside). Depth: the half cube doubles, values halve.
    old = (0.1 * np.arange(4)[:, None] + 0.02 * np.arange(4)[None, :]).astype(np.float32)[None]
    joints = np.array([[[1.5, 1.5, 0.5], [3.0, 0.0, -0.4]]])
    new, new_joints, transform = augment_crops(old, joints, OLD4, _params(scale=(2.0,)))
    b = 1.0
    expected = [[b, b, b, b], [b, 0.06, 0.08, b], [b, 0.16, 0.18, b], [b, b, b, b]]
    np.testing.assert_allclose(new[0], expected, atol=1e-6)
    # q = (p + 1.5) / 2: (1.5, 1.5) stays, (3, 0) -> (2.25, 0.75); depth halves
    np.testing.assert_allclose(new_joints, [[[1.5, 1.5, 0.25], [2.25, 0.75, -0.2]]], atol=1e-9)
    # new matrix: [[2, 0, 10 - 1.5], [0, 2, 20 - 1.5]]; the centre stays, the half cube is 100 mm
    np.testing.assert_allclose(transform.matrix, [[[2, 0, 8.5], [0, 2, 18.5]]], atol=1e-12)
    np.testing.assert_allclose(transform.center_uvd, [[11.5, 21.5, 600.0]], atol=1e-12)
    np.testing.assert_allclose(transform.depth_half_mm, [100.0])


def test_augment_shift_moves_the_window_and_the_depth():
    # half cube 20 mm over 4 px: 4 / 40 = 0.1 crop px per mm.
    # crop 0: shift (10, -20, 5) mm = (1, -2) px: p = q + (1, -2), new[i, j] = old[i - 2, j + 1] (inside for
    # i >= 2, j <= 2); depth (20 v - 5) / 20 = v - 0.25, a background 1 stays 1, below -1 clamps.
    # crop 1: shift (0, 0, -10) mm: same pixels, depth v + 0.5, above 1 is background.
    old = np.array([[[0.5, -0.8, 1.0, 0.9],
                     [0.0, 0.3, 0.6, -1.0],
                     [0.1, 0.1, 0.1, 0.1],
                     [0.1, 0.1, 0.1, 0.1]],
                    [[0.8, -1.0, 0.2, 1.0],
                     [0.4, 0.6, -0.6, 0.0],
                     [0.5, 0.5, 0.5, 0.5],
                     [-0.2, -0.2, -0.2, -0.2]]], dtype=np.float32)
    before = _transform([[[1, 0, 10], [0, 1, 20]], [[1, 0, 30], [0, 1, 40]]],
                        [[11.5, 21.5, 600.0], [31.5, 41.5, 700.0]], [20.0, 20.0], 4)
    joints = np.array([[[1.5, 1.5, 0.0]], [[0.0, 3.0, 0.6]]])
    params = _params(rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((10.0, -20.0, 5.0), (0.0, 0.0, -10.0)),
                     dropout=(0.0, 0.0))
    new, new_joints, transform = augment_crops(old, joints, before, params)
    b = 1.0
    np.testing.assert_allclose(new[0], [[b, b, b, b],
                                        [b, b, b, b],
                                        [-1.0, b, 0.65, b],
                                        [0.05, 0.35, -1.0, b]], atol=1e-6)
    np.testing.assert_allclose(new[1], [[b, -0.5, 0.7, b],
                                        [0.9, b, -0.1, 0.5],
                                        [b, b, b, b],
                                        [0.3, 0.3, 0.3, 0.3]], atol=1e-6)
    # the window moved by (1, -2) image px and 5 mm (crop 1: -10 mm in depth only)
    np.testing.assert_allclose(transform.matrix, [[[1, 0, 11], [0, 1, 18]], [[1, 0, 30], [0, 1, 40]]], atol=1e-12)
    np.testing.assert_allclose(transform.center_uvd, [[12.5, 19.5, 605.0], [31.5, 41.5, 690.0]], atol=1e-12)
    np.testing.assert_array_equal(transform.depth_half_mm, [20.0, 20.0])
    # joints: (1.5, 1.5, 0) -> (0.5, 3.5, -5 / 20); (0, 3, 0.6) -> (0, 3, (12 + 10) / 20)
    np.testing.assert_allclose(new_joints, [[[0.5, 3.5, -0.25]], [[0.0, 3.0, 1.1]]], atol=1e-9)


def test_augment_a_one_pixel_crop_shifted_away_is_background():
    # S = 1, half cube 10 mm: 1 / 20 px per mm; 20 mm right is one pixel: the old crop is left behind
    old = np.zeros((1, 1, 1), dtype=np.float32)
    transform = _transform([[[1, 0, 5], [0, 1, 5]]], [[5.0, 5.0, 300.0]], [10.0], 1)
    new, _, _ = augment_crops(old, np.zeros((1, 1, 3)), transform, _params(shift=((20.0, 0.0, 0.0),)))
    np.testing.assert_array_equal(new, [[[1.0]]])
    same, _, _ = augment_crops(old, np.zeros((1, 1, 3)), transform, _params(shift=((4.0, 0.0, 0.0),)))
    np.testing.assert_array_equal(same, [[[0.0]]])


def test_augment_accepts_lists():
    new, _, _ = augment_crops([[[0.25, 0.5, 0.75]] * 3], np.zeros((1, 1, 3)), OLD3, _params())
    np.testing.assert_allclose(new, [[[0.25, 0.5, 0.75]] * 3])


def test_dropout_all_and_none():
    crops = np.zeros((2, 8, 8), dtype=np.float32)
    transform = _transform([[[1, 0, 0], [0, 1, 0]]] * 2, [[3.5, 3.5, 500.0]] * 2, [50.0, 50.0], 8)
    joints = np.zeros((2, 1, 3))
    params = _params(rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0, 0, 0), (0, 0, 0)), dropout=(1.0, 0.0))
    new, _, _ = augment_crops(crops, joints, transform, params, np.random.default_rng(0))
    assert (new[0] == 1.0).all() and (new[1] == 0.0).all()
    # every crop with dropout 1
    everything = _params(rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0, 0, 0), (0, 0, 0)), dropout=(1.0, 1.0))
    new, _, _ = augment_crops(crops, joints, transform, everything, np.random.default_rng(0))
    assert (new == 1.0).all()
    # without a generator there is no dropout
    new, _, _ = augment_crops(crops, joints, transform, everything, None)
    assert (new == 0.0).all()
    # and with no dropout the generator is not drawn from
    rng = np.random.default_rng(5)
    nothing = _params(rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0, 0, 0), (0, 0, 0)), dropout=(0.0, 0.0))
    new, _, _ = augment_crops(crops, joints, transform, nothing, rng)
    assert (new == 0.0).all()
    assert rng.random() == np.random.default_rng(5).random()


def test_dropout_fraction_and_per_crop_generators():
    crops = np.full((2, 64, 64), -0.5, dtype=np.float32)
    transform = _transform([[[1, 0, 0], [0, 1, 0]]] * 2, [[31.5, 31.5, 500.0]] * 2, [50.0, 50.0], 64)
    joints = np.zeros((2, 1, 3))
    params = _params(rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0, 0, 0), (0, 0, 0)), dropout=(0.5, 0.1))
    new, _, _ = augment_crops(crops, joints, transform, params, np.random.default_rng(3))
    assert set(np.unique(new)) == {-0.5, 1.0}  # a dropped pixel is background, the rest untouched
    assert 0.45 < (new[0] == 1).mean() < 0.55 and 0.07 < (new[1] == 1).mean() < 0.13
    # one generator per crop: each crop's result does not depend on the rest of the batch
    both, _, _ = augment_crops(crops, joints, transform, params,
                               [np.random.default_rng(10), np.random.default_rng(11)])
    alone = [augment_crops(crops[k:k + 1], joints[k:k + 1], transform[k:k + 1], AugmentParams(
        params.rotation_rad[k:k + 1], params.scale[k:k + 1], params.shift_mm[k:k + 1], params.dropout[k:k + 1]),
        [np.random.default_rng(10 + k)])[0][0] for k in range(2)]
    np.testing.assert_array_equal(both, np.stack(alone))
    assert 0.45 < (both[0] == 1).mean() < 0.55 and 0.07 < (both[1] == 1).mean() < 0.13
