"""Scoring prediction files: the community's numbers on the real test sets, and refusals."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from hpbench.data.specs import get_dataset
from hpbench.predictions import PredictionFileError, write_prediction_file
from hpbench.scoring import GroundTruth, ReadOptions, collect_results, infer_dataset, load_ground_truth, score_file


def _noisy(gt: GroundTruth, sigma_mm: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return gt.xyz + rng.normal(0, sigma_mm, gt.xyz.shape)


# --- synthetic ground truth -------------------------------------------------------------


def test_uvd_and_xyz_files_of_one_prediction_score_the_same(tmp_path, small_icvl):
    xyz = _noisy(small_icvl, 5.0)
    camera = small_icvl.dataset.camera
    uvd_score = score_file(write_prediction_file(tmp_path / "a.txt", camera.xyz_to_uvd(xyz)), small_icvl)
    xyz_score = score_file(write_prediction_file(tmp_path / "b.txt", xyz), small_icvl)
    expected = np.linalg.norm(xyz - small_icvl.xyz, axis=-1).mean()
    assert uvd_score.mean_error_mm == pytest.approx(expected, abs=1e-4)
    assert xyz_score.mean_error_mm == pytest.approx(expected, abs=1e-4)
    assert uvd_score.reading.startswith("uvd") and xyz_score.reading.startswith("xyz")


def test_flipped_y_is_refused_with_the_option_that_fixes_it(tmp_path, small_icvl):
    xyz = _noisy(small_icvl, 3.0)
    xyz[..., 1] *= -1  # a y-up file for ICVL (y down)
    path = write_prediction_file(tmp_path / "flipped.txt", xyz)
    with pytest.raises(PredictionFileError, match="pass --y-axis up") as caught:
        score_file(path, small_icvl)
    assert "\n" not in str(caught.value)
    fixed = score_file(path, small_icvl, ReadOptions(y_axis="up"))
    assert fixed.mean_error_mm < 10
    as_read = score_file(path, small_icvl, ReadOptions(check=False))
    assert as_read.mean_error_mm > 50


def test_permuted_joints_are_refused_and_the_suggested_order_scores(tmp_path, small_icvl):
    xyz = _noisy(small_icvl, 2.0)
    permutation = np.random.default_rng(3).permutation(16)
    path = write_prediction_file(tmp_path / "perm.txt", xyz[:, permutation])
    with pytest.raises(PredictionFileError, match="--joint-order") as caught:
        score_file(path, small_icvl)
    order = tuple(int(i) for i in re.search(r"--joint-order ([\d,]+)", str(caught.value)).group(1).split(","))
    assert score_file(path, small_icvl, ReadOptions(joint_order=order)).mean_error_mm < 5
    with pytest.raises(PredictionFileError, match="each of the 16 joint indices"):
        score_file(path, small_icvl, ReadOptions(joint_order=(0,) * 16))


def test_frames_by_name_subset_and_explicit_ranges(tmp_path, small_icvl):
    xyz = _noisy(small_icvl, 4.0)
    uvd = small_icvl.dataset.camera.xyz_to_uvd(xyz)
    picked = [30, 2, 17]
    names = [small_icvl.names[i].replace("/", "\\") for i in picked]
    score = score_file(write_prediction_file(tmp_path / "named.txt", uvd[picked], names=names), small_icvl)
    np.testing.assert_array_equal(score.frame_indices, picked)
    assert score.frames == "3/40 (matched by file name)"
    expected = np.linalg.norm(xyz[picked] - small_icvl.xyz[picked], axis=-1).mean()
    assert score.mean_error_mm == pytest.approx(expected, abs=1e-4)

    ranged = write_prediction_file(tmp_path / "ranged.txt", uvd[5:15])
    with pytest.raises(PredictionFileError, match="10 lines but the icvl test set has 40 frames: pass --frames"):
        score_file(ranged, small_icvl)
    score = score_file(ranged, small_icvl, ReadOptions(frames="5:15"))
    np.testing.assert_array_equal(score.frame_indices, np.arange(5, 15))
    assert score.frames == "10/40 (5:15)"
    with pytest.raises(PredictionFileError, match="selects 12 frames"):
        score_file(ranged, small_icvl, ReadOptions(frames="5:17"))
    with pytest.raises(PredictionFileError, match="not 'all'"):
        score_file(ranged, small_icvl, ReadOptions(frames="five"))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["test_seq_1/image_0000.png", "nothere.png"], "'nothere.png' is not a icvl test frame"),
        (["image_0000.png", "image_0001.png"], "matches several test frames"),
        (["test_seq_1/image_0001.png", "test_seq_1\\image_0001.png"], "appears twice"),
    ],
)
def test_bad_frame_names_are_refused_on_their_line(tmp_path, small_icvl, names, message):
    path = write_prediction_file(tmp_path / "n.txt", small_icvl.uvd[:2], names=names)
    with pytest.raises(PredictionFileError, match=re.escape(message)) as caught:
        score_file(path, small_icvl)
    assert caught.value.line == 2 or "several" in message


def test_rows_carry_the_score(tmp_path, small_icvl):
    score = score_file(write_prediction_file(tmp_path / "m.txt", small_icvl.dataset.camera.xyz_to_uvd(_noisy(small_icvl, 8.0))), small_icvl)
    rows = score.rows()
    value = rows.set_index("metric")["value"]
    assert value["mean_error"] == pytest.approx(score.mean_error_mm)
    joints = rows[rows["metric"] == "joint_error"]
    assert list(joints["joint"]) == list(small_icvl.dataset.joint_names)
    assert joints["value"].mean() == pytest.approx(score.mean_error_mm)
    curve = rows[rows["metric"] == "success_rate_max"]
    assert len(curve) == 81 and curve["value"].is_monotonic_increasing
    at20 = curve.loc[curve["threshold_mm"] == 20, "value"].item()
    assert at20 == pytest.approx(score.success_rate(20))
    assert set(rows["model"]) == {"m"} and set(rows["n"]) == {40}


def test_records_are_made_on_the_scoring_threads_once_and_handed_out_as_copies(tmp_path, small_icvl, monkeypatch):
    """The report's scoring threads compute each file's records beside other files' parsing; later calls
    reuse them, and a caller that edits what it got cannot change what the next one gets."""
    import threading

    import hpbench.scoring as scoring

    made: list[str] = []
    original = scoring.metrics.success_rate

    def counted(*args, **kwargs):
        made.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring.metrics, "success_rate", counted)
    xyz = _noisy(small_icvl, 8.0)
    path = write_prediction_file(tmp_path / "icvl_m.txt", small_icvl.dataset.camera.xyz_to_uvd(xyz))
    with scoring._scores([path], None, ReadOptions(), (PredictionFileError,), lambda spec: small_icvl) as score_of:
        score = score_of(path)
    assert len(made) == 2 and all(name.startswith("hpbench-score") for name in made)  # the max and mean curves
    first = score.records()
    assert len(made) == 2  # not made again
    assert first[0]["metric"] == "mean_error"
    first[0]["value"] = -1.0
    assert score.records()[0]["value"] == pytest.approx(np.linalg.norm(xyz - small_icvl.xyz, axis=-1).mean(), abs=1e-4)


def test_infer_dataset_from_names(tmp_path):
    assert infer_dataset(Path("CVPR18_NYU_V2V_PoseNet.txt")).name == "nyu"
    assert infer_dataset(Path("results/icvl/CVPR14_LRF_Results.txt")).name == "icvl"
    with pytest.raises(PredictionFileError, match="pass --dataset"):
        infer_dataset(Path("preds/model.txt"))
    assert infer_dataset(Path("preds/model.txt"), "msra").name == "msra"


def test_missing_labels_say_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("HPBENCH_EVAL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is missing"):
        load_ground_truth(get_dataset("nyu"))
    with pytest.raises(FileNotFoundError, match="pass --labels"):
        load_ground_truth(get_dataset("msra"))


# --- the real test sets (../shared/handpose-eval) --------------------------------------


@pytest.mark.evaldata
@pytest.mark.parametrize(
    ("dataset", "file", "mean_mm", "within_20", "within_40"),
    [("icvl", "CVPR18_ICVL_V2V_PoseNet.txt", 6.284, None, None),
     ("nyu", "CVPR18_NYU_V2V_PoseNet.txt", 8.419, 0.712, 0.881)],
)
def test_reference_values_of_the_community_toolkit(eval_dir, dataset, file, mean_mm, within_20, within_40):
    gt = load_ground_truth(get_dataset(dataset), eval_dir=eval_dir)
    score = score_file(eval_dir / "results" / dataset / file, gt)
    assert round(score.mean_error_mm, 3) == mean_mm
    if within_20 is not None:
        assert round(score.success_rate(20), 3) == within_20
        assert round(score.success_rate(40), 3) == within_40


@pytest.mark.evaldata
@pytest.mark.parametrize("dataset", ["icvl", "nyu"])
def test_every_published_file_is_scored_or_refused_with_a_fix_that_works(eval_dir, dataset):
    gt = load_ground_truth(get_dataset(dataset), eval_dir=eval_dir)
    files = sorted((eval_dir / "results" / dataset).glob("*.txt"))
    assert len(files) >= 10
    scored = {}
    for path in files:
        try:
            scored[path.stem] = score_file(path, gt).mean_error_mm
        except PredictionFileError as error:
            hint = re.search(r"pass (--.*?) \(or --no-check", str(error))
            assert hint, f"refusal without an option to act on: {error}"
            argv = shlex.split(hint.group(1))
            options = dict(zip(argv[::2], argv[1::2], strict=True))
            fixed = ReadOptions(
                coords=options.get("--coords", "auto"), y_axis=options.get("--y-axis", "dataset"),
                joint_order=tuple(map(int, options["--joint-order"].split(","))) if "--joint-order" in options else None,
            )
            scored[path.stem] = score_file(path, gt, fixed).mean_error_mm
    assert all(2 < error < 25 for error in scored.values()), scored
    # the authors' original xyz outputs agree with the community's uvd conversions of them
    twins = [(a, a[: -len("_ori")]) for a in scored if a.endswith("_ori") and a[: -len("_ori")] in scored]
    assert twins
    for original, converted in twins:
        assert scored[original] == pytest.approx(scored[converted], abs=0.05)


@pytest.mark.evaldata
def test_icvl_prior_files_cover_sequence_one_only(eval_dir):
    gt = load_ground_truth(get_dataset("icvl"), eval_dir=eval_dir)
    score = score_file(eval_dir / "results/icvl/CVWW15_ICVL_Prior.txt", gt)
    assert score.frames == "702/1596 (test_seq_1, by line count)"
    np.testing.assert_array_equal(score.frame_indices, np.arange(702))


@pytest.mark.evaldata
def test_wrong_dataset_is_refused(eval_dir):
    gt = load_ground_truth(get_dataset("icvl"), eval_dir=eval_dir)
    with pytest.raises(PredictionFileError, match=r"42 values, expected 48 for icvl"):
        score_file(eval_dir / "results/nyu/CVPR18_NYU_V2V_PoseNet.txt", gt)


@pytest.mark.evaldata
def test_collect_results_over_folders(eval_dir, tmp_path):
    rows, refused = collect_results([eval_dir / "results" / "nyu"])
    assert len(refused) == 2 and all("pass --" in line for line in refused)
    assert rows["model"].nunique() == 24
    bad = tmp_path / "nyu_broken.txt"
    bad.write_text("1 2 3\n")
    rows, refused = collect_results([bad])
    assert rows.empty and "3 values, expected 42" in refused[0]


@pytest.mark.evaldata
def test_collect_scores_each_file_once_and_its_rows_are_the_scores(eval_dir, monkeypatch):
    import hpbench.scoring as scoring

    reads: list[str] = []
    original = scoring.read_prediction_file

    def counted(path, **options):
        reads.append(Path(path).name)
        return original(path, **options)

    monkeypatch.setattr(scoring, "read_prediction_file", counted)
    folder = eval_dir / "results" / "nyu"
    found = scoring.collect([folder / "CVPR18_NYU_V2V_PoseNet.txt", folder / "ArXiv_NYU_TriHorn_Net.txt"])
    assert sorted(reads) == sorted(["nyu_test_groundtruth_label.txt", "CVPR18_NYU_V2V_PoseNet.txt",
                                    "ArXiv_NYU_TriHorn_Net.txt"])  # labels once, each file once
    assert [score.method for score in found.scores] == ["CVPR18_NYU_V2V_PoseNet", "ArXiv_NYU_TriHorn_Net"]
    v2v = found.rows[(found.rows["model"] == "CVPR18_NYU_V2V_PoseNet") & (found.rows["metric"] == "mean_error")]
    assert v2v["value"].item() == found.scores[0].mean_error_mm == pytest.approx(8.419, abs=5e-4)
    import pandas as pd

    pd.testing.assert_frame_equal(found.rows.drop(columns="date"),
                                  pd.concat([s.rows() for s in found.scores], ignore_index=True).drop(columns="date"))


def test_min_cost_assignment_matches_scipy():
    from scipy.optimize import linear_sum_assignment

    from hpbench.scoring import min_cost_assignment

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 5, 14, 16, 21):
        for trial in range(40):
            cost = rng.uniform(0.0, 100.0, (size, size))
            if trial % 4 == 0:
                cost = np.round(cost / 25.0)  # ties
            assigned = min_cost_assignment(cost)
            assert sorted(assigned.tolist()) == list(range(size))
            rows, columns = linear_sum_assignment(cost)
            assert cost[np.arange(size), assigned].sum() == pytest.approx(cost[rows, columns].sum())
    with pytest.raises(ValueError, match="square"):
        min_cost_assignment(np.ones((2, 3)))
