"""Dataset readers: the real NYU frame, ICVL/NYU/MSRA layouts, and clear errors on bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hpbench.data.centers import center_from_depth, read_center_file
from hpbench.data.crop import crop_depth, crop_transform
from hpbench.data.formats import DatasetError, formats, load_png16, load_png_rgb, open_split, save_png16, save_png_rgb
from hpbench.data.specs import get_dataset

NYU_FRAME = "frames/nyu/depth_1_0000001.png"
NYU_LABELS = "groundtruth/nyu/nyu_test_groundtruth_label.txt"


def _first_label(eval_dir: Path, relative: str, joints: int, row: int = 0) -> np.ndarray:
    with open(eval_dir / relative) as handle:
        for number, line in enumerate(handle):
            if number == row:
                return np.array(line.split(), dtype=np.float64).reshape(joints, 3)
    raise AssertionError("label row not found")


# --------------------------------------------------------------------------- the real NYU frame


@pytest.mark.evaldata
def test_real_nyu_frame_decodes_crops_and_inverts(eval_dir):
    spec = get_dataset("nyu")
    depth = load_png_rgb(eval_dir / NYU_FRAME, spec.camera)
    labels = _first_label(eval_dir, NYU_LABELS, spec.num_joints)
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    assert 600 < depth[depth < 1500].min() < 800 and np.isclose(np.median(depth), 2001)  # hand, background

    size = 128
    cube = spec.cube_mm
    assert cube == 280.0
    centre = center_from_depth(depth, spec.camera, cube_mm=cube, hand_range_mm=spec.hand_range_mm)
    transform = crop_transform(centre[None], cube, spec.camera, size)
    crop = crop_depth(depth[None], transform)[0]
    joints = transform.to_crop(labels[None])[0]

    # every joint inside the crop, in image and depth
    assert (joints[:, :2] >= 0).all() and (joints[:, :2] <= size - 1).all(), joints
    assert (np.abs(joints[:, 2]) < 1).all()
    assert np.ptp(joints[:, 0]) > 30 and np.ptp(joints[:, 1]) > 30  # spread over the crop, not collapsed

    # the crop's depth at each joint pixel is the hand surface, within 40 mm of the label
    cols, rows = (np.floor(joints[:, k] + 0.5).astype(int) for k in (0, 1))
    surface_mm = crop[rows, cols] * transform.depth_half_mm[0] + transform.center_uvd[0, 2]
    assert np.abs(surface_mm - labels[:, 2]).max() < 40, surface_mm - labels[:, 2]

    # the crop pixel samples the image pixel its inverse names
    back = transform.to_image(np.column_stack([cols, rows, crop[rows, cols]])[None].astype(np.float64))[0]
    image_mm = depth[np.floor(back[:, 1] + 0.5).astype(int), np.floor(back[:, 0] + 0.5).astype(int)]
    np.testing.assert_allclose(image_mm, back[:, 2], atol=0.01)

    # crop -> inverse: the labels back within 1 px / 1 mm, in uvd and in world xyz
    np.testing.assert_allclose(transform.to_image(joints[None])[0], labels, atol=1e-6)
    world = transform.to_world(joints[None], spec.camera)[0]
    np.testing.assert_allclose(world, spec.camera.uvd_to_xyz(labels), atol=1e-6)


@pytest.mark.evaldata
def test_nyu_layout_reads_the_real_frame_and_a_mat_file(eval_dir, tmp_path):
    spec = get_dataset("nyu")
    labels = _first_label(eval_dir, NYU_LABELS, spec.num_joints)
    (tmp_path / "test").mkdir()
    shutil.copy(eval_dir / NYU_FRAME, tmp_path / "test" / "depth_1_0000001.png")
    full = np.zeros((1, 1, 36, 3))
    full[0, 0, list(spec.source_joint_indices)] = labels
    scipy.io.savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": full, "joint_xyz": full})
    index = open_split("nyu", "test", data_root=tmp_path)
    assert len(index) == 1
    np.testing.assert_array_equal(index.uvd[0], labels)
    assert index.load_depth(0).shape == (480, 640)


@pytest.mark.evaldata
def test_icvl_reader_matches_the_community_labels(eval_dir, tmp_path):
    spec = get_dataset("icvl")
    for sequence in ("test_seq_1", "test_seq_2"):
        raw = (eval_dir / f"groundtruth/icvl/{sequence}.txt").read_bytes()
        ending = b"\r\r\n" if b"\r\r\n" in raw else b"\n"  # as released: every line ends with CR CR LF
        lines = raw.split(ending)[:3]
        (tmp_path / "Testing").mkdir(exist_ok=True)
        (tmp_path / "Testing" / f"{sequence}.txt").write_bytes(ending.join(lines) + ending)
        for line in lines:
            path = tmp_path / "Testing" / "Depth" / line.split()[0].decode()
            path.parent.mkdir(parents=True, exist_ok=True)
            save_png16(path, np.full((240, 320), 400.0))
    index = open_split(spec, "test", data_root=tmp_path)
    community = np.loadtxt(eval_dir / spec.test_labels).reshape(-1, 16, 3)
    np.testing.assert_array_equal(index.uvd, community[[0, 1, 2, 702, 703, 704]])
    assert index.where(3).endswith("test_seq_2.txt:1")
    assert index.load_depth(4).max() == 400.0


# --------------------------------------------------------------------------- layouts and round trips


def _icvl_root(tmp_path: Path, rows: list[str], images: dict[str, np.ndarray]) -> Path:
    root = tmp_path / "icvl"
    (root / "Training").mkdir(parents=True)
    (root / "Training" / "labels.txt").write_text("".join(row + "\n" for row in rows))
    for name, image in images.items():
        path = root / "Training" / "Depth" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png16(path, image)
    return root


def _row(name: str, values: np.ndarray) -> str:
    return name + " " + " ".join(f"{v:.3f}" for v in values.ravel())


def test_png_codecs_round_trip_depth_in_mm(tmp_path):
    depth = np.random.default_rng(0).integers(0, 5000, (240, 320)).astype(np.float32)
    save_png16(tmp_path / "a.png", depth)
    np.testing.assert_array_equal(load_png16(tmp_path / "a.png", get_dataset("icvl").camera), depth)
    depth = np.random.default_rng(1).integers(0, 2500, (480, 640)).astype(np.float32)
    save_png_rgb(tmp_path / "b.png", depth)
    np.testing.assert_array_equal(load_png_rgb(tmp_path / "b.png", get_dataset("nyu").camera), depth)


def test_root_from_environment_variable(tmp_path, monkeypatch):
    uvd = np.random.default_rng(0).uniform(50, 300, (2, 16, 3))
    root = _icvl_root(tmp_path, [_row("s/image_0000.png", uvd[0]), _row("s/image_0001.png", uvd[1])],
                      {"s/image_0000.png": np.zeros((240, 320)), "s/image_0001.png": np.zeros((240, 320))})
    monkeypatch.setenv("HPBENCH_ICVL_ROOT", str(root))
    index = open_split("icvl", "train")
    np.testing.assert_allclose(index.uvd, uvd, atol=5e-4)
    assert index.files[1] == root / "Training" / "Depth" / "s" / "image_0001.png"


def test_msra_layout_round_trip_with_negated_z(tmp_path):
    spec = get_dataset("msra")
    writer = formats.get("msra")
    split = spec.layout.split("P3")
    plan = writer.plan_frames(split, 34)  # two frames per gesture folder
    rng = np.random.default_rng(2)
    xyz = np.column_stack([rng.uniform(-60, 60, (34 * 21, 2)), rng.uniform(250, 450, 34 * 21)]).reshape(34, 21, 3)
    uvd = spec.camera.xyz_to_uvd(xyz)
    for frame in plan:
        depth = np.zeros((240, 320), dtype=np.float32)
        depth[100:140, 150:200] = 333.0
        (tmp_path / frame.path).parent.mkdir(parents=True, exist_ok=True)
        writer.save_depth(tmp_path / frame.path, depth)
    writer.write_labels(spec, tmp_path, split, plan, uvd)
    first = (tmp_path / "P3/1/joint.txt").read_text().splitlines()
    assert first[0] == "2" and float(first[1].split()[2]) < 0  # N, then z negated
    index = open_split("msra", "P3", data_root=tmp_path)
    np.testing.assert_allclose(index.uvd, uvd, atol=1e-3)
    depth = index.load_depth(5)
    assert depth[120, 170] == 333.0 and depth[0, 0] == 0.0 and depth.shape == (240, 320)


# --------------------------------------------------------------------------- bad inputs


def test_missing_root_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv("HPBENCH_NYU_ROOT", raising=False)
    with pytest.raises(DatasetError, match=r"HPBENCH_NYU_ROOT.*train/joint_data\.mat"):
        open_split("nyu", "train")


def test_missing_label_file_says_what_was_expected_where(tmp_path):
    (tmp_path / "Testing").mkdir()
    (tmp_path / "Testing" / "test_seq_1.txt").write_text("")
    with pytest.raises(DatasetError) as error:
        open_split("icvl", "test", data_root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "Testing" / "test_seq_2.txt") in message and "missing" in message
    assert "Testing/Depth" in message


def test_missing_frame_names_file_and_label_line(tmp_path):
    uvd = np.ones((3, 16, 3))
    root = _icvl_root(tmp_path, [_row(f"s/image_000{i}.png", uvd[i]) for i in range(3)],
                      {"s/image_0000.png": np.zeros((240, 320)), "s/image_0002.png": np.zeros((240, 320))})
    with pytest.raises(DatasetError) as error:
        open_split("icvl", "train", data_root=root)
    assert error.value.path == root / "Training" / "Depth" / "s" / "image_0001.png"
    assert f"{root / 'Training' / 'labels.txt'}:2" in str(error.value)


def test_label_line_with_47_numbers(tmp_path):
    uvd = np.ones((3, 16, 3))
    rows = [_row(f"s/image_000{i}.png", uvd[i]) for i in range(3)]
    rows[1] = rows[1].rsplit(" ", 1)[0]  # 47 numbers
    root = _icvl_root(tmp_path, rows, {})
    with pytest.raises(DatasetError) as error:
        open_split("icvl", "train", data_root=root)
    assert str(error.value).startswith(f"{root / 'Training' / 'labels.txt'}:2: 47 values")
    assert "expected 48" in str(error.value)


def test_non_numeric_label_value(tmp_path):
    row = _row("s/image_0000.png", np.ones(48)).replace("1.000", "x", 1)
    root = _icvl_root(tmp_path, [row], {})
    with pytest.raises(DatasetError, match=r"labels\.txt:1: column 2: 'x' is not a number"):
        open_split("icvl", "train", data_root=root)


def test_truncated_png_names_the_frame_and_its_label_line(tmp_path):
    uvd = np.ones((1, 16, 3))
    depth = np.random.default_rng(0).integers(300, 600, (240, 320))
    root = _icvl_root(tmp_path, [_row("s/image_0000.png", uvd[0])], {"s/image_0000.png": depth})
    path = root / "Training" / "Depth" / "s" / "image_0000.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    index = open_split("icvl", "train", data_root=root)
    with pytest.raises(DatasetError) as error:
        index.load_depth(0)
    assert error.value.path == path
    assert "cannot decode PNG" in str(error.value) and "labels.txt:1" in str(error.value)


def test_wrong_image_size_and_channels(tmp_path):
    uvd = np.ones((2, 16, 3))
    root = _icvl_root(tmp_path, [_row("s/a.png", uvd[0]), _row("s/b.png", uvd[1])],
                      {"s/a.png": np.zeros((480, 640))})
    save_png_rgb(root / "Training" / "Depth" / "s" / "b.png", np.zeros((240, 320)))
    index = open_split("icvl", "train", data_root=root)
    with pytest.raises(DatasetError, match=r"a\.png: image is 640x480, expected 320x240"):
        index.load_depth(0)
    with pytest.raises(DatasetError, match=r"b\.png: 3-channel RGB image, expected a 16-bit depth PNG"):
        index.load_depth(1)


def test_bad_nyu_mat_and_msra_files(tmp_path):
    (tmp_path / "train").mkdir()
    scipy.io.savemat(tmp_path / "train" / "joint_data.mat", {"joint_uvd": np.zeros((1, 4, 14, 3))})
    with pytest.raises(DatasetError, match=r"joint_data\.mat: joint_uvd has shape \(1, 4, 14, 3\)"):
        open_split("nyu", "train", data_root=tmp_path)
    (tmp_path / "train" / "joint_data.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DatasetError, match=r"joint_data\.mat: cannot read as a MATLAB file"):
        open_split("nyu", "train", data_root=tmp_path)

    camera = get_dataset("msra").camera
    good = tmp_path / "000000_depth.bin"
    formats.get("msra").save_depth(good, np.pad(np.full((10, 10), 300.0), ((100, 130), (100, 210))))
    good.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(DatasetError, match=r"000000_depth\.bin: .*truncated"):
        formats.get("msra").load_depth(good, camera)
    folder = tmp_path / "P0" / "1"
    folder.mkdir(parents=True)
    (folder / "joint.txt").write_text("3\n" + " ".join(["1"] * 63) + "\n")
    with pytest.raises(DatasetError, match=r"joint\.txt:1: line 1 announces 3 frames, the file holds 1"):
        open_split("msra", "P0", data_root=tmp_path)


def test_centre_files(tmp_path):
    camera = get_dataset("nyu").camera
    path = tmp_path / "centers.txt"
    path.write_text("10 -20 700\ninvalid\n0 0 500\n")
    uvd, valid = read_center_file(path, camera, num_frames=3)
    assert valid.tolist() == [True, False, True]
    np.testing.assert_allclose(uvd[0], camera.xyz_to_uvd(np.array([10.0, -20.0, 700.0])))
    assert uvd[0, 1] > camera.cy  # NYU y up: a negative y is below the image centre
    flipped, _ = read_center_file(path, camera, y_axis="down")
    np.testing.assert_allclose(flipped[0, 1], 2 * camera.cy - uvd[0, 1])
    path.write_text("10 -20 700\n1 2\n")
    with pytest.raises(DatasetError, match=r"centers\.txt:2: 2 values, expected 3"):
        read_center_file(path, camera)
    path.write_text("1 2 3\n")
    with pytest.raises(DatasetError, match="1 centre lines for 2 frames"):
        read_center_file(path, camera, num_frames=2)
