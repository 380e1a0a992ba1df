"""Each card's own augmentation and input normalization on cached crops (issue 15).

Expected values are hand computations or design/protocols.md facts: where a blob of foreground lands,
what A2J's standardization gives, which transforms a cached crop can do exactly. Crops are tiny."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hpbench.cards import load_protocol
from hpbench.data.augment import Augmenter, adapt_input, transform_status
from hpbench.data.cache import CropCache, CropDataset
from hpbench.data.camera import Camera
from hpbench.data.crop import CropTransform, crop_transform
from hpbench.protocol import (
    BoxCrop,
    CenterJitter,
    CubeCrop,
    EdgeShift,
    NoiseErasing,
    PixelDropout,
    Rotation,
    Scale,
    Translation,
    VoxelGrid,
)

CAMERA = Camera(fx=588.03, fy=-587.07, cx=320.0, cy=240.0, width_px=640, height_px=480)  # NYU's (A2J's signs)
NYU_MEAN, NYU_STD = -0.66877532422628, 28.329582076876047  # protocols.md section 2, A2J NYU
CUBE = CubeCrop(size_mm=(280.0, 280.0, 280.0), input_px=128)
BOX = BoxCrop(half_mm=(110.0, 110.0), depth_half_mm=150.0, input_px=176, mean=NYU_MEAN, std=NYU_STD)


def _rngs(n: int, seed: int = 0) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, k]) for k in range(n)]


def _unit_transform(n: int, size: int, half_mm: float = 140.0) -> CropTransform:
    """Crops whose pixel (u, v) is image pixel (u + 100, v + 50): one image px per crop px."""
    matrix = np.tile(np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 50.0]]), (n, 1, 1))
    middle = (size - 1) / 2
    centre = np.tile([100.0 + middle, 50.0 + middle, 500.0], (n, 1))
    return CropTransform(matrix, centre, np.full(n, half_mm), size)


def _one_pixel(size: int, u: int, v: int, d: float, background: float = 1.0) -> np.ndarray:
    crops = np.full((1, size, size), background, dtype=np.float32)
    crops[0, v, u] = d
    return crops


# --------------------------------------------------------------------------- hand computations


def test_a_crop_rotation_of_90_degrees_turns_content_and_joints_alike():
    size, middle = 5, 2
    step = Rotation(stage="crop", law="integer", low=90.0, high=90.0)
    crops = _one_pixel(size, 3, 2, 0.25)  # one pixel right of the middle
    joints = np.array([[[3.0, 2.0, 0.25]]])
    transform = _unit_transform(1, size)
    out, moved, new = Augmenter((step,), CUBE)(crops, joints, transform, _rngs(1))
    # a quarter turn counter-clockwise as displayed (rows down): right of the middle -> above it
    assert moved[0, 0] == pytest.approx([middle, middle - 1, 0.25])
    assert out[0, 1, 2] == pytest.approx(0.25)
    assert np.count_nonzero(out != 1.0) == 1  # background stays exactly 1
    # the new transform sends the moved joint to the same image uvd
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))


@pytest.mark.parametrize("step", [
    Rotation(stage="crop", law="normal", mean=90.0, std=0.0),
    Rotation(stage="crop", law="uniform", low=90.0, high=90.0),
    Rotation(stage="crop", law="steps", step=45.0, low=2.0, high=2.0),
    Rotation(stage="crop", law="integer", low=-90.0, high=-90.0, half_turn_p=1.0),  # -90 + 180
])
def test_every_rotation_law_reads_its_parameters(step):
    out, moved, _ = Augmenter((step,), CUBE)(_one_pixel(5, 3, 2, 0.25), np.array([[[3.0, 2.0, 0.25]]]),
                                             _unit_transform(1, 5), _rngs(1))
    assert moved[0, 0] == pytest.approx([2.0, 1.0, 0.25]) and out[0, 1, 2] == pytest.approx(0.25)
    # p = 0: never turned
    _, moved, _ = Augmenter((replace(step, p=0.0),), CUBE)(_one_pixel(5, 3, 2, 0.25), np.array([[[3.0, 2.0, 0.25]]]),
                                                           _unit_transform(1, 5), _rngs(1))
    assert moved[0, 0] == pytest.approx([3.0, 2.0, 0.25])


def test_scale_magnifies_about_the_middle_and_multiplies_foreground_depth():
    # TriHorn-Net's scale (protocols.md: bilinear about the centre, foreground x s, exact-1 kept), s = 2
    size = 5
    step = Scale(stage="crop", low=2.0, high=2.0, p=1.0)
    crops = _one_pixel(size, 3, 2, 0.25)
    joints = np.array([[[3.0, 2.0, 0.25]]])
    transform = _unit_transform(1, size)
    out, moved, new = Augmenter((step,), CUBE)(crops, joints, transform, _rngs(1))
    assert moved[0, 0] == pytest.approx([4.0, 2.0, 0.5])  # offset (1, 0) -> (2, 0); d 0.25 x 2
    assert out[0, 2, 4] == pytest.approx(0.5)  # new (4, 2) samples old (3, 2) exactly
    assert out[0, 0, 0] == 1.0 and out[0, 4, 0] == 1.0  # background kept exactly
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))
    # p = 0: nothing moves
    out, moved, _ = Augmenter((replace(step, p=0.0),), CUBE)(crops, joints, transform, _rngs(1))
    assert np.array_equal(out, crops) and moved == pytest.approx(joints)


def test_centre_jitter_moves_the_crop_centre_by_the_clipped_draw():
    # sigma huge, clip (2 px, 0 px, 10 mm): every draw is clipped to +-2 px in u and +-10 mm in d
    step = CenterJitter(sigma=(1e6, 1e6, 1e6), clip=(2.0, 0.0, 10.0))
    size, n = 9, 6
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    crops[:, 4, 4] = 0.0
    joints = np.tile([[4.0, 4.0, 0.0]], (n, 1, 1))
    transform = crop_transform(np.tile([320.0, 240.0, 500.0], (n, 1)), 280.0, CAMERA, size)
    out, moved, new = Augmenter((step,), CUBE)(crops, joints, transform, _rngs(n))
    shift = new.center_uvd - transform.center_uvd
    assert np.abs(shift[:, 0]) == pytest.approx(np.full(n, 2.0)) and shift[:, 1] == pytest.approx(np.zeros(n))
    assert np.abs(shift[:, 2]) == pytest.approx(np.full(n, 10.0))
    # the joint's normalized depth: (d - (c + dd)) / 140 mm, dd = +-10 mm
    assert moved[:, 0, 2] == pytest.approx(-shift[:, 2] / 140.0)
    # a crop at the jittered centre depth spans cube x f / (500 mm + dd): image px per crop px x 500 / (500 + dd)
    assert new.matrix[:, 0, 0] / transform.matrix[:, 0, 0] == pytest.approx(500.0 / (500.0 + shift[:, 2]))
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))
    # the foreground pixel keeps its image position: where the joint now is, its depth is the joint's
    for k in range(n):
        u, v = np.round(moved[k, 0, :2]).astype(int)
        assert out[k, v, u] == pytest.approx(moved[k, 0, 2], abs=1e-6)


def test_edge_shifts_of_equal_edges_shift_the_content():
    # all four edges +3 image px (one image px per crop px): the box moves 3 px right and down
    step = EdgeShift(low=3, high=3)
    size = 8
    crops = _one_pixel(size, 5, 4, 0.2)
    joints = np.array([[[5.0, 4.0, 0.2]]])
    transform = _unit_transform(1, size, half_mm=150.0)
    box = BoxCrop(half_mm=(110.0, 110.0), depth_half_mm=150.0, input_px=8, mean=0.0, std=1.0)
    out, moved, new = Augmenter((step,), box)(crops, joints, transform, _rngs(1))
    assert moved[0, 0] == pytest.approx([2.0, 1.0, 0.2])
    assert out[0, 1, 2] == pytest.approx(0.2 * 150.0)  # mean 0, std 1: the input is the offset in mm
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))


def test_pixel_dropout_drops_only_foreground_and_at_most_the_fraction():
    size, n = 10, 8
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    crops[:, 2:8, 2:8] = 0.3  # 36 foreground pixels
    joints, transform = np.zeros((n, 1, 3)), _unit_transform(n, size)
    out, _, _ = Augmenter((PixelDropout(p=1.0, max_fraction=0.5),), CUBE)(crops, joints, transform, _rngs(n))
    dropped = (crops != 1.0) & (out == 1.0)
    assert np.all(out[crops == 1.0] == 1.0) and np.all((out == crops) | dropped)
    assert dropped.sum(axis=(1, 2)).max() <= 18 and dropped.sum() > 0
    out, _, _ = Augmenter((PixelDropout(p=0.0, max_fraction=0.5),), CUBE)(crops, joints, transform, _rngs(n))
    assert np.array_equal(out, crops)


def test_noise_erasing_adds_noise_to_one_rectangle_of_the_drawn_area():
    # area 0.25 of an 8 x 8 crop, aspect 1: a 4 x 4 rectangle of the standardized input
    step = NoiseErasing(p=1.0, area=(0.25, 0.25), aspect=(1.0, 1.0))
    size, n = 8, 4
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    joints, transform = np.zeros((n, 1, 3)), _unit_transform(n, size, half_mm=150.0)
    clean = adapt_input(crops, BOX)
    out, _, _ = Augmenter((step,), BOX)(crops, joints, transform, _rngs(n))
    assert ((out != clean).sum(axis=(1, 2)) == 16).all()
    out, _, _ = Augmenter((replace(step, p=0.0),), BOX)(crops, joints, transform, _rngs(n))
    assert np.array_equal(out, clean)


def test_a2j_standardization_is_clipped_offsets_in_mm():
    # protocols.md section 2: |d - c_d| >= 150 mm -> c_d; x = (d - c_d) mm; (x - MEAN) / STD
    crops = np.array([[[0.1, 1.0], [-1.0, -0.5]]], dtype=np.float32)  # cache: d normalized by 150 mm
    out = adapt_input(crops, BOX)
    assert out[0, 0, 0] == pytest.approx((15.0 - NYU_MEAN) / NYU_STD, rel=1e-5)
    assert out[0, 0, 1] == pytest.approx((0.0 - NYU_MEAN) / NYU_STD, rel=1e-5)  # background: offset 0
    assert out[0, 1, 0] == pytest.approx((0.0 - NYU_MEAN) / NYU_STD, rel=1e-5)  # nearer than the box
    assert out[0, 1, 1] == pytest.approx((-75.0 - NYU_MEAN) / NYU_STD, rel=1e-5)
    assert np.array_equal(adapt_input(crops, CUBE), crops) and np.array_equal(adapt_input(crops, None), crops)


def test_a2j_scale_and_rotation_warp_fills_with_standardized_zero_and_scales_offsets():
    # one warp after standardization, border 0; s scales the depth offsets (protocols.md section 2)
    steps = (Scale(stage="crop", low=0.5, high=0.5), Rotation(stage="crop", law="integer", low=0.0, high=0.0))
    size = 9
    crops = np.full((1, size, size), 1.0, dtype=np.float32)
    crops[0, 4, 4] = 0.4  # 60 mm at the middle
    joints = np.array([[[4.0, 4.0, 0.4]]])
    out, moved, _ = Augmenter(steps, BOX)(crops, joints, _unit_transform(1, size, 150.0), _rngs(1))
    assert out[0, 4, 4] == pytest.approx((30.0 - NYU_MEAN) / NYU_STD, rel=1e-5)  # 60 mm x 0.5
    assert moved[0, 0] == pytest.approx([4.0, 4.0, 0.2])  # d: (d - c_d) s / 150 mm
    # zoomed out by 2: the outer ring samples beyond the crop -> the border, standardized 0
    assert out[0, 0, 0] == 0.0 and out[0, 8, 8] == 0.0
    assert out[0, 3, 2] == pytest.approx((0.0 - NYU_MEAN) / NYU_STD, rel=1e-5)  # background inside: offset 0


def test_an_integer_voxel_translation_shifts_pixels_and_depth_layers():
    # V2V: integer U{-4..4} voxels per axis; forced to 2 here. 16 px crop, 16 voxels: one px a voxel column
    grid = VoxelGrid(cube_mm=200.0, grid=16, missing_depth_mm=600.0, input_px=16)
    step = Translation(stage="voxels", low=2.0, high=2.0, units="voxels", integer=True)
    crops = _one_pixel(16, 3, 4, -0.5)  # layer floor((-0.5 + 1) 16 / 2) = 4
    joints = np.array([[[3.0, 4.0, -0.5]]])
    out, moved, _ = Augmenter((step,), grid)(crops, joints, _unit_transform(1, 16, 100.0), _rngs(1))
    assert moved[0, 0] == pytest.approx([5.0, 6.0, -0.25])  # + 2 voxels: 2 px, 2 x 2/16 in d
    assert out[0, 6, 5] == pytest.approx(-0.25) and np.count_nonzero(out != 1.0) == 1


# --------------------------------------------------------------------------- the cards' protocols


def _blobs(n: int, size: int, d: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n crops, each background with a 9 x 9 blob of depth d around an integer joint near the middle."""
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    joints = np.zeros((n, 1, 3))
    for k in range(n):
        u, v = rng.integers(size // 2 - 5, size // 2 + 5, size=2)
        crops[k, v - 4:v + 5, u - 4:u + 5] = d
        joints[k, 0] = (u, v, d)
    return crops, joints


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("name, key", [("trinet", "icvl"), ("trinet", "nyu"), ("ours", "icvl")])
def test_trihorn_protocol_moves_blobs_where_the_targets_say(name, key):
    protocol = load_protocol(name, key)
    size, n = 48, 12
    crops, joints = _blobs(n, size, 0.0, np.random.default_rng(3))
    transform = crop_transform(np.tile([320.0, 240.0, 450.0], (n, 1)), 280.0, CAMERA, size)
    out, moved, new = Augmenter(protocol.augment, protocol.crop)(crops, joints, transform, _rngs(n, 7))
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))
    for k in range(n):
        blob = out[k] < 0.5  # background 1, blob |d| <= 0.07 x 1.2: halfway between
        assert np.abs(_centroid(blob) - moved[k, 0, :2]).max() < 1.0
        u, v = np.round(moved[k, 0, :2]).astype(int)
        assert np.median(out[k, v - 1:v + 2, u - 1:u + 2]) == pytest.approx(moved[k, 0, 2], abs=1e-5)


@pytest.mark.parametrize("key", ["nyu", "icvl"])
def test_a2j_protocol_moves_blobs_where_the_targets_say(key):
    protocol = load_protocol("a2j", key)
    crop = protocol.crop
    steps = tuple(step for step in protocol.augment if not isinstance(step, NoiseErasing))  # noise hides blobs
    size, n = 48, 12
    crops, joints = _blobs(n, size, 0.5, np.random.default_rng(4))
    transform = crop_transform(np.tile([320.0, 240.0, 450.0], (n, 1)), 2 * crop.half_mm[0], CAMERA, size,
                               depth_mm=2 * crop.depth_half_mm)
    out, moved, new = Augmenter(steps, crop)(crops, joints, transform, _rngs(n, 8))
    assert new.to_image(moved) == pytest.approx(transform.to_image(joints))
    background = (0.0 - crop.mean) / crop.std
    for k in range(n):
        blob_value = (moved[k, 0, 2] * crop.depth_half_mm - crop.mean) / crop.std  # (d - c_d) s, standardized
        blob = np.abs(out[k] - blob_value) < np.abs(out[k] - background)
        assert np.abs(_centroid(blob) - moved[k, 0, :2]).max() < 1.0
        u, v = np.round(moved[k, 0, :2]).astype(int)
        assert out[k, v, u] == pytest.approx(blob_value, rel=1e-4)
    assert 0.25 <= moved[:, 0, 2].min() and moved[:, 0, 2].max() <= 0.75  # 0.5 x s, s in [0.5, 1.5]


def test_each_transform_says_what_a_cached_crop_does_with_it():
    def verdicts(name, key):
        protocol = load_protocol(name, key)
        return [transform_status(step, protocol.crop).split(" (")[0] for step in protocol.augment]

    # TriHorn-Net: jitter and image rotation happen before cropping; scale and dropout on the crop
    assert verdicts("trinet", "nyu") == ["approximated", "approximated", "applied", "applied"]
    # A2J: edge shifts before cropping; depth scale, crop rotation and noise erasing on the crop
    assert verdicts("a2j", "nyu") == ["approximated", "applied", "applied", "applied"]
    # V2V-PoseNet: voxel scale and rotation happen on points before rounding; the integer shift is a pixel
    # and layer shift, but the original's 96^3 frame holds 4 voxels of margin beyond the cube
    assert verdicts("v2v", "icvl") == ["not applied", "not applied", "approximated"]
    # HandFoldingNet: points exist only inside the model
    assert set(verdicts("handfold", "icvl")) == {"not applied"}


# --------------------------------------------------------------------------- served to training and testing


def _cache(n: int, size: int, crops: np.ndarray) -> CropCache:
    transform = _unit_transform(n, size, 150.0)
    joints = np.tile([[[size / 2, size / 2, 0.1]]], (n, 1, 1))
    return CropCache(Path("memory.npy"), "synth-nyu", "test", crops.astype(np.float16), transform,
                     transform.to_image(joints), joints, np.zeros(n, dtype=int), tuple(f"f{k}.png" for k in range(n)))


def test_the_dataset_serves_the_protocols_input_and_its_augmentation():
    size, n = 16, 3
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    crops[:, 6:10, 6:10] = 0.25  # float16 (the cache) holds it exactly
    cache = _cache(n, size, crops)
    plain = CropDataset(cache).__getitems__([0, 1])
    assert np.array_equal(plain[0]["depth"][0].numpy(), crops[0])  # today's input without a crop
    boxed = CropDataset(cache, crop=BOX).__getitems__([0, 1])
    assert boxed[1]["depth"][0].numpy() == pytest.approx(adapt_input(crops[1:2], BOX)[0])
    protocol = load_protocol("a2j", "nyu")
    augmenter = Augmenter(protocol.augment, protocol.crop)
    dataset = CropDataset(cache, augmentation=augmenter, seed=2)
    first, again = dataset.__getitems__([2, 0]), dataset.__getitems__([0])
    assert torch.equal(first[1]["depth"], again[0]["depth"])  # drawn from (seed, epoch, frame)
    assert dataset.crop == protocol.crop
    copy = CropDataset(cache, augmentation=pickle.loads(pickle.dumps(augmenter)), seed=2)  # as in loader workers
    assert torch.equal(copy.__getitems__([0])[0]["depth"], again[0]["depth"])
    with pytest.raises(ValueError, match="differs"):
        CropDataset(cache, augmentation=augmenter, crop=CUBE)


class _Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        self.inputs.append(depth.clone())
        return torch.zeros(depth.shape[0], 1, 3)


def test_evaluation_feeds_the_protocols_input(tmp_path):
    from hpbench.data.specs import get_dataset
    from hpbench.evaluate import evaluate

    size, n = 16, 2
    crops = np.full((n, size, size), 1.0, dtype=np.float32)
    crops[:, 5:9, 5:9] = -0.375
    cache = _cache(n, size, crops)
    for crop, expected in ((None, crops), (BOX, adapt_input(crops, BOX))):
        model = _Recorder()
        evaluate(model, cache, dataset=get_dataset("synth-nyu"), method="recorder", crop=crop,
                 predictions_path=tmp_path / "p.txt", batch_size=n)
        assert torch.cat(model.inputs)[:, 0].numpy() == pytest.approx(expected, abs=1e-6)
