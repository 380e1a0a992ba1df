"""Every card's data and training protocol against the facts of design/protocols.md.

The expected values are written here from that sheet (the original repositories' code, with file and
line sources there), not read back from the cards.
"""

from __future__ import annotations

import pytest

from hpbench.cards import CardError, card_names, load_card, load_protocol, parse_card
from hpbench.protocol import (
    BoxCrop, CenterJitter, CubeCrop, EdgeShift, PixelDropout, PointCloud, PointPermutation, Rotation,
    Scale, Translation, VoxelGrid,
)

TRIHORN_LIKE = ("trinet", "ours")


def _kinds(protocol) -> list[str]:
    return [step.kind for step in protocol.augment]


def test_every_card_has_a_protocol_for_each_dataset_its_original_supports():
    supported = {"trinet": {"icvl", "nyu", "msra"}, "ours": {"icvl", "nyu"}, "a2j": {"icvl", "nyu"},
                 "v2v": {"icvl", "nyu", "msra"}, "handfold": {"icvl", "nyu", "msra"}}
    follows = {"ours-conv": "ours", "ours-mhsa": "ours", "ours-noattn": "ours", "ours-split": "ours",
               "a2j@resnet18": "a2j", "meanpose": "trinet", "tinycnn": "trinet"}
    assert set(card_names()) == set(supported) | set(follows)
    for name, datasets in supported.items():
        assert set(load_card(name).protocol) == datasets, name
    for name, source in follows.items():
        assert load_card(name).protocols_from == source
        for dataset in supported[source]:
            assert load_protocol(name, dataset) == load_protocol(source, dataset)


def test_borrowed_protocols_say_so():
    # the originals without code for a dataset: A2J on ICVL, HandFoldingNet on NYU; ours has no code at all
    for name, dataset in [("a2j", "icvl"), ("handfold", "nyu"), ("ours", "icvl"), ("ours", "nyu")]:
        assert load_protocol(name, dataset).borrowed, (name, dataset)
    for name, dataset in [("trinet", "nyu"), ("a2j", "nyu"), ("v2v", "icvl"), ("handfold", "icvl")]:
        assert not load_protocol(name, dataset).borrowed, (name, dataset)


@pytest.mark.parametrize("name", TRIHORN_LIKE)
def test_trihorn_crop_centres_frames_augmentation(name):
    icvl, nyu = load_protocol(name, "icvl"), load_protocol(name, "nyu")
    for protocol in (icvl, nyu):
        assert protocol.crop == CubeCrop(size_mm=(280.0, 280.0, 280.0), input_px=128, keep_aspect=True,
                                         background=1.0, test_shrink_from=protocol.crop.test_shrink_from,
                                         test_shrink=protocol.crop.test_shrink)
        assert _kinds(protocol) == ["center_jitter", "rotation", "scale", "pixel_dropout"]
        rotation, scale, dropout = protocol.augment[1:]
        # angle = 90 * randn - 45 degrees, every sample, on the full image before cropping
        assert rotation == Rotation(stage="image", law="normal", mean=-45.0, std=90.0, p=1.0)
        assert scale == Scale(stage="crop", low=0.8, high=1.2, p=0.7, depth=True)
        assert dropout == PixelDropout(p=0.7, max_fraction=0.15)
        assert protocol.selection == "best-test"
    assert icvl.crop.test_shrink_from is None and icvl.crop.test_shrink == 1.0
    assert nyu.crop.test_shrink_from == 2440 and nyu.crop.test_shrink == pytest.approx(5 / 6, abs=1e-12)
    assert icvl.augment[0] == CenterJitter(sigma=(6.0, 6.0, 6.0), clip=(8.0, 8.0, 8.0))
    assert nyu.augment[0] == CenterJitter(sigma=(6.0, 6.0, 6.0), clip=(1.0, 1.0, 1.0))
    assert icvl.frames.train == "list" and icvl.frames.train_list == "icvl_train_list.txt"
    assert nyu.frames.train == "all" and nyu.frames.folds == 0
    assert (icvl.centers.train, icvl.centers.test, icvl.centers.com_range_mm) == ("com", "com", (0.0, 500.0))
    assert (nyu.centers.train, nyu.centers.test, nyu.centers.format) == ("refined", "refined", "uvd")
    assert (nyu.centers.train_file, nyu.centers.test_file) == ("center_train_refined.txt", "center_test_refined.txt")


def test_trihorn_msra():
    msra = load_protocol("trinet", "msra")
    assert msra.frames.folds == 9 and msra.epochs == 60
    assert dict(msra.crop.per_subject_mm) == {"P0": 200, "P1": 200, "P2": 200, "P3": 180, "P4": 180, "P5": 180,
                                              "P6": 170, "P7": 160, "P8": 150}
    assert msra.augment[0].clip == (6.0, 6.0, 6.0)
    assert msra.centers.com_range_mm == (0.0, 3000.0)


def test_trihorn_and_ours_losses_differ_as_eq13_says():
    (trihorn,) = load_protocol("trinet", "nyu").loss.terms
    assert (trihorn.function, trihorn.weight) == ("l1", 1.0) and "3 x masked joints" in trihorn.reduction
    uv, d = load_protocol("ours", "nyu").loss.terms
    assert (uv.function, uv.weight, d.function, d.weight) == ("l1", 1.0, "l1", 1.0)
    assert "2J" in uv.reduction and "over J" in d.reduction and "mm" in d.units
    assert "twice" in load_protocol("ours", "nyu").differences  # the weighting against TriHorn's one mean


def test_a2j():
    nyu, icvl = load_protocol("a2j", "nyu"), load_protocol("a2j", "icvl")
    assert nyu.crop == BoxCrop(half_mm=(110.0, 110.0), depth_half_mm=150.0, input_px=176,
                               mean=-0.66877532422628, std=28.329582076876047)
    assert icvl.crop == BoxCrop(half_mm=(95.0, 95.0), depth_half_mm=150.0, input_px=176,
                                mean=4.827061368455762, std=16.29524411165314)
    for protocol in (nyu, icvl):
        shift, scale, rotation, erasing = protocol.augment
        assert shift == EdgeShift(low=-5, high=4)
        assert (scale.low, scale.high, scale.depth) == (0.5, 1.5, True)
        assert rotation == Rotation(stage="crop", law="integer", low=-180.0, high=179.0)
        assert (erasing.p, erasing.area, erasing.sigma) == (0.5, (0.02, 0.4), 1.0)
        assert erasing.aspect == pytest.approx((0.3, 1 / 0.3), rel=1e-12)
        anchor, uv, d = protocol.loss.terms
        assert (anchor.function, anchor.beta, anchor.weight) == ("smooth_l1", 1.0, 1.0)
        assert (uv.function, uv.beta, uv.weight) == ("smooth_l1", 1.0, 3 * 0.5)  # 3 x 0.5 SmoothL1
        assert (d.function, d.weight) == ("l1", 3.0) and "mm" in d.units
        assert protocol.selection == "best-test"
    assert nyu.frames.train == "all" and icvl.frames.train == "a2j-valid"
    assert nyu.centers.train == nyu.centers.test == "refined"


@pytest.mark.parametrize(("dataset", "cube", "missing"), [("icvl", 200.0, 600.0), ("nyu", 250.0, 1200.0),
                                                         ("msra", 200.0, 700.0)])
def test_v2v(dataset, cube, missing):
    protocol = load_protocol("v2v", dataset)
    assert protocol.crop == VoxelGrid(cube_mm=cube, grid=88, missing_depth_mm=missing, input_px=88)
    assert protocol.centers.format == "xyz" and protocol.centers.train == protocol.centers.test == "refined"
    assert protocol.frames.train == "valid-centers"
    scale, rotation, translation = protocol.augment
    assert (scale.stage, scale.low, scale.high, scale.p) == ("voxels", 0.8, 1.2, 1.0)
    assert (rotation.law, rotation.low, rotation.high) == ("uniform", -40.0, 40.0)
    assert translation == Translation(stage="voxels", low=-4.0, high=4.0, units="voxels", integer=True)
    (heatmap,) = protocol.loss.terms
    assert heatmap.function == "mse" and "1.7" in heatmap.target
    assert protocol.selection == "final"


def test_handfold():
    icvl, msra = load_protocol("handfold", "icvl"), load_protocol("handfold", "msra")
    assert icvl.crop == PointCloud(points=1024, margin_px=20.0, margin_mm=20.0, palm_margin_px=30.0,
                                   palm_margin_mm=30.0, extent_scale=1.2, normal_neighbours=30, input_px=128)
    assert icvl.frames.train == "dated-folders"
    assert (icvl.centers.train, icvl.centers.test, icvl.centers.test_file) == ("joints", "predicted",
                                                                               "saved_fold1.txt")
    permutation, rotation, translation, scale = icvl.augment
    assert permutation == PointPermutation()
    assert (rotation.law, rotation.step, rotation.low, rotation.high, rotation.half_turn_p) == ("steps", 7.5, -9, 9,
                                                                                               0.5)
    assert (translation.low, translation.high, translation.units) == (-10.0, 10.0, "mm")
    assert (scale.low, scale.high) == (0.9, 1.1)
    assert [term.weight for term in icvl.loss.terms] == [2.0, 1.0, 1.0]
    assert {(term.function, term.beta) for term in icvl.loss.terms} == {("smooth_l1", 0.01)}
    assert _kinds(msra) == ["point_permutation", "rotation"] and msra.epochs == 80 and msra.frames.folds == 9


def test_protocol_lookups_fail_in_one_line():
    with pytest.raises(CardError, match=r"model 'ours-split' has no protocol for 'msra' \(through zoo/ours.toml\)"):
        load_protocol("ours-split", "msra")


_MINIMAL = """name = "x"
summary = "s"
paper = "none"
source = "hpbench"
input_shape = [1, 8, 8]
[declared.nyu]
params = 1
thop_macs = 1
[recipe]
optimizer = "adam"
lr = 1e-3
batch_size = 2
epochs = 1
schedule = { kind = "constant" }
augment = false
mixed_precision = false
"""

_PROTOCOL = """[protocol.nyu]
origin = "o"
source = "s"
selection = "final"
frames = { train = "all" }
centers = { train = "com", test = "com" }
crop = { kind = "cube", size_mm = [1.0, 1.0, 1.0], input_px = 8 }
loss = { terms = [{ target = "u", function = "l1", weight = 1.0, units = "px", reduction = "mean" }] }
"""


@pytest.mark.parametrize(("change", "message"), [
    (("input_shape", 'protocols_from = "trinet"\ninput_shape'), "not both"),
    (('crop = { kind = "cube"', 'crop = { kind = "sphere"'), r'\[protocol.nyu.crop\] kind: expected one of "cube"'),
    (("selection = \"final\"", "selection = \"best\""), r'selection: expected one of "final", "best-test"'),
    (('centers = { train = "com"', 'centers = { train = "refined"'), r"train_file names the file exactly when"),
    (("loss = {", 'augment = [{ kind = "pixel_dropout", p = 1.5, max_fraction = 0.1 }]\nloss = {'),
     r"augment: expected a list, each a table"),
])
def test_malformed_protocols_are_refused_naming_the_field(change, message):
    old, new = change
    text = (_MINIMAL + _PROTOCOL).replace(old, new, 1)
    with pytest.raises(CardError, match=message):
        parse_card(text, "x")
    assert parse_card(_MINIMAL + _PROTOCOL, "x").protocol["nyu"].crop.input_px == 8


def test_the_readme_protocol_table_is_the_generated_one():
    from pathlib import Path

    from hpbench.cards import protocol_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- protocol-table -->\n")[1].split("<!-- /protocol-table -->")[0]
    assert shown == protocol_table(), "regenerate the README table with hpbench.cards.protocol_table()"


def test_each_protocol_crops_at_its_models_input_size():
    for name in card_names():
        card = load_card(name)
        for dataset in ("icvl", "nyu", "msra"):
            try:
                protocol = load_protocol(name, dataset)
            except CardError:
                continue
            assert protocol.crop.input_px == card.input_shape[-1], (name, dataset)


@pytest.mark.parametrize(("name", "dataset", "expected"), [
    # (size px, lateral edge mm, depth extent mm or None, test shrink from, factor): design/protocols.md
    ("trinet", "nyu", (128, 280.0, None, 2440, 5 / 6)),
    ("ours-noattn", "icvl", (128, 280.0, None, None, 1.0)),
    ("a2j", "nyu", (176, 220.0, 300.0, None, 1.0)),   # +-110 mm, depth +-150 mm
    ("a2j", "icvl", (176, 190.0, 300.0, None, 1.0)),  # +-95 mm
    ("v2v", "nyu", (88, 250.0, None, None, 1.0)),
    ("v2v", "icvl", (88, 200.0, None, None, 1.0)),
])
def test_crop_settings_follow_the_protocol(name, dataset, expected):
    from hpbench.data.specs import get_dataset
    from hpbench.evaluate import crop_settings

    crop = crop_settings(name, get_dataset(dataset))
    got = (crop.size_px, crop.cube_mm, crop.depth_mm, crop.test_shrink_from, crop.test_shrink)
    assert got[:4] == expected[:4] and got[4] == pytest.approx(expected[4], rel=1e-12)
    boxes = crop.boxes_mm("test", 2442, 280.0)
    assert boxes[0].tolist() == [expected[1], expected[2] or expected[1]]
    shrunk = expected[4] if expected[3] is not None and expected[3] <= 2441 else 1.0
    assert boxes[-1] == pytest.approx(boxes[0] * shrunk)
    assert crop.boxes_mm("train", 3000, 280.0)[-1].tolist() == boxes[0].tolist()  # never in training


@pytest.mark.evaldata
@pytest.mark.parametrize("name", ["trinet", "ours", "a2j", "v2v", "handfold"])
def test_the_real_nyu_frame_under_each_protocol_holds_every_joint(eval_dir, name):
    """Line 1 of TriHorn-Net's refined NYU test centres crops the real frame 1 so that all 14 labelled
    joints fall inside, and the inverse transform gives the labels back (1 px / 1 mm); in V2V's voxel
    grid each joint lies in the occupied region (within 2 voxels laterally, at or behind the surface)."""
    import numpy as np
    import torch

    from hpbench.data.centers import read_center_file
    from hpbench.data.crop import crop_depth, crop_transform
    from hpbench.data.formats import load_png_rgb
    from hpbench.data.specs import get_dataset
    from hpbench.evaluate import crop_settings

    spec = get_dataset("nyu")
    depth = load_png_rgb(eval_dir / "frames/nyu/depth_1_0000001.png", spec.camera)
    with open(eval_dir / "groundtruth/nyu/nyu_test_groundtruth_label.txt") as handle:
        labels = np.array(handle.readline().split(), dtype=np.float64).reshape(14, 3)
    centres, valid = read_center_file(eval_dir / "centers/nyu/center_test_refined.txt", spec.camera, coords="uvd")
    assert valid[0] and centres[0].tolist() == pytest.approx([217.1, 249.9, 762.0], abs=0.05)
    crop = crop_settings(name, spec)
    box = crop.boxes_mm("test", 1, spec.cube_mm)[0]
    transform = crop_transform(centres[:1], box[0], spec.camera, crop.size_px, depth_mm=box[1])
    joints = transform.to_crop(labels[None])[0]  # (14, 3): u, v crop px; d normalized
    inside = (joints[:, :2] >= -0.5).all(1) & (joints[:, :2] <= crop.size_px - 0.5).all(1) & (abs(joints[:, 2]) < 1)
    assert inside.all(), (name, joints[~inside])
    back = transform.to_image(joints[None])[0]
    assert np.abs(back[:, :2] - labels[:, :2]).max() < 1.0 and np.abs(back[:, 2] - labels[:, 2]).max() < 1.0
    if name == "v2v":
        from hpbench.models.v2v import voxelize

        image = crop_depth(depth[None], transform)[0]
        grid = 88
        occupied = voxelize(torch.from_numpy(image[None, None]).float(), grid)[0, 0].numpy()  # (z, y, x)
        cells = np.argwhere(occupied > 0)
        assert len(cells) > 100
        voxel = np.stack([(joints[:, 2] + 1) * grid / 2, (joints[:, 1] + 0.5) * grid / crop.size_px,
                          (joints[:, 0] + 0.5) * grid / crop.size_px], axis=1)
        # Joints lie inside the hand, under its visible surface (the palm about 23 mm, 8 voxels, behind it), so
        # "inside the occupied region" means: an occupied voxel within 2 voxels of the joint laterally whose
        # surface is in front of the joint or at most 2 voxels behind it.
        lateral = np.abs(cells[None, :, 1:] + 0.5 - voxel[:, None, 1:]).max(-1) <= 2.0
        not_behind = cells[None, :, 0] + 0.5 <= voxel[:, None, 0] + 2.0
        assert (lateral & not_behind).any(1).all(), voxel
