"""Frozen specs of the hand pose datasets: camera, joints, test-set file layout.

Facts from the datasets' papers and the community's evaluation files
(xinghaochen/awesome-hand-pose-estimation, ``evaluation/``). Everything a reader,
scorer or report needs to know about a dataset lives here, so no code branches
on a dataset's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpbench.data.camera import Camera
from hpbench.registry import Registry

__all__ = ["DatasetSpec", "FrameRange", "datasets", "get_dataset"]


@dataclass(frozen=True)
class FrameRange:
    """A named, contiguous block of test frames [start, stop) in label order."""

    name: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark: its sensor, joint list and public test labels.

    ``test_labels`` and ``test_list`` are paths relative to a handpose-eval folder
    (one line per test frame: J x (u px, v px, d mm), and the frame's file name).
    """

    name: str
    title: str
    camera: Camera
    joint_names: tuple[str, ...]
    test_labels: str | None = None
    test_list: str | None = None
    num_test_frames: int | None = None
    test_ranges: tuple[FrameRange, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


def _fingers(parts: tuple[str, ...], fingers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{finger} {part}" for finger in fingers for part in parts)


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
    ),
)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (case-insensitive); close matches on a miss."""
    return datasets.get(name.lower())
