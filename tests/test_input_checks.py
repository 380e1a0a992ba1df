"""Plausible inputs only: every dataset reader refuses a wrong or damaged file with one DatasetError naming it.

Each bad file is made by hand here (PIL, scipy.io.savemat, raw bytes), so the expected
finding ("8-bit grayscale PNG (mode L)", "JPEG data in a .png file") is a fact about the
file written, not something read back from the reader.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image

from hpbench.data.cache import CenterFile, CropCache, CropSettings, build_crop_cache, open_crop_cache
from hpbench.data.centers import read_center_file
from hpbench.data.formats import (
    DatasetError,
    load_msra_bin,
    load_png16,
    load_png_rgb,
    open_split,
    save_msra_bin,
    save_png16,
    save_png_rgb,
)
from hpbench.data.specs import get_dataset
from hpbench.data.synth import synthesize

ICVL = get_dataset("icvl").camera  # 320 x 240
NYU = get_dataset("nyu").camera  # 640 x 480
MSRA = get_dataset("msra").camera  # 320 x 240


def _refused(call, path: Path, *found: str) -> DatasetError:
    """Run ``call``; it must raise a DatasetError (not a subclass or another type) whose one line names
    ``path`` first and holds each ``found`` text."""
    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    assert type(error) is DatasetError, f"{type(error).__name__}: {error}"
    message = str(error)
    assert message.startswith(str(path)) and "\n" not in message, message
    for text in found:
        assert text in message, message
    return error


def _png_bytes(width: int, height: int, bits: int, colour_type: int, pixels: bytes, *,
               before_ihdr: bytes = b"") -> bytes:
    """A minimal PNG written by hand (PIL cannot write 16-bit RGB): signature, chunks, one IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    prefix = chunk(b"tEXt", before_ihdr) if before_ihdr else b""
    return (b"\x89PNG\r\n\x1a\n" + prefix + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(pixels))
            + chunk(b"IEND", b""))


def _image(mode: str, size: tuple[int, int]) -> Image.Image:
    """A blank image; a palette one gets a full 256-entry palette (PIL writes a shorter one with fewer bits)."""
    image = Image.new(mode, size, 1)
    if mode == "P":
        image.putpalette([value for grey in range(256) for value in (grey, grey, grey)])
    return image


def _rows(width: int, height: int, pixel: bytes) -> bytes:
    return b"".join(b"\x00" + pixel * width for _ in range(height))  # filter byte 0, then the row


# --------------------------------------------------------------------------- depth frames: PNG


def test_good_frames_load_to_the_depths_written(tmp_path):
    depth = np.zeros((240, 320))
    depth[0, :8] = [0, 1, 255, 256, 257, 700, 4095, 65535]
    save_png16(tmp_path / "icvl.png", depth)
    with Image.open(tmp_path / "icvl.png") as image:  # what PIL makes of the writer's file
        assert (image.format, image.mode) == ("PNG", "I;16")
    loaded = load_png16(tmp_path / "icvl.png", ICVL)
    assert loaded[0, :8].tolist() == [0, 1, 255, 256, 257, 700, 4095, 65535] and not loaded[1:].any()

    depth = np.zeros((480, 640))
    depth[5, :6] = [0, 1, 255, 256, 1000, 65535]
    save_png_rgb(tmp_path / "nyu.png", depth)
    with Image.open(tmp_path / "nyu.png") as image:
        assert (image.format, image.mode) == ("PNG", "RGB")
    loaded = load_png_rgb(tmp_path / "nyu.png", NYU)
    assert loaded[5, :6].tolist() == [0, 1, 255, 256, 1000, 65535] and not loaded[:5].any()


@pytest.mark.parametrize(("mode", "save_as", "found"), [
    ("L", "PNG", "8-bit grayscale PNG (mode L)"),
    ("1", "PNG", "1-bit grayscale PNG (mode 1)"),
    ("P", "PNG", "8-bit palette PNG (mode P)"),
    ("L", "JPEG", "JPEG data in a .png file"),
    ("I;16", "TIFF", "TIFF data in a .png file"),
    ("LA", "PNG", "2-channel LA image"),
])
def test_icvl_refuses_frames_that_are_not_16_bit_grayscale_png(tmp_path, mode, save_as, found):
    path = tmp_path / "image_0000.png"
    _image(mode, (320, 240)).save(path, format=save_as)
    _refused(lambda: load_png16(path, ICVL), path, found, "expected a 16-bit depth PNG")


@pytest.mark.parametrize(("mode", "save_as", "found"), [
    ("RGBA", "PNG", "4-channel RGBA image"),
    ("I;16", "PNG", "1-channel I;16 image"),
    ("P", "PNG", "1-channel P image"),
    ("RGB", "JPEG", "JPEG data in a .png file"),
    ("RGB", "BMP", "BMP data in a .png file"),
])
def test_nyu_refuses_frames_that_are_not_8_bit_rgb_png(tmp_path, mode, save_as, found):
    path = tmp_path / "depth_1_0000001.png"
    _image(mode, (640, 480)).save(path, format=save_as)
    _refused(lambda: load_png_rgb(path, NYU), path, found, "expected an 8-bit RGB PNG")


def test_nyu_refuses_a_16_bit_rgb_png_that_pil_would_narrow(tmp_path):
    path = tmp_path / "depth_1_0000001.png"
    path.write_bytes(_png_bytes(640, 480, 16, 2, _rows(640, 480, b"\x00\x00\x03\xe8\x01\x02")))
    with Image.open(path) as image:  # the trap: PIL opens it as plain 8-bit RGB
        assert image.mode == "RGB"
    _refused(lambda: load_png_rgb(path, NYU), path, "16-bit RGB PNG (mode RGB)", "expected an 8-bit RGB PNG")


def test_png_bit_depth_is_read_from_the_ihdr_chunk_only_when_it_comes_first(tmp_path):
    path = tmp_path / "image_0000.png"
    path.write_bytes(_png_bytes(320, 240, 16, 0, _rows(320, 240, b"\x01\x90"), before_ihdr=b"k\x00v"))
    _refused(lambda: load_png16(path, ICVL), path, "first chunk is b'tEXt', not IHDR")
    path.write_bytes(_png_bytes(320, 240, 16, 0, _rows(320, 240, b"\x01\x90")))  # the same pixels, IHDR first
    assert (load_png16(path, ICVL) == 400).all()


def test_a_frame_that_is_a_folder_is_named(tmp_path):
    folder = tmp_path / "image_0000.png"
    folder.mkdir()
    _refused(lambda: load_png16(folder, ICVL), folder, "cannot read frame")
    _refused(lambda: load_msra_bin(folder, MSRA), folder, "cannot read frame")


# --------------------------------------------------------------------------- depth frames: MSRA .bin


def _msra_bin(path: Path, header: tuple[int, ...], box: np.ndarray) -> Path:
    path.write_bytes(np.array(header, dtype="<u4").tobytes() + np.asarray(box, dtype="<f4").tobytes())
    return path


def test_msra_bin_good_file_loads_to_the_depths_written(tmp_path):
    path = _msra_bin(tmp_path / "000000_depth.bin", (320, 240, 10, 20, 12, 21), np.array([[300.5, 301.25]]))
    depth = load_msra_bin(path, MSRA)
    assert depth[20, 10:12].tolist() == [300.5, 301.25] and np.count_nonzero(depth) == 2


@pytest.mark.parametrize(("header", "box", "found"), [
    ((640, 480, 0, 0, 1, 1), [[1.0]], "header says 640x480, expected 320x240"),
    ((320, 240, 5, 5, 5, 6), [], "bounding box left 5 top 5 right 5 bottom 6 is not inside the image"),
    ((320, 240, 300, 0, 330, 1), [[1.0] * 30], "bounding box left 300 top 0 right 330 bottom 1"),
    ((320, 240, 0, 0, 2, 1), [[1.0]], "28 bytes, expected 32 for a 2x1 box"),
    ((320, 240, 0, 0, 2, 1), [[1.0, np.nan]], "1 nan or inf depths in the box (first at u 1, v 0)"),
    ((320, 240, 0, 0, 2, 2), [[1.0, 2.0], [np.inf, 3.0]], "(first at u 0, v 1)"),
])
def test_msra_bin_refuses_a_malformed_header_or_box(tmp_path, header, box, found):
    path = _msra_bin(tmp_path / "000000_depth.bin", header, np.array(box))
    _refused(lambda: load_msra_bin(path, MSRA), path, found)


def test_msra_bin_shorter_than_its_header(tmp_path):
    path = tmp_path / "000000_depth.bin"
    path.write_bytes(b"\x40\x01\x00\x00" * 3)
    _refused(lambda: load_msra_bin(path, MSRA), path, "12 bytes: too short for the 24-byte header")


def test_msra_writer_output_passes_the_checks(tmp_path):
    depth = np.zeros((240, 320), dtype=np.float32)
    depth[50:52, 60:63] = 420.0
    save_msra_bin(tmp_path / "a.bin", depth)
    np.testing.assert_array_equal(load_msra_bin(tmp_path / "a.bin", MSRA), depth)


# --------------------------------------------------------------------------- NYU joint_data.mat


def _nyu_mat(root: Path, joint_uvd: object) -> Path:
    (root / "train").mkdir(exist_ok=True)
    path = root / "train" / "joint_data.mat"
    scipy.io.savemat(path, {"joint_uvd": joint_uvd, "joint_xyz": np.zeros((1, 1, 36, 3))})
    return path


def test_nyu_mat_with_no_kinect_is_refused(tmp_path):
    path = _nyu_mat(tmp_path, np.zeros((0, 2, 36, 3)))
    _refused(lambda: open_split("nyu", "train", data_root=tmp_path), path,
             "joint_uvd has shape (0, 2, 36, 3), expected (kinect >= 1, N,")


def _cell() -> np.ndarray:
    cell = np.empty((2,), dtype=object)
    cell[0], cell[1] = np.zeros((36, 3)), np.ones((36, 3))
    return cell


@pytest.mark.parametrize(("value", "found"), [
    (_cell(), "joint_uvd is a MATLAB cell array"),
    ("u v d", "joint_uvd is a MATLAB char array (text)"),
    ({"u": np.zeros(3)}, "joint_uvd is a MATLAB struct"),
    (np.ones((1, 2, 36, 3)) * 1j, "joint_uvd is a complex array"),
    (scipy.sparse.csc_matrix(np.eye(3)), "joint_uvd is a csc_matrix, expected a numeric array"),
])
def test_nyu_mat_with_non_numeric_joint_uvd_is_refused(tmp_path, value, found):
    path = _nyu_mat(tmp_path, value)
    _refused(lambda: open_split("nyu", "train", data_root=tmp_path), path, found)


def test_nyu_mat_that_is_not_a_mat_file(tmp_path):
    (tmp_path / "train").mkdir()
    path = tmp_path / "train" / "joint_data.mat"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    _refused(lambda: open_split("nyu", "train", data_root=tmp_path), path, "cannot read as a MATLAB file")


# --------------------------------------------------------------------------- label text files


def test_binary_label_files_are_named(tmp_path):
    (tmp_path / "Training").mkdir()
    icvl = tmp_path / "Training" / "labels.txt"
    icvl.write_bytes(b"s/image_0000.png 1 2 3\x00\xff\n")
    _refused(lambda: open_split("icvl", "train", data_root=tmp_path), icvl, "binary content")
    msra = tmp_path / "P0" / "1" / "joint.txt"
    msra.parent.mkdir(parents=True)
    msra.write_bytes(b"1\n\xff\xfe 1 2\n")
    _refused(lambda: open_split("msra", "P0", data_root=tmp_path), msra, "not UTF-8")


# --------------------------------------------------------------------------- centre files


@pytest.mark.parametrize(("content", "found"), [
    (b"1 2 300\x00\n", "binary content (NUL bytes)"),
    (b"1 2 300\n4 5 \xff00\n", ":2: not UTF-8 text"),
    (b"1 2 300\nnan nan nan\n", ":2: 'nan nan nan' holds nan or inf"),
    (b"1 2 300\n1 inf 300\n", ":2: '1 inf 300' holds nan or inf"),
    (b"1 2 0\n", ":1: depth 0 mm, expected a centre in front of the camera"),
    (b"invalid\n1 2 -350\n", ":2: depth -350 mm"),
])
def test_centre_file_defects_are_named_with_their_line(tmp_path, content, found):
    path = tmp_path / "center_test_refined.txt"
    path.write_bytes(content)
    _refused(lambda: read_center_file(path, NYU), path, found)


def test_centre_file_that_is_a_folder(tmp_path):
    _refused(lambda: read_center_file(tmp_path, NYU), tmp_path, "cannot read centre file")


def test_centre_file_invalid_lines_stay_allowed(tmp_path):
    path = tmp_path / "centers.txt"
    path.write_text("invalid\n10 -20 700\n")
    uvd, valid = read_center_file(path, NYU, coords="uvd")
    assert valid.tolist() == [False, True] and uvd[1].tolist() == [10.0, -20.0, 700.0]


# --------------------------------------------------------------------------- crop cache


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize("synth", root, frames=2, test_frames=2, seed=3, workers=1)
    return root


def test_a_bad_centre_file_in_the_cache_is_named(synth_root, tmp_path):
    centres = tmp_path / "centres.txt"
    centres.write_text("1 2 300\nnan 2 300\n")
    index = open_split("synth", "test", data_root=synth_root)
    _refused(lambda: build_crop_cache(index, CropSettings(size_px=16), centers=CenterFile(centres),
                                      cache_dir=tmp_path), centres, ":2:", "nan or inf")
    auto = synth_root / "center_test_refined.txt"
    good = auto.read_bytes()
    try:
        auto.write_bytes(good.replace(b"\n", b"\x00\n", 1))
        _refused(lambda: open_crop_cache("synth", "test", CropSettings(size_px=16), data_root=synth_root,
                                         cache_dir=tmp_path), auto, "binary content")
    finally:
        auto.write_bytes(good)


@pytest.fixture()
def cache_files(synth_root, tmp_path) -> tuple[Path, Path]:
    cache = build_crop_cache(open_split("synth", "test", data_root=synth_root), CropSettings(size_px=16),
                             cache_dir=tmp_path)
    CropCache.open(cache.path)  # whole as built
    return cache.path, cache.path.with_suffix(".npz")


def _rewrite_npz(path: Path, **changes: object) -> None:
    with np.load(path, allow_pickle=False) as meta:
        arrays = {name: meta[name] for name in meta.files}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = np.asarray(value)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _info(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as meta:
        return json.loads(str(meta["info"]))


def test_crop_cache_npy_that_is_not_crops(cache_files):
    npy, npz = cache_files
    npy.write_bytes(b"not a numpy file")
    _refused(lambda: CropCache.open(npy), npy, "crop cache damaged")
    np.save(npy, np.zeros((2, 16), dtype=np.float16))
    _refused(lambda: CropCache.open(npy), npy, "shape (2, 16), expected (N, S, S) crops")
    npy.write_bytes(npz.read_bytes())  # a zip: np.load would give an NpzFile
    _refused(lambda: CropCache.open(npy), npy, "NpzFile, expected (N, S, S) crops")
    np.save(npy, np.zeros((2, 8, 8), dtype=np.float16))
    _refused(lambda: CropCache.open(npy), npy, "crops (2, 8, 8), metadata says 16x16 px")


def test_crop_cache_npz_garbled_or_missing_arrays(cache_files):
    npy, npz = cache_files
    whole = npz.read_bytes()
    npz.write_bytes(whole[: len(whole) // 2])
    _refused(lambda: CropCache.open(npy), npz, "crop cache damaged")
    npz.write_bytes(whole)
    _rewrite_npz(npz, uvd=None)
    _refused(lambda: CropCache.open(npy), npz, "no uvd array")
    npz.write_bytes(whole)
    _rewrite_npz(npz, joints=np.zeros((3, 16, 3)))
    _refused(lambda: CropCache.open(npy), npz, "2 crops but joints (3, 16, 3)")


@pytest.mark.parametrize(("info", "found"), [
    ("{not json", "info is not JSON"),
    ("[1, 2]", "info is a JSON list, expected an object"),
    ('{"dataset": "synth", "split": "test"}', "info lacks size_px"),
    ('{"dataset": "synth", "split": "test", "size_px": "16"}', "info lacks size_px or has the wrong type"),
    ('{"dataset": 1, "split": "test", "size_px": 16}', "info lacks dataset"),
])
def test_crop_cache_npz_info_json_defects(cache_files, info, found):
    npy, npz = cache_files
    assert _info(npz)["size_px"] == 16  # the built cache's own info parses
    _rewrite_npz(npz, info=info)
    _refused(lambda: CropCache.open(npy), npz, found)
