"""Synthetic hands in the real formats, read back by the real readers; the crop cache and torch dataset."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from hpbench.data.cache import CENTER_DEPTH, CENTER_FILE, CropDataset, CropSettings, build_crop_cache, open_crop_cache
from hpbench.data.crop import Augmentation, CropTransform
from hpbench.data.formats import open_split
from hpbench.data.hand import INDEX, LIMITS, POINTS, sample_poses, skeleton, uvd_from_optical
from hpbench.data.specs import get_dataset
from hpbench.data.synth import MARKER, ensure_synthetic, synthesize

SEED = 5


@pytest.fixture(scope="module")
def icvl_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth-icvl")
    synthesize("synth", root, frames=16, test_frames=8, seed=SEED, workers=1)
    return root


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth-nyu")
    synthesize("synth-nyu", root, frames=6, test_frames=4, seed=SEED, workers=1)
    return root


def _expected_uvd(name: str, split_number: int, count: int) -> np.ndarray:
    """The labels of the random poses, recomputed from the seed (not read from the files)."""
    spec = get_dataset(name)
    pose = sample_poses(np.random.default_rng([SEED, split_number]), count, spec.camera, spec.typical_hand_depth_mm)
    points = skeleton(pose)
    return uvd_from_optical(points[:, [INDEX[joint] for joint in spec.skeleton]], spec.camera)


def _on_hand(index, tolerance_mm: float = 40.0) -> np.ndarray:
    """(N, J) whether the depth at each joint's pixel is within tolerance of the joint depth."""
    hits = []
    for frame in range(len(index)):
        depth = index.load_depth(frame)
        uvd = index.uvd[frame]
        cols = np.clip(np.floor(uvd[:, 0] + 0.5).astype(int), 0, depth.shape[1] - 1)
        rows = np.clip(np.floor(uvd[:, 1] + 0.5).astype(int), 0, depth.shape[0] - 1)
        hits.append(np.abs(depth[rows, cols] - uvd[:, 2]) < tolerance_mm)
    return np.array(hits)


def test_random_poses_respect_joint_limits_and_stay_in_view():
    spec = get_dataset("nyu")
    pose = sample_poses(np.random.default_rng(0), 200, spec.camera, spec.typical_hand_depth_mm)
    assert (pose.angles >= LIMITS[:, 0] - 1e-12).all() and (pose.angles <= LIMITS[:, 1] + 1e-12).all()
    points = skeleton(pose)
    hand = [i for i, name in enumerate(POINTS) if name != "forearm"]
    uvd = uvd_from_optical(points[:, hand], spec.camera)
    assert (uvd[..., 0] >= 0).all() and (uvd[..., 0] <= 639).all()
    assert (uvd[..., 1] >= 0).all() and (uvd[..., 1] <= 479).all()
    palm = points[:, INDEX["palm_centre"], 2]
    assert palm.min() >= 600 - 1 and palm.max() <= 1000 + 1
    # bones keep their lengths: the middle finger's proximal phalanx is 45 mm x the hand scale
    bone = np.linalg.norm(points[:, INDEX["middle_pip"]] - points[:, INDEX["middle_mcp"]], axis=-1)
    np.testing.assert_allclose(bone, 45.0 * pose.scale, rtol=1e-9)
    # the forearm recedes from the camera: the hand is the nearest thing
    assert (points[:, INDEX["forearm"], 2] > points[:, INDEX["wrist"], 2]).all()


def test_synthetic_icvl_is_read_back_by_the_icvl_reader(icvl_root):
    train = open_split("synth", "train", data_root=icvl_root)
    test = open_split("icvl", "test", data_root=icvl_root)  # the same files through the real ICVL spec
    assert (len(train), len(test)) == (16, 8)
    assert (icvl_root / "Training" / "labels.txt").is_file() and (icvl_root / "Testing" / "test_seq_2.txt").is_file()
    np.testing.assert_allclose(train.uvd, _expected_uvd("synth", 0, 16), atol=5e-4)  # 3 decimals, as ICVL's files
    np.testing.assert_allclose(test.uvd, _expected_uvd("synth", 1, 8), atol=5e-4)
    depth = train.load_depth(0)
    assert depth.shape == (240, 320) and np.array_equal(depth, np.rint(depth))
    on_hand = _on_hand(train)
    assert on_hand.mean() > 0.8, on_hand.mean()
    assert on_hand.mean(axis=1).min() >= 0.5  # every frame shows its hand


def test_synthetic_nyu_is_read_back_by_the_nyu_reader(nyu_root):
    spec = get_dataset("synth-nyu")
    train = open_split("nyu", "train", data_root=nyu_root)
    np.testing.assert_allclose(train.uvd, _expected_uvd("synth-nyu", 0, 6), atol=1e-9)
    mat = scipy.io.loadmat(nyu_root / "train" / "joint_data.mat")
    assert mat["joint_uvd"].shape == (1, 6, 36, 3) and mat["joint_xyz"].shape == (1, 6, 36, 3)
    np.testing.assert_allclose(spec.camera.uvd_to_xyz(mat["joint_uvd"][0]), mat["joint_xyz"][0], atol=1e-9)
    # the 22 other joints lie along the fingers: each finger's 6 points run tip -> knuckle
    fingers = mat["joint_xyz"][0, :, :30].reshape(6, 5, 6, 3)
    steps = np.linalg.norm(np.diff(fingers, axis=2), axis=-1)
    assert (steps > 1).all() and (steps < 60).all()
    assert _on_hand(train).mean() > 0.8
    assert _on_hand(open_split("synth-nyu", "test", data_root=nyu_root)).mean() > 0.75


def test_output_is_identical_for_any_number_of_workers(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    synthesize("synth", one, frames=10, test_frames=6, seed=11, workers=1)
    synthesize("synth", two, frames=10, test_frames=6, seed=11, workers=2)

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}

    first = digest(one)
    assert len(first) == 16 + 3 + 2 and first == digest(two)
    other = tmp_path / "other"
    synthesize("synth", other, frames=10, test_frames=6, seed=12, workers=1)
    assert digest(other) != first


@pytest.mark.evaldata
def test_render_from_real_nyu_labels(eval_dir, tmp_path):
    spec = get_dataset("nyu")
    labels = eval_dir / spec.test_labels
    summary = synthesize("nyu", tmp_path, frames=2, test_frames=5, seed=1, workers=1, from_labels=labels)
    assert summary.frames == {"train": 2, "test": 5} and summary.fit_rms_mm < 25
    test = open_split("nyu", "test", data_root=tmp_path)
    community = np.loadtxt(labels, max_rows=5).reshape(5, 14, 3)
    np.testing.assert_allclose(test.uvd, community, atol=1e-9)
    mat = scipy.io.loadmat(tmp_path / "test" / "joint_data.mat")["joint_uvd"][0]
    np.testing.assert_allclose(mat[:, list(spec.source_joint_indices)], community, atol=1e-9)
    assert _on_hand(test).mean() > 0.85


def test_crop_cache_and_torch_dataset(icvl_root, tmp_path):
    index = open_split("synth", "train", data_root=icvl_root)
    cache = build_crop_cache(index, CropSettings(size_px=64), cache_dir=tmp_path)
    assert cache.crops.shape == (16, 64, 64) and cache.crops.dtype == np.float16
    assert isinstance(cache.crops, np.memmap) and (cache.center_source == CENTER_DEPTH).all()
    np.testing.assert_allclose(cache.transform.to_image(cache.joints), index.uvd, atol=1e-6)
    assert np.abs(cache.crops).max() <= 1 and (cache.crops < 1).mean() > 0.05
    mtime = cache.path.stat().st_mtime_ns
    assert build_crop_cache(index, CropSettings(size_px=64), cache_dir=tmp_path).path.stat().st_mtime_ns == mtime
    other = build_crop_cache(index, CropSettings(size_px=32, cube_mm=250), cache_dir=tmp_path)
    assert other.path != cache.path and other.crops.shape == (16, 32, 32)

    plain = CropDataset(cache)
    item = plain[3]
    assert item["depth"].shape == (1, 64, 64) and item["depth"].dtype == torch.float32
    np.testing.assert_allclose(item["depth"][0].numpy(), cache.crops[3].astype(np.float32))
    np.testing.assert_allclose(item["joints"].numpy(), cache.joints[3], atol=1e-4)

    augmented = CropDataset(cache.path, augmentation=Augmentation(dropout=0.05), seed=3)
    a, b = augmented[3], augmented[3]
    assert torch.equal(a["depth"], b["depth"]) and not torch.equal(a["depth"], item["depth"])
    batch = augmented.__getitems__([7, 3])
    assert torch.equal(batch[1]["depth"], a["depth"])  # the same item whatever the batch
    augmented.set_epoch(1)
    assert not torch.equal(augmented[3]["depth"], a["depth"])
    # predictions in crop coordinates map back through the item's own transform
    transform = CropTransform(a["matrix"][None].numpy(), a["center_uvd"][None].numpy(),
                              a["depth_half_mm"][None].numpy(), 64)
    np.testing.assert_allclose(transform.to_image(a["joints"][None].double().numpy())[0], index.uvd[3], atol=1e-3)
    loader = torch.utils.data.DataLoader(augmented, batch_size=5, shuffle=True)
    shapes = [tuple(batch["depth"].shape) for batch in loader]
    assert shapes == [(5, 1, 64, 64)] * 3 + [(1, 1, 64, 64)]


def test_refined_centre_files_are_used_automatically(icvl_root, tmp_path):
    cache = open_crop_cache("synth", "test", CropSettings(size_px=64), data_root=icvl_root, cache_dir=tmp_path)
    assert (cache.center_source == CENTER_FILE).all()
    inside = (cache.joints[..., :2] >= 0) & (cache.joints[..., :2] <= 63)
    assert inside.all()
    palm = cache.transform.center_uvd - _expected_uvd("synth", 1, 8)[:, 0]
    assert np.abs(palm[:, 2]).max() < 40


def test_ensure_synthetic_reuses_a_finished_root(tmp_path):
    root = ensure_synthetic("synth", tmp_path / "s", frames=4, test_frames=2, seed=2)
    stamp = (root / MARKER).stat().st_mtime_ns
    assert ensure_synthetic("synth", root, frames=4, test_frames=2, seed=2) == root
    assert (root / MARKER).stat().st_mtime_ns == stamp
    ensure_synthetic("synth", root, frames=5, test_frames=2, seed=2)
    assert len(open_split("synth", "train", data_root=root)) == 5


def test_scoring_renders_only_the_test_split_and_its_frames_equal_a_full_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HPBENCH_SYNTH_ROOT", raising=False)
    test_only = ensure_synthetic("synth", frames=6, test_frames=3, seed=4, test_only=True)
    assert test_only.name == "synth-test3-s4"
    assert not (test_only / "Training").exists()  # no train split rendered
    full = ensure_synthetic("synth", tmp_path / "full", frames=6, test_frames=3, seed=4)
    for name in ("test_seq_1.txt", "center_test_refined.txt"):
        found = sorted(test_only.rglob(name))
        assert found and found[0].read_bytes() == next(full.rglob(name)).read_bytes()
    for image in sorted((full / "Testing").rglob("*.png")):
        assert (test_only / image.relative_to(full)).read_bytes() == image.read_bytes()
    # a full render serves a later test-only use: nothing rendered again
    cached = tmp_path / "home" / ".cache" / "hpbench" / "synth-6-3-s4"
    assert ensure_synthetic("synth", frames=6, test_frames=3, seed=4) == cached
    assert ensure_synthetic("synth", frames=6, test_frames=3, seed=4, test_only=True) == cached


def test_refuses_to_overwrite_a_folder_that_is_not_synthetic(tmp_path):
    (tmp_path / "Training").mkdir()
    (tmp_path / "Training" / "labels.txt").write_text("real data\n")
    with pytest.raises(FileExistsError, match="not empty"):
        synthesize("synth", tmp_path, frames=2)
    with pytest.raises(FileExistsError):
        ensure_synthetic("synth", tmp_path, frames=2)
    assert (tmp_path / "Training" / "labels.txt").read_text() == "real data\n"


def test_a_changed_frame_gets_a_new_cache(icvl_root, tmp_path):
    index = open_split("synth", "test", data_root=icvl_root)
    first = build_crop_cache(index, CropSettings(size_px=32), cache_dir=tmp_path)
    path = index.files[2]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = build_crop_cache(index, CropSettings(size_px=32), cache_dir=tmp_path)
    assert second.path != first.path
    np.testing.assert_array_equal(second.crops, first.crops)  # same content, rebuilt


def test_a_damaged_cache_says_so_instead_of_an_mmap_error(icvl_root, tmp_path):
    from hpbench.data.cache import CropCache
    from hpbench.data.formats import DatasetError

    cache = build_crop_cache(open_split("synth", "test", data_root=icvl_root), CropSettings(size_px=32),
                             cache_dir=tmp_path)
    path = cache.path
    del cache
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    with pytest.raises(DatasetError, match="damaged"):
        CropCache.open(path)
