"""Cube crops, their inverse, augmentations and hand centres."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpbench.data.camera import Camera
from hpbench.data.centers import center_from_depth
from hpbench.data.crop import (
    AugmentParams,
    Augmentation,
    augment_crops,
    crop_depth,
    crop_transform,
    normalize_depth,
    sample_augmentation,
)
from hpbench.data.specs import get_dataset

SQUARE = Camera(fx=100.0, fy=100.0, cx=50.0, cy=40.0, width_px=100, height_px=80)


def _scene(camera: Camera, centre_uvd: np.ndarray, radius_mm: float = 60.0, wall_mm: float = 1800.0) -> np.ndarray:
    """Depth of a sphere (the 'hand', centred at centre_uvd) in front of a slanted wall, mm."""
    v, u = np.mgrid[0:camera.height_px, 0:camera.width_px].astype(np.float64)
    a, b = (u - camera.cx) / camera.fx, (v - camera.cy) / abs(camera.fy)
    centre = camera.uvd_to_xyz(centre_uvd) * np.array([1.0, np.sign(camera.fy), 1.0])
    dot = a * centre[0] + b * centre[1] + centre[2]
    norm2 = a * a + b * b + 1
    disc = dot**2 - norm2 * (centre @ centre - radius_mm**2)
    sphere = np.where(disc >= 0, (dot - np.sqrt(np.maximum(disc, 0))) / norm2, np.inf)
    wall = wall_mm + 0.5 * (u - camera.cx)
    return np.minimum(sphere, wall).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    u=st.floats(50, 590), v=st.floats(50, 430), d=st.floats(300, 1500), cube=st.floats(150, 350),
    angle=st.floats(-np.pi, np.pi), scale=st.floats(0.8, 1.25), size=st.sampled_from([32, 88, 128, 176]),
)
def test_crop_inverse_round_trip(u, v, d, cube, angle, scale, size):
    camera = get_dataset("nyu").camera
    transform = crop_transform(np.array([[u, v, d]]), cube, camera, size, rotation_rad=angle, scale=scale)
    rng = np.random.default_rng(0)
    uvd = np.column_stack([rng.uniform(0, 640, 14), rng.uniform(0, 480, 14), rng.uniform(200, 1600, 14)])[None]
    np.testing.assert_allclose(transform.to_image(transform.to_crop(uvd)), uvd, atol=1e-7)
    centre = transform.to_crop(np.array([[[u, v, d]]]))[0, 0]
    np.testing.assert_allclose(centre, [(size - 1) / 2, (size - 1) / 2, 0.0], atol=1e-7)


def test_crop_geometry_pixel_centres_and_scale():
    # 8 crop px over a cube that projects to 8 image px: one image px per crop px
    transform = crop_transform(np.array([[50.0, 40.0, 1000.0]]), 80.0, SQUARE, 8)
    np.testing.assert_allclose(transform.matrix[0], [[1, 0, 46.5], [0, 1, 36.5]])
    joints = transform.to_crop(np.array([[[46.5, 36.5, 1040.0], [50.0, 40.0, 960.0]]]))[0]
    np.testing.assert_allclose(joints, [[0, 0, 1.0], [3.5, 3.5, -1.0]])
    # a cube twice as far covers half the image pixels
    far = crop_transform(np.array([[50.0, 40.0, 2000.0]]), 80.0, SQUARE, 8)
    np.testing.assert_allclose(far.matrix[0, :, :2], np.eye(2) / 2)


def test_crop_samples_the_nearest_image_pixel():
    camera = get_dataset("icvl").camera
    v, u = np.mgrid[0:240, 0:320]
    depth = (400.0 + 0.25 * u + 0.5 * v).astype(np.float32)  # a readable ramp
    transform = crop_transform(np.array([[150.3, 110.7, 420.0]]), 250.0, camera, 64, rotation_rad=0.4)
    crop = crop_depth(depth[None], transform)[0]
    grid = np.stack(np.meshgrid(np.arange(64.0), np.arange(64.0)), -1).reshape(1, -1, 2)
    image = transform.to_image(np.concatenate([grid, np.zeros((1, 64 * 64, 1))], -1))[0]
    cols, rows = np.floor(image[:, 0] + 0.5).astype(int), np.floor(image[:, 1] + 0.5).astype(int)
    inside = (cols >= 0) & (cols < 320) & (rows >= 0) & (rows < 240)
    expected = normalize_depth(depth[rows.clip(0, 239), cols.clip(0, 319)], 420.0, 125.0)
    np.testing.assert_allclose(crop.ravel()[inside], expected[inside], atol=1e-6)
    assert (crop.ravel()[~inside] == 1.0).all()


def test_normalization_background_and_clamps():
    out = normalize_depth(np.array([0.0, 300.0, 500.0, 640.0, 700.0, 100.0]), 500.0, 140.0)
    np.testing.assert_allclose(out, [1.0, -1.0, 0.0, 1.0, 1.0, -1.0])


def test_centre_of_mass_finds_the_nearest_object():
    camera = get_dataset("nyu").camera
    true = np.array([400.0, 200.0, 700.0])
    depth = _scene(camera, true, radius_mm=60)
    depth[300:, :200] = 1200.0  # a body-like block further back
    depth[::7, ::5] = 0.0  # holes
    centre = center_from_depth(depth, camera, cube_mm=280, hand_range_mm=(10, 1500))
    assert np.abs(centre[:2] - true[:2]).max() < 3
    assert 640 < centre[2] < 700  # the visible front half of the sphere
    assert np.isnan(center_from_depth(np.zeros((480, 640)), camera, cube_mm=280)).all()


def test_identity_augmentation_changes_nothing():
    camera = get_dataset("nyu").camera
    centre = np.array([[320.0, 240.0, 800.0]])
    depth = _scene(camera, centre[0])
    transform = crop_transform(centre, 280.0, camera, 64)
    crops = crop_depth(depth[None], transform)
    joints = transform.to_crop(np.array([[[300.0, 250.0, 790.0], [330.0, 200.0, 810.0]]]))
    none = AugmentParams(np.zeros(1), np.ones(1), np.zeros((1, 3)), np.zeros(1))
    new_crops, new_joints, new_transform = augment_crops(crops, joints, transform, none)
    np.testing.assert_array_equal(new_crops, crops)
    np.testing.assert_allclose(new_joints, joints, atol=1e-9)
    np.testing.assert_allclose(new_transform.matrix, transform.matrix, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_augmentation_moves_depth_and_joints_together(seed):
    camera = get_dataset("nyu").camera
    rng = np.random.default_rng(seed)
    true = np.array([300.0 + 40 * seed, 220.0, 750.0])
    depth = _scene(camera, true, radius_mm=70)
    transform = crop_transform(true[None] + [[6.0, -4.0, 10.0]], 280.0, camera, 96)
    crops = crop_depth(depth[None], transform)
    # 'joints' on the visible sphere surface: their depth is the image depth at their pixel
    uv = true[:2] + rng.uniform(-25, 25, (10, 2))
    uvd = np.column_stack([uv, depth[np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)]])[None]
    joints = transform.to_crop(uvd)
    params = sample_augmentation(Augmentation(rotation_deg=180, scale=(0.8, 1.2), shift_mm=15, dropout=0), rng, 1)
    new_crops, new_joints, new_transform = augment_crops(crops, joints, transform, params)

    np.testing.assert_allclose(new_transform.to_image(new_joints), uvd, atol=1e-6)  # same image points
    cols, rows = (np.floor(new_joints[0, :, k] + 0.5).astype(int) for k in (0, 1))
    assert ((cols >= 0) & (cols < 96) & (rows >= 0) & (rows < 96)).all()
    # the augmented crop shows, at each joint, the joint's own depth (sphere slope over a pixel: < 8 mm)
    seen = new_crops[0, rows, cols] * new_transform.depth_half_mm[0] + new_transform.center_uvd[0, 2]
    assert np.abs(seen - uvd[0, :, 2]).max() < 8, seen - uvd[0, :, 2]
    # and it agrees with cropping the image directly with the augmented transform
    direct = crop_depth(depth[None], new_transform)
    hand = direct < 1
    assert (np.abs(direct - new_crops)[hand] < 0.05).mean() > 0.95


def test_dropout_sets_background_pixels():
    crops = np.zeros((2, 32, 32), dtype=np.float32)
    joints = np.full((2, 1, 3), 15.5)
    transform = crop_transform(np.array([[320.0, 240.0, 800.0]] * 2), 280.0, get_dataset("nyu").camera, 32)
    params = AugmentParams(np.zeros(2), np.ones(2), np.zeros((2, 3)), np.array([0.0, 0.3]))
    out, _, _ = augment_crops(crops, joints, transform, params, np.random.default_rng(0))
    assert (out[0] == 0).all() and 0.2 < (out[1] == 1).mean() < 0.4
