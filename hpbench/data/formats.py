"""The datasets' own on-disk formats: read (and, for the synthetic renderer, write) them.

- ICVL: 320x240 single-channel 16-bit PNGs, depth in mm; label files with one
  line per frame, ``path u1 v1 d1 ... u16 v16 d16`` (u, v px; d mm).
- NYU: 640x480 RGB PNGs with depth mm = G * 256 + B (R unused, 0); per split a
  ``joint_data.mat`` with ``joint_uvd`` and ``joint_xyz`` of shape (kinect, N, 36, 3);
  frames ``depth_1_XXXXXXX.png`` (1-based) of camera 1 = kinect index 0.
- MSRA 2015: ``XXXXXX_depth.bin``: 6 uint32 (image width, height, box left, top,
  right, bottom) then float32 depths of the box, row-major; ``joint.txt`` per
  gesture folder: N, then N lines of 21 x (x, y, z) mm with z negated.

Which format a dataset uses and where its splits live is data
(``DatasetSpec.layout``); this module holds one :class:`DepthFormat` per format in
the ``formats`` registry. Label text files are joint tables, read by
:func:`hpbench.jointtable.read_joint_table`. Every defect is a :class:`DatasetError`
naming the file (and line), never a silent skip.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpbench.data.camera import Camera
from hpbench.data.specs import DatasetSpec, SplitLayout, get_dataset
from hpbench.jointtable import TableFileError, read_joint_table
from hpbench.registry import Registry

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DatasetError",
    "DepthFormat",
    "FrameIndex",
    "LabelTable",
    "PlannedFrame",
    "formats",
    "open_split",
    "read_label_file",
    "resolve_root",
]


class DatasetError(TableFileError):
    """A dataset file that is missing or cannot be read; ``str()`` is one line naming file and line."""


@dataclass(frozen=True)
class LabelTable:
    """What a split's label files say: frame files, their joints, where each was read.

    ``files``: absolute frame paths; ``uvd``: (N, J, 3) float64 in the spec's joint
    order (u, v px; d mm); ``sources``: the label files; ``source_index`` and
    ``lines``: (N,) which label file and 1-based line (frame number for .mat files).
    """

    files: tuple[Path, ...]
    uvd: np.ndarray
    sources: tuple[Path, ...]
    source_index: np.ndarray
    lines: np.ndarray


@dataclass(frozen=True)
class PlannedFrame:
    """A frame a writer will create: its label file, its name there, its path below the root."""

    label_file: str
    name: str
    path: str


@dataclass(frozen=True)
class DepthFormat:
    """One on-disk format: how to read a split's labels, decode and encode a frame,
    name new frames and write labels (the last three serve the synthetic writer)."""

    name: str
    read_labels: Callable[[DatasetSpec, Path, SplitLayout], LabelTable]
    load_depth: Callable[[Path, Camera], np.ndarray]
    save_depth: Callable[[Path, np.ndarray], None]
    plan_frames: Callable[[SplitLayout, int], list[PlannedFrame]]
    write_labels: Callable[[DatasetSpec, Path, SplitLayout, Sequence[PlannedFrame], np.ndarray], None]


formats: Registry[DepthFormat] = Registry("dataset format")


# --------------------------------------------------------------------------- roots


def resolve_root(spec: DatasetSpec, data_root: str | os.PathLike[str] | None = None) -> Path:
    """The dataset's root folder: ``data_root``, else ``$<spec.root_env>``; an error says what is expected."""
    if spec.layout is None:
        raise DatasetError(None, f"dataset {spec.name!r} has no on-disk layout in its spec: it cannot be read")
    if data_root is None:
        env = os.environ.get(spec.root_env or "")
        if not env:
            how = f" or set ${spec.root_env}" if spec.root_env else ""
            raise DatasetError(
                None, f"no {spec.name} dataset root: pass data_root (--data-root){how}; {_expected(spec)}"
            )
        data_root = env
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetError(root, f"{spec.name} dataset root is not a folder; {_expected(spec)}")
    return root


def _expected(spec: DatasetSpec, split: SplitLayout | None = None) -> str:
    assert spec.layout is not None
    splits = (split,) if split is not None else spec.layout.splits
    shown = []
    for item in splits[:3]:
        files = ", ".join(item.label_files[:2]) + (", ..." if len(item.label_files) > 2 else "")
        images = f" + frames under {item.image_dir}/" if item.image_dir else " + frames beside them"
        shown.append(f"{item.name}: {files}{images}")
    more = f"; ... ({len(splits)} splits)" if len(splits) > 3 else ""
    return f"expected {spec.layout.format} layout ({spec.layout.description}): " + "; ".join(shown) + more


def _require_file(spec: DatasetSpec, root: Path, split: SplitLayout, relative: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise DatasetError(path, f"missing {spec.name} {split.name} label file; {_expected(spec, split)}")
    return path


def _check_frames_exist(files: Sequence[Path], table_sources: Sequence[Path], source_index: np.ndarray,
                        lines: np.ndarray) -> None:
    """One listing per folder instead of a stat per frame; names the first missing frame and its label line."""
    listings: dict[Path, set[str] | None] = {}
    missing = []
    for number, path in enumerate(files):
        names = listings.get(path.parent, ...)
        if names is ...:
            try:
                names = set(os.listdir(path.parent))
            except OSError:
                names = None
            listings[path.parent] = names
        if names is None or path.name not in names:
            missing.append(number)
    if missing:
        first = missing[0]
        source = table_sources[int(source_index[first])]
        others = f" ({len(missing) - 1} more of {len(files)} frames missing)" if len(missing) > 1 else ""
        folder = "" if listings.get(files[first].parent) is not None else " (its folder does not exist)"
        raise DatasetError(
            files[first], f"missing frame listed in {source}:{int(lines[first])}{folder}{others}"
        )


# --------------------------------------------------------------------------- PNG


_PNG_COLOURS = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


@dataclass(frozen=True)
class _PngKind:
    """What a dataset's depth PNGs are: bit depth and colour type (the IHDR's), channels PIL sees, description."""

    bits: int
    colour_type: int
    bands: int
    what: str


_ICVL_PNG = _PngKind(16, 0, 1, "a 16-bit depth PNG (single-channel 16-bit grayscale, depth in mm, as ICVL's)")
_NYU_PNG = _PngKind(8, 2, 3, "an 8-bit RGB PNG with depth = G * 256 + B (as NYU's)")


def _check_png(path: Path, image: Image.Image, header: bytes, kind: _PngKind) -> None:
    """Refuse a frame that is not a PNG of ``kind``, saying what it is.

    The encoding is PIL's ``format`` (the data's, not the file name's). The bit depth
    comes from the IHDR chunk: PIL opens a 16-bit RGB PNG as 8-bit RGB, so its mode
    alone cannot tell.
    """
    if image.format != "PNG":
        name = f"a {path.suffix} file" if path.suffix else "a file without suffix"
        raise DatasetError(path, f"{image.format} data in {name}, expected {kind.what}")
    bands = len(image.getbands())
    if bands != kind.bands:
        raise DatasetError(path, f"{bands}-channel {image.mode} image, expected {kind.what}")
    if len(header) < 26 or header[12:16] != b"IHDR":
        raise DatasetError(path, f"PNG whose first chunk is {header[12:16]!r}, not IHDR (corrupt?), "
                                 f"expected {kind.what}")
    bits, colour = header[24], header[25]
    if (bits, colour) != (kind.bits, kind.colour_type):
        found = _PNG_COLOURS.get(colour, f"colour type {colour}")
        raise DatasetError(path, f"{bits}-bit {found} PNG (mode {image.mode}), expected {kind.what}")


def _open_png(path: Path, camera: Camera, kind: _PngKind) -> np.ndarray:
    """The frame's pixels after checking its encoding, bit depth, channels and size against ``kind``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as handle:
            header = handle.read(26)  # PNG signature, then the IHDR chunk up to its colour type
            handle.seek(0)
            with Image.open(handle) as image:
                _check_png(path, image, header, kind)
                image.load()
                array = np.asarray(image)
    except FileNotFoundError:
        raise DatasetError(path, "missing frame") from None
    except (IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise DatasetError(path, f"cannot read frame: {error.strerror or error}") from None
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, zlib.error) as error:
        reason = f"cannot decode PNG ({type(error).__name__}: {error}): truncated or corrupt?"
        raise DatasetError(path, reason) from None
    height, width = array.shape[:2]
    if (width, height) != (camera.width_px, camera.height_px):
        raise DatasetError(path, f"image is {width}x{height}, expected {camera.width_px}x{camera.height_px} "
                                 f"({kind.what})")
    return array


def load_png16(path: Path, camera: Camera) -> np.ndarray:
    """(H, W) float32 depth mm from a single-channel 16-bit PNG (ICVL); 0 = no reading."""
    return _open_png(path, camera, _ICVL_PNG).astype(np.float32)


def load_png_rgb(path: Path, camera: Camera) -> np.ndarray:
    """(H, W) float32 depth mm = G * 256 + B from an 8-bit RGB PNG (NYU)."""
    rgb = _open_png(path, camera, _NYU_PNG)
    return (rgb[..., 1].astype(np.float32) * 256.0 + rgb[..., 2]).astype(np.float32)


def _as_mm_uint16(depth_mm: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth_mm, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    return np.clip(np.rint(np.nan_to_num(depth, nan=0.0)), 0, 65535).astype(np.uint16)


def save_png16(path: Path, depth_mm: np.ndarray) -> None:
    """Write depth mm (rounded) as a single-channel 16-bit PNG."""
    from PIL import Image

    Image.fromarray(_as_mm_uint16(depth_mm)).save(path, format="PNG", compress_level=1)


def save_png_rgb(path: Path, depth_mm: np.ndarray) -> None:
    """Write depth mm (rounded) as NYU's RGB PNG: G = high byte, B = low byte, R = 0."""
    from PIL import Image

    depth = _as_mm_uint16(depth_mm)
    rgb = np.zeros(depth.shape + (3,), dtype=np.uint8)
    rgb[..., 1] = depth >> 8
    rgb[..., 2] = depth & 0xFF
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", compress_level=1)


# --------------------------------------------------------------------------- text labels


def read_label_file(path: str | os.PathLike[str], num_joints: int) -> tuple[tuple[str, ...] | None, np.ndarray]:
    """A community label file: one frame per line, ``num_joints`` x (u v d), optionally led by a
    frame name (ICVL's ``test_seq_1.txt``, handpose-eval's ``*_groundtruth_label.txt``).
    Returns the names (None without a name column) and (N, J, 3) values."""
    table = read_joint_table(path, num_joints=num_joints, what=f"({num_joints} joints x u v d)", error=DatasetError)
    if len(table.joints) == 0:
        raise DatasetError(table.path, "no label lines")
    return table.names, table.joints


def _format_rows(values: np.ndarray, decimals: int) -> list[str]:
    return [" ".join(f"{value:.{decimals}f}" for value in row) for row in values.reshape(len(values), -1)]


# --------------------------------------------------------------------------- ICVL


def _icvl_read(spec: DatasetSpec, root: Path, split: SplitLayout) -> LabelTable:
    joints = spec.num_joints
    image_dir = root / split.image_dir if split.image_dir else None
    files: list[Path] = []
    blocks, source_index, lines, sources = [], [], [], []
    for number, relative in enumerate(split.label_files):
        path = _require_file(spec, root, split, relative)
        table = read_joint_table(path, num_joints=joints, named=True, what=f"({joints} joints x u v d)",
                                 error=DatasetError)
        assert table.names is not None
        folder = image_dir if image_dir is not None else path.parent
        files.extend(folder / name.replace("\\", "/") for name in table.names)
        blocks.append(table.joints)
        source_index.append(np.full(len(table.names), number))
        lines.append(table.lines)
        sources.append(path)
    return _checked_table(files, blocks, sources, source_index, lines)


def _checked_table(files: list[Path], blocks: list[np.ndarray], sources: list[Path],
                   source_index: list[np.ndarray], lines: list[np.ndarray]) -> LabelTable:
    """One LabelTable from per-label-file pieces, after checking every frame file exists."""
    table = LabelTable(tuple(files), np.concatenate(blocks), tuple(sources), np.concatenate(source_index),
                       np.concatenate(lines))
    _check_frames_exist(table.files, table.sources, table.source_index, table.lines)
    return table


def _spread(split: SplitLayout, count: int) -> list[tuple[str, int]]:
    """(label file, index within it) for ``count`` new frames spread evenly over the split's label files."""
    chunks = np.array_split(np.arange(count), len(split.label_files))
    return [(label_file, index) for label_file, chunk in zip(split.label_files, chunks, strict=True)
            for index in range(len(chunk))]


def _image_folder(split: SplitLayout, label_file: str) -> str:
    return split.image_dir if split.image_dir else Path(label_file).parent.as_posix()


def _icvl_plan(split: SplitLayout, count: int) -> list[PlannedFrame]:
    """Frames named like ICVL's: ``<sequence>/image_XXXX.png``, the sequence named after its label file."""
    planned = []
    for label_file, index in _spread(split, count):
        sequence = Path(label_file).stem if len(split.label_files) > 1 else "synth"
        name = f"{sequence}/image_{index:04d}.png"
        planned.append(PlannedFrame(label_file, name, f"{_image_folder(split, label_file)}/{name}"))
    return planned


def _icvl_write(spec: DatasetSpec, root: Path, split: SplitLayout, frames: Sequence[PlannedFrame],
                uvd: np.ndarray) -> None:
    rows = _format_rows(np.asarray(uvd, dtype=np.float64), 3)
    for label_file in split.label_files:
        lines = [f"{frame.name} {row}\n" for frame, row in zip(frames, rows, strict=True)
                 if frame.label_file == label_file]
        path = root / label_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))


# --------------------------------------------------------------------------- NYU


def _nyu_read(spec: DatasetSpec, root: Path, split: SplitLayout) -> LabelTable:
    import scipy.io

    (relative,) = split.label_files
    path = _require_file(spec, root, split, relative)
    try:
        mat = scipy.io.loadmat(path, variable_names=["joint_uvd"])
    except Exception as error:  # scipy raises several types for truncated or foreign files
        raise DatasetError(path, f"cannot read as a MATLAB file ({type(error).__name__}: {error})") from None
    if "joint_uvd" not in mat:
        raise DatasetError(path, "no 'joint_uvd' variable (expected joint_uvd, joint_xyz of shape (kinect, N, 36, 3))")
    uvd = _numeric_mat_variable(path, "joint_uvd", mat["joint_uvd"])
    indices = spec.source_joint_indices or tuple(range(spec.num_joints))
    if uvd.ndim != 4 or uvd.shape[0] == 0 or uvd.shape[-1] != 3 or uvd.shape[2] <= max(indices):
        raise DatasetError(path, f"joint_uvd has shape {uvd.shape}, expected (kinect >= 1, N, {max(indices) + 1}+, 3)")
    uvd = uvd[0][:, list(indices)]  # camera 1
    bad = ~np.isfinite(uvd).all(axis=(1, 2))
    if bad.any():
        raise DatasetError(path, f"frame {int(np.argmax(bad)) + 1}: nan or inf in joint_uvd")
    folder = path.parent if split.image_dir is None else root / split.image_dir
    files = tuple(folder / f"depth_1_{index:07d}.png" for index in range(1, len(uvd) + 1))
    frames = np.arange(1, len(uvd) + 1)
    table = LabelTable(files, uvd, (path,), np.zeros(len(uvd), dtype=np.int64), frames)
    _check_frames_exist(table.files, table.sources, table.source_index, table.lines)
    return table


_MAT_TYPES = {"O": "MATLAB cell array", "U": "MATLAB char array (text)", "V": "MATLAB struct", "c": "complex array"}


def _numeric_mat_variable(path: Path, name: str, value: object) -> np.ndarray:
    """A MATLAB variable that must hold numbers, as float64; a cell, struct, text or sparse matrix is refused."""
    if not isinstance(value, np.ndarray):
        raise DatasetError(path, f"{name} is a {type(value).__name__}, expected a numeric array")
    if value.dtype.kind not in "iuf":
        found = _MAT_TYPES.get(value.dtype.kind, "non-numeric array")
        raise DatasetError(path, f"{name} is a {found} (dtype {value.dtype}), expected a numeric array")
    return value.astype(np.float64)


def _nyu_plan(split: SplitLayout, count: int) -> list[PlannedFrame]:
    (label_file,) = split.label_files
    folder = _image_folder(split, label_file)
    names = (f"depth_1_{index:07d}.png" for index in range(1, count + 1))
    return [PlannedFrame(label_file, name, f"{folder}/{name}") for name in names]


def _nyu_write(spec: DatasetSpec, root: Path, split: SplitLayout, frames: Sequence[PlannedFrame],
               uvd: np.ndarray) -> None:
    """``uvd``: (N, 36, 3) all source joints (or (N, J, 3) when the spec has no source joint set)."""
    import scipy.io

    uvd = np.asarray(uvd, dtype=np.float64)
    expected = len(spec.source_skeleton) if spec.source_skeleton else spec.num_joints
    if uvd.ndim != 3 or uvd.shape[1:] != (expected, 3):
        raise ValueError(f"NYU labels must be (N, {expected}, 3), got {uvd.shape}")
    (label_file,) = split.label_files
    path = root / label_file
    path.parent.mkdir(parents=True, exist_ok=True)
    xyz = spec.camera.uvd_to_xyz(uvd)
    scipy.io.savemat(path, {"joint_uvd": uvd[None], "joint_xyz": xyz[None]}, do_compression=False)


# --------------------------------------------------------------------------- MSRA

_MSRA_HEADER = 6


def load_msra_bin(path: Path, camera: Camera) -> np.ndarray:
    """(H, W) float32 depth mm from MSRA's .bin: header, then the box's depths; 0 outside the box."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(path, "missing frame") from None
    except OSError as error:
        raise DatasetError(path, f"cannot read frame: {error.strerror or error}") from None
    if len(raw) < 4 * _MSRA_HEADER:
        raise DatasetError(path, f"{len(raw)} bytes: too short for the 24-byte header (truncated?)")
    width, height, left, top, right, bottom = (int(x) for x in np.frombuffer(raw[:24], dtype="<u4"))
    if (width, height) != (camera.width_px, camera.height_px):
        raise DatasetError(path, f"header says {width}x{height}, expected {camera.width_px}x{camera.height_px}")
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise DatasetError(path, f"bounding box left {left} top {top} right {right} bottom {bottom} "
                                 "is not inside the image")
    count = (right - left) * (bottom - top)
    if len(raw) != 24 + 4 * count:
        raise DatasetError(path, f"{len(raw)} bytes, expected {24 + 4 * count} for a "
                                 f"{right - left}x{bottom - top} box (truncated?)")
    box = np.frombuffer(raw[24:], dtype="<f4").reshape(bottom - top, right - left)
    bad = ~np.isfinite(box)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise DatasetError(path, f"{int(bad.sum())} nan or inf depths in the box (first at u {left + col}, "
                                 f"v {top + row}), expected finite mm")
    depth = np.zeros((height, width), dtype=np.float32)
    depth[top:bottom, left:right] = box
    return depth


def save_msra_bin(path: Path, depth_mm: np.ndarray) -> None:
    """Write MSRA's .bin with the bounding box of the non-zero pixels (at least one pixel)."""
    depth = np.asarray(depth_mm, dtype=np.float32)
    rows, cols = np.nonzero(depth > 0)
    top, bottom = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 1)
    left, right = (int(cols.min()), int(cols.max()) + 1) if len(cols) else (0, 1)
    header = np.array([depth.shape[1], depth.shape[0], left, top, right, bottom], dtype="<u4")
    path.write_bytes(header.tobytes() + np.ascontiguousarray(depth[top:bottom, left:right], dtype="<f4").tobytes())


def _msra_read(spec: DatasetSpec, root: Path, split: SplitLayout) -> LabelTable:
    joints = spec.num_joints
    files: list[Path] = []
    blocks, source_index, lines, sources = [], [], [], []
    for number, relative in enumerate(split.label_files):
        path = _require_file(spec, root, split, relative)
        table = read_joint_table(path, num_joints=joints, named=False, header_lines=1,
                                 what=f"({joints} joints x x y z)", error=DatasetError)
        line, text = table.header[0] if table.header else (1, "")
        count = text.strip()
        if not count.isdigit():
            raise DatasetError(path, f"first line {count!r} should be the frame count", line=line)
        frames = len(table.joints)
        if frames != int(count):
            raise DatasetError(path, f"line {line} announces {count} frames, the file holds {frames}", line=line)
        xyz = table.joints * np.array([1.0, 1.0, -1.0])  # MSRA stores z negated
        blocks.append(spec.camera.xyz_to_uvd(xyz))
        files.extend(path.parent / f"{index:06d}_depth.bin" for index in range(frames))
        source_index.append(np.full(frames, number))
        lines.append(table.lines)
        sources.append(path)
    return _checked_table(files, blocks, sources, source_index, lines)


def _msra_plan(split: SplitLayout, count: int) -> list[PlannedFrame]:
    planned = []
    for label_file, index in _spread(split, count):
        name = f"{index:06d}_depth.bin"
        planned.append(PlannedFrame(label_file, name, f"{_image_folder(split, label_file)}/{name}"))
    return planned


def _msra_write(spec: DatasetSpec, root: Path, split: SplitLayout, frames: Sequence[PlannedFrame],
                uvd: np.ndarray) -> None:
    xyz = spec.camera.uvd_to_xyz(np.asarray(uvd, dtype=np.float64)) * np.array([1.0, 1.0, -1.0])
    rows = _format_rows(xyz, 6)
    for label_file in split.label_files:
        mine = [row for frame, row in zip(frames, rows, strict=True) if frame.label_file == label_file]
        path = root / label_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{len(mine)}\n" + "".join(row + "\n" for row in mine))


formats.add("icvl", DepthFormat("icvl", _icvl_read, load_png16, save_png16, _icvl_plan, _icvl_write))
formats.add("nyu", DepthFormat("nyu", _nyu_read, load_png_rgb, save_png_rgb, _nyu_plan, _nyu_write))
formats.add("msra", DepthFormat("msra", _msra_read, load_msra_bin, save_msra_bin, _msra_plan, _msra_write))


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class FrameIndex:
    """One split of a dataset on disk: frame files and labels, depth loaded on demand.

    ``uvd``: (N, J, 3) float64 labels in the spec's joint order (u, v px; d mm).
    Pickles cheaply (paths and arrays), so worker processes can load frames.
    """

    spec: DatasetSpec
    split: str
    root: Path
    labels: LabelTable

    def __len__(self) -> int:
        return len(self.labels.files)

    @property
    def files(self) -> tuple[Path, ...]:
        return self.labels.files

    @property
    def uvd(self) -> np.ndarray:
        return self.labels.uvd

    @property
    def xyz(self) -> np.ndarray:
        """(N, J, 3) world mm in the dataset's axis convention (see Camera)."""
        return self.spec.camera.uvd_to_xyz(self.labels.uvd)

    def where(self, index: int) -> str:
        """``label_file:line`` of frame ``index``, for messages."""
        source = self.labels.sources[int(self.labels.source_index[index])]
        return f"{source}:{int(self.labels.lines[index])}"

    def load_depth(self, index: int) -> np.ndarray:
        """(H, W) float32 depth of frame ``index`` in mm; 0 where the sensor has no reading."""
        assert self.spec.layout is not None
        decode = formats.get(self.spec.layout.format).load_depth
        try:
            return decode(self.labels.files[index], self.spec.camera)
        except DatasetError as error:
            raise DatasetError(error.path, f"{error.reason} (frame listed in {self.where(index)})") from None


def open_split(
    dataset: str | DatasetSpec, split: str, *, data_root: str | os.PathLike[str] | None = None
) -> FrameIndex:
    """Index split ``split`` ("train", "test", MSRA's "P0".."P8") of a dataset on disk.

    The root is ``data_root`` or the spec's environment variable (HPBENCH_ICVL_ROOT,
    HPBENCH_NYU_ROOT, HPBENCH_MSRA_ROOT, HPBENCH_SYNTH_ROOT). Label files are parsed
    and every listed frame is checked to exist; frames are decoded on demand by
    :meth:`FrameIndex.load_depth`. Raises :class:`DatasetError` naming what is
    missing or malformed and where it was expected.
    """
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    root = resolve_root(spec, data_root)
    assert spec.layout is not None
    try:
        layout = spec.layout.split(split)
    except KeyError as error:
        raise DatasetError(root, f"{spec.name}: {error.args[0]}") from None
    table = formats.get(spec.layout.format).read_labels(spec, root, layout)
    if len(table.files) == 0:
        raise DatasetError(table.sources[0] if table.sources else root, f"no frames in the {spec.name} {split} labels")
    return FrameIndex(spec=spec, split=split, root=root, labels=table)
