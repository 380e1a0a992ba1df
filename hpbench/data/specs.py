"""Frozen specs of the hand pose datasets: camera, joints, on-disk layout, crop cube.

Facts from the datasets' papers and releases, the community's evaluation files
(xinghaochen/awesome-hand-pose-estimation, ``evaluation/``) and the baselines'
data loaders (DeepPrior++, V2V-PoseNet, A2J, TriHorn-Net). Everything a reader,
scorer, cropper, renderer or report needs to know about a dataset lives here, so
no code branches on a dataset's name.
"""

from __future__ import annotations

from dataclasses import dataclass


from hpbench.data.camera import Camera
from hpbench.registry import Registry

__all__ = ["DatasetSpec", "FrameRange", "Layout", "SplitLayout", "datasets", "get_dataset"]


@dataclass(frozen=True)
class FrameRange:
    """A named, contiguous block of test frames [start, stop) in label order."""

    name: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class SplitLayout:
    """Where one split lives below a dataset root.

    ``label_files``: label files relative to the root, read in this order (their
    frames are concatenated); ``image_dir``: the folder the label files' frame
    paths are relative to, None for each label file's own folder.
    """

    name: str
    label_files: tuple[str, ...]
    image_dir: str | None = None


@dataclass(frozen=True)
class Layout:
    """A dataset's on-disk format: ``format`` names a reader in
    ``hpbench.data.formats.formats`` (file parsing and depth decoding); ``splits``
    say where each split's files are."""

    format: str
    splits: tuple[SplitLayout, ...]
    description: str = ""

    def split(self, name: str) -> SplitLayout:
        """The split called ``name``; a KeyError lists the known splits."""
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"unknown split {name!r} (this layout has: {known})")


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark: its sensor, joint list, public test labels and on-disk layout.

    ``test_labels`` and ``test_list`` are paths relative to a handpose-eval folder
    (one line per test frame: J x (u px, v px, d mm), and the frame's file name).

    Fields used by the readers, cropping and the synthetic renderer:
    ``layout``: the on-disk format and splits; ``root_env``: environment variable
    naming the dataset root; ``cube_mm``: edge of the 3D crop cube around the hand
    centre where a protocol gives none (protocols may shrink it for blocks of frames:
    ``hpbench.data.cache.CropSettings``); ``source_joint_indices``: for each joint, its 0-based index in the
    label files when these hold more joints (NYU: 14 of 36); ``hand_range_mm``:
    depth range in which the hand is searched (centre of mass); ``no_reading_mm``:
    what the format stores where the sensor saw nothing within range (the
    synthetic writer's far background); ``skeleton``: for each joint, the point of
    the kinematic hand (``hpbench.data.hand.POINTS``) it corresponds to, and
    ``source_skeleton`` the same for every joint of the label files (NYU's 36);
    ``typical_hand_depth_mm``: hand distances in the real data (synthetic scenes);
    ``center_file``: a refined-centre file below the root that readers use by
    default, ``{split}`` standing for the split name (V2V-PoseNet's format: world
    ``x y z`` mm per line, this dataset's axis convention); ``synthetic``: rendered by
    ``hpbench.data.synth`` on demand when no root is given.
    """

    name: str
    title: str
    camera: Camera
    joint_names: tuple[str, ...]
    test_labels: str | None = None
    test_list: str | None = None
    num_test_frames: int | None = None
    test_ranges: tuple[FrameRange, ...] = ()
    layout: Layout | None = None
    root_env: str | None = None
    cube_mm: float = 280.0
    source_joint_indices: tuple[int, ...] | None = None
    hand_range_mm: tuple[float, float] = (10.0, 1500.0)
    typical_hand_depth_mm: tuple[float, float] = (250.0, 800.0)
    no_reading_mm: float = 0.0
    skeleton: tuple[str, ...] | None = None
    source_skeleton: tuple[str, ...] | None = None
    center_file: str | None = None
    synthetic: bool = False

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


def _fingers(parts: tuple[str, ...], fingers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{finger} {part}" for finger in fingers for part in parts)


def _finger_points(parts: tuple[str, ...], fingers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{finger}_{part}" for finger in fingers for part in parts)


# ICVL release: Training/labels.txt + Training/Depth/<seq>/image_XXXX.png;
# Testing/test_seq_{1,2}.txt + Testing/Depth/test_seq_{1,2}/image_XXXX.png.
ICVL_LAYOUT = Layout(
    format="icvl",
    splits=(
        SplitLayout("train", ("Training/labels.txt",), "Training/Depth"),
        SplitLayout("test", ("Testing/test_seq_1.txt", "Testing/test_seq_2.txt"), "Testing/Depth"),
    ),
    description="320x240 16-bit depth PNGs (mm); label lines 'path u1 v1 d1 ... u16 v16 d16'",
)

# NYU release: train/ and test/, each with joint_data.mat and depth_1_XXXXXXX.png (camera 1).
NYU_LAYOUT = Layout(
    format="nyu",
    splits=(
        SplitLayout("train", ("train/joint_data.mat",)),
        SplitLayout("test", ("test/joint_data.mat",)),
    ),
    description="per split joint_data.mat (joint_uvd, joint_xyz: kinect x N x 36 x 3) and depth_1_XXXXXXX.png, "
    "640x480 RGB with depth mm = G * 256 + B",
)

MSRA_GESTURES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "I", "IP", "L", "MP", "RP", "T", "TIP", "Y")

# MSRA 2015: P0..P8/<gesture>/joint.txt + 000000_depth.bin ...; one split per subject.
MSRA_LAYOUT = Layout(
    format="msra",
    splits=tuple(
        SplitLayout(f"P{subject}", tuple(f"P{subject}/{gesture}/joint.txt" for gesture in MSRA_GESTURES))
        for subject in range(9)
    ),
    description="XXXXXX_depth.bin (6 uint32: width, height, left, top, right, bottom; float32 box depths); "
    "joint.txt: N, then N lines of 21 x (x y -z) mm",
)

# NYU's 36 joints: per finger (pinky, ring, middle, index, thumb) 6 points from the
# tip towards the palm, then 6 palm points; the 14 evaluation joints are 0, 3, ...
NYU_SOURCE_SKELETON = (
    _finger_points(("tip", "distal_mid", "dip", "pip", "proximal_mid", "mcp"), ("pinky", "ring", "middle", "index"))
    + _finger_points(("tip", "ip", "proximal_mid", "mcp", "metacarpal_mid", "cmc"), ("thumb",))
    + ("wrist_ulnar", "wrist_radial", "palm_centre", "palm_index", "palm_pinky", "wrist")
)

datasets: Registry[DatasetSpec] = Registry("dataset")

ICVL = datasets.add(
    "icvl",
    DatasetSpec(
        name="icvl",
        title="ICVL (Tang et al., CVPR 2014)",
        camera=Camera(fx=240.99, fy=240.96, cx=160.0, cy=120.0, width_px=320, height_px=240),
        joint_names=("palm",) + _fingers(("root", "mid", "tip"), ("thumb", "index", "middle", "ring", "pinky")),
        test_labels="groundtruth/icvl/icvl_test_groundtruth_label.txt",
        test_list="groundtruth/icvl/icvl_test_list.txt",
        num_test_frames=1596,
        test_ranges=(FrameRange("test_seq_1", 0, 702), FrameRange("test_seq_2", 702, 1596)),
        layout=ICVL_LAYOUT,
        root_env="HPBENCH_ICVL_ROOT",
        cube_mm=280.0,
        hand_range_mm=(10.0, 500.0),  # ICVL hands are the only thing nearer than 0.5 m (DeepPrior++)
        typical_hand_depth_mm=(250.0, 450.0),
        no_reading_mm=32001.0,
        # ICVL's root/mid/tip per finger: MCP, PIP (IP for the thumb), fingertip.
        skeleton=("palm_base",) + _finger_points(("mcp", "ip", "tip"), ("thumb",))
        + _finger_points(("mcp", "pip", "tip"), ("index", "middle", "ring", "pinky")),
    ),
)

NYU = datasets.add(
    "nyu",
    DatasetSpec(
        name="nyu",
        title="NYU (Tompson et al., TOG 2014), camera 1, 14 evaluation joints",
        camera=Camera(fx=588.03, fy=-587.07, cx=320.0, cy=240.0, width_px=640, height_px=480),
        joint_names=(
            "pinky tip", "pinky mid", "ring tip", "ring mid", "middle tip", "middle mid",
            "index tip", "index mid", "thumb tip", "thumb mid", "thumb root",
            "wrist back", "wrist", "palm",
        ),
        test_labels="groundtruth/nyu/nyu_test_groundtruth_label.txt",
        test_list="groundtruth/nyu/nyu_test_list.txt",
        num_test_frames=8252,
        layout=NYU_LAYOUT,
        root_env="HPBENCH_NYU_ROOT",
        cube_mm=280.0,
        source_joint_indices=(0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32),
        hand_range_mm=(10.0, 1500.0),
        typical_hand_depth_mm=(600.0, 1000.0),
        no_reading_mm=2001.0,  # the far background of the real frames
        skeleton=(
            "pinky_tip", "pinky_pip", "ring_tip", "ring_pip", "middle_tip", "middle_pip",
            "index_tip", "index_pip", "thumb_tip", "thumb_ip", "thumb_mcp",
            "wrist_ulnar", "wrist_radial", "palm_centre",
        ),
        source_skeleton=NYU_SOURCE_SKELETON,
    ),
)

MSRA = datasets.add(
    "msra",
    DatasetSpec(
        name="msra",
        title="MSRA hand gesture (Sun et al., CVPR 2015), leave-one-subject-out",
        # MSRA's joint.txt stores y up and z negated; the reader flips z, the camera keeps y up.
        camera=Camera(fx=241.42, fy=-241.42, cx=160.0, cy=120.0, width_px=320, height_px=240),
        joint_names=("wrist",)
        + _fingers(("mcp", "pip", "dip", "tip"), ("index", "middle", "ring", "pinky", "thumb")),
        layout=MSRA_LAYOUT,
        root_env="HPBENCH_MSRA_ROOT",
        cube_mm=200.0,
        hand_range_mm=(10.0, 1000.0),
        typical_hand_depth_mm=(250.0, 450.0),
        skeleton=("wrist",) + _finger_points(("mcp", "pip", "dip", "tip"), ("index", "middle", "ring", "pinky"))
        + ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"),
    ),
)

# The embedded default: synthetic hands rendered by hpbench.data.synth in ICVL's
# format and camera (320x240 frames: 4x fewer pixels than NYU to render, store and
# decode, and 16 joints including the knuckles), read by the ICVL reader.
SYNTH = datasets.add(
    "synth",
    DatasetSpec(
        name="synth",
        title="Synthetic capsule hands in ICVL's format and camera (hpbench synth)",
        camera=ICVL.camera,
        joint_names=ICVL.joint_names,
        layout=ICVL_LAYOUT,
        root_env="HPBENCH_SYNTH_ROOT",
        cube_mm=280.0,
        hand_range_mm=(10.0, 600.0),
        typical_hand_depth_mm=ICVL.typical_hand_depth_mm,
        no_reading_mm=ICVL.no_reading_mm,
        skeleton=ICVL.skeleton,
        center_file="center_{split}_refined.txt",
        synthetic=True,
    ),
)

SYNTH_NYU = datasets.add(
    "synth-nyu",
    DatasetSpec(
        name="synth-nyu",
        title="Synthetic capsule hands in NYU's format and camera (hpbench synth --dataset nyu)",
        camera=NYU.camera,
        joint_names=NYU.joint_names,
        layout=NYU_LAYOUT,
        root_env="HPBENCH_SYNTH_NYU_ROOT",
        cube_mm=280.0,
        source_joint_indices=NYU.source_joint_indices,
        hand_range_mm=NYU.hand_range_mm,
        typical_hand_depth_mm=NYU.typical_hand_depth_mm,
        no_reading_mm=NYU.no_reading_mm,
        skeleton=NYU.skeleton,
        source_skeleton=NYU.source_skeleton,
        center_file="center_{split}_refined.txt",
        synthetic=True,
    ),
)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (case-insensitive); close matches on a miss."""
    return datasets.get(name.lower())
