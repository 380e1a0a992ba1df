"""MSRA's leave-one-subject-out protocol (hpbench.loso) on a tiny synthetic MSRA-format dataset.

Expected values come from outside the code: the subject order P0..P8 and the gesture folders of
MSRA's layout, TriHorn-Net's per-subject cubes (design/protocols.md: P0-P2 200, P3-P5 180, P6 170,
P7 160, P8 150 mm), and the identity that a mean over all frames is the frame-weighted mean of the
folds' means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpbench.cards import CardError
from hpbench.data.cache import CropCache
from hpbench.data.specs import get_dataset
from hpbench.data.synth import synthesize_splits
from hpbench.loso import loso_protocol, run_loso, subject_crop
from hpbench.predictions import read_prediction_file
from hpbench.results import read_results
from hpbench.runner import RunSettings

MSRA = get_dataset("msra")
# Frames per subject, all different so that a frame-weighted mean differs from the folds' plain mean.
FRAMES = {"P0": 1, "P1": 2, "P2": 3, "P3": 1, "P4": 2, "P5": 1, "P6": 3, "P7": 2, "P8": 1}
# MSRA's first gesture folders in its release order; n frames of a subject land in the first n of them.
GESTURES = ("1", "2", "3")
TRIHORN_CUBES_MM = {"P0": 200, "P1": 200, "P2": 200, "P3": 180, "P4": 180, "P5": 180, "P6": 170, "P7": 160,
                    "P8": 150}


def _settings(root: Path, *, resume: bool = False) -> RunSettings:
    return RunSettings(quick=True, max_steps=1, batch_size=4, data_root=root, profile=False, threads=1,
                       resume=resume)


@pytest.fixture(scope="module")
def loso(tmp_path_factory):
    """tinycnn (TriHorn-Net's protocols), one step a fold: folds 0-3 (a run killed after them), then the
    whole run again with resume; returns both results, the results folder and the cache folder."""
    base = tmp_path_factory.mktemp("loso")
    root = synthesize_splits(MSRA, base / "msra", frames=FRAMES, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPBENCH_CACHE_DIR", str(base / "cache"))
        first = run_loso("tinycnn", MSRA, 0, _settings(root), results_dir=base / "results", folds=range(4),
                         progress=False, echo=lambda _: None)
        scored_after_first = first.run_dir.predictions.exists()
        stamps = {path: path.stat().st_mtime_ns for path in (base / "results").rglob("*") if path.is_file()}
        again = run_loso("tinycnn", MSRA, 0, _settings(root), results_dir=base / "results", progress=False,
                         echo=lambda _: None)
        second = run_loso("tinycnn", MSRA, 0, _settings(root, resume=True), results_dir=base / "results",
                          progress=False, echo=lambda _: None)
    return {"first": first, "scored_after_first": scored_after_first, "stamps": stamps, "again": again, "second": second, "cache": base / "cache"}


def test_a_killed_run_resumes_fold_by_fold_without_retraining(loso):
    first, second = loso["first"], loso["second"]
    assert first.error is None and first.score is None  # 4 of 9 folds: nothing scored yet
    assert [fold.subject for fold in first.folds] == ["P0", "P1", "P2", "P3"]
    assert not loso["scored_after_first"]
    assert second.error is None
    assert [(fold.subject, fold.trained) for fold in second.folds] == (
        [(f"P{k}", False) for k in range(4)] + [(f"P{k}", True) for k in range(4, 9)])
    # the finished folds' files (checkpoints, predictions, metrics) were not written again
    for path, stamp in loso["stamps"].items():
        assert path.stat().st_mtime_ns == stamp, path


def test_a_second_run_without_resume_is_refused_naming_the_folder(loso):
    again = loso["again"]
    assert again.refused and "\n" not in again.error
    assert "folds/P0" in again.error and "--resume" in again.error
    assert again.score is None


def test_concatenated_predictions_are_in_subject_then_label_order(loso):
    second = loso["second"]
    names = read_prediction_file(second.run_dir.predictions, num_joints=MSRA.num_joints).names
    assert list(names) == [f"P{s}/{gesture}/000000_depth.bin" for s in range(9)
                           for gesture in GESTURES[:FRAMES[f"P{s}"]]]
    joints = read_prediction_file(second.run_dir.predictions, num_joints=MSRA.num_joints).joints
    folds = [read_prediction_file(fold.run_dir.predictions, num_joints=MSRA.num_joints).joints
             for fold in second.folds]
    np.testing.assert_array_equal(joints, np.concatenate(folds))


def test_total_score_is_the_frame_weighted_mean_of_the_folds(loso):
    second = loso["second"]
    rows = read_results([second.run_dir.metrics])
    total = float(rows.loc[rows["metric"] == "mean_error", "value"].iloc[0])
    assert int(rows["n"].iloc[0]) == sum(FRAMES.values()) == 16
    means, counts = [], []
    for fold in second.folds:
        fold_rows = read_results([fold.run_dir.metrics])
        means.append(float(fold_rows.loc[fold_rows["metric"] == "mean_error", "value"].iloc[0]))
        counts.append(int(fold_rows["n"].iloc[0]))
        assert set(fold_rows["split"]) == {f"fold-{fold.subject}"}
    assert counts == list(FRAMES.values())
    weighted = sum(n * m for n, m in zip(counts, means)) / 16
    assert total == pytest.approx(weighted, abs=1e-4)
    assert second.mean_error_mm == pytest.approx(total, abs=1e-6)
    assert abs(weighted - np.mean(means)) > 1e-3  # the counts matter: the plain mean would be wrong


def test_each_subject_is_cropped_with_its_own_cube(loso):
    """TriHorn-Net's per-subject cubes: every cache the run built for subject Pk (its test frames and its
    training frames of the other folds) has depth half-extent cube(Pk) / 2."""
    halves: dict[str, set[float]] = {}
    for path in loso["cache"].glob("msra-P*.npy"):
        cache = CropCache.open(path)
        halves.setdefault(cache.split, set()).update(np.unique(cache.transform.depth_half_mm).tolist())
    assert halves == {subject: {cube / 2} for subject, cube in TRIHORN_CUBES_MM.items()}
    assert [fold.cube_mm for fold in loso["second"].folds] == list(TRIHORN_CUBES_MM.values())


def test_a_card_without_an_msra_protocol_is_refused_naming_it(tmp_path):
    with pytest.raises(CardError) as refused:
        run_loso("a2j", MSRA, 0, _settings(tmp_path), results_dir=tmp_path, progress=False)
    message = str(refused.value)
    assert "\n" not in message and "a2j" in message and "msra" in message
    assert not (tmp_path / "msra").exists()


def test_a_protocol_without_folds_is_not_leave_one_subject_out():
    with pytest.raises(ValueError, match="trinet.*not leave-one-subject-out"):
        loso_protocol("trinet", get_dataset("nyu"))
    assert loso_protocol("trinet", MSRA).frames.folds == 9


def test_hpbench_run_on_msra_runs_every_fold_and_refuses_a_card_without_an_msra_protocol(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hpbench.cli import app

    root = synthesize_splits(MSRA, tmp_path / "msra", frames=FRAMES, seed=1)
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["run", "--models", "tinycnn,a2j", "--dataset", "msra", "--data-root", str(root),
                                      "--quick", "--max-steps", "1", "--batch-size", "4", "--threads", "1",
                                      "--no-profile", "--no-floor", "--results", str(tmp_path / "results"),
                                      "--reports", str(tmp_path / "reports")], env={"COLUMNS": "250"})
    said = " ".join(result.output.split())
    # A2J has no MSRA code (protocols.md section 2): refused with its card's reason, the other model runs
    assert "a2j: not run: model 'a2j' has no protocol for 'msra'" in said
    assert "tinycnn: mean error" in said and "9 folds (P0..P8)" in said and "cube 150-200 mm" in said
    top = tmp_path / "results" / "msra" / "tinycnn-s0"
    assert sorted(path.name for path in (top / "folds").iterdir()) == [f"P{k}" for k in range(9)]
    lines = (top / "predictions.txt").read_text().splitlines()
    assert len(lines) == sum(FRAMES.values())  # every subject's frames, scored once
    rows = read_results([top / "metrics.csv"])
    assert set(rows["split"]) == {"test"}
    assert set(rows["protocol"]) == {"TriHorn-Net (MSRA)"} and set(rows["schedule"]) == {"quick"}
    # each fold records its protocol: the held-out subject's cube (P8: 150 mm), the other subjects' frames
    record = json.loads((top / "folds" / "P8" / "protocol.json").read_text())
    assert record["crop"]["lateral_mm"] == TRIHORN_CUBES_MM["P8"]
    assert record["train_frames"]["used"] == sum(FRAMES.values()) - FRAMES["P8"]
    assert record["test_frames"]["used"] == FRAMES["P8"]
    assert record["centres"][0]["source"] == "centre of mass (depth in 0-3000 mm)"  # TriHorn-Net's MSRA rule
    assert not (tmp_path / "results" / "msra" / "a2j-s0").exists() or not any(
        (tmp_path / "results" / "msra" / "a2j-s0").iterdir())
    # the report of the results folder reads the run's combined rows, not each fold's again
    report = CliRunner().invoke(app, ["report", str(tmp_path / "results" / "msra"), "--out", str(tmp_path / "r")],
                                env={"COLUMNS": "250"})
    assert report.exit_code == 0, report.output
    table = (tmp_path / "r" / "msra_table.csv").read_text()
    assert table.count("Tiny CNN") == 1


def test_v2v_reads_each_training_subject_from_its_span_of_the_per_fold_centre_file(tmp_path, monkeypatch):
    """V2V-PoseNet's MSRA fold k reads center_train_{k}_refined.txt: every training subject's frames in
    subject order (protocols.md section 3). With FRAMES, fold 0's file has 15 lines: P1 lines 1-2, P2 3-5, ...,
    P8 line 15; each subject's crops are centred on its own lines."""
    from hpbench.data.cache import open_protocol_cache

    root = synthesize_splits(MSRA, tmp_path / "msra", frames=FRAMES, seed=2)
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    protocol = loso_protocol("v2v", MSRA)
    train = [name for name in FRAMES if name != "P0"]
    # distinct world centres per line (x = line number, y = 0, z = 300 + line number mm)
    lines = np.array([[float(n), 0.0, 300.0 + n] for n in range(1, 16)])
    (root / "center_train_0_refined.txt").write_text("".join(f"{x} {y} {z}\n" for x, y, z in lines))
    first = 0
    for name in train:
        cache, choice = open_protocol_cache(MSRA, name, subject_crop(protocol, name), protocol.centers, role="train",
                                            fold=0, lines=(first, 15), data_root=root)
        assert choice.file is not None and choice.file.path.name == "center_train_0_refined.txt"
        # the centre depth is the line's z whichever way y points
        np.testing.assert_allclose(cache.transform.center_uvd[:, 2], lines[first:first + FRAMES[name], 2], atol=1e-3)
        first += FRAMES[name]
    assert first == 15
    # the run does the same: fold P0 of v2v reads all 15 lines, one span per training subject
    (root / "center_test_0_refined.txt").write_text("0 0 300\n")
    run = run_loso("v2v", MSRA, 0, _settings(root), results_dir=tmp_path / "results", folds=[0], progress=False,
                   echo=lambda _: None)
    assert run.error is None, run.error
    record = json.loads((run.run_dir.folds / "P0" / "protocol.json").read_text())
    assert record["centres"][0]["counts"] == {f"file {root / 'center_train_0_refined.txt'}": 15}
    assert record["centres"][1]["counts"] == {f"file {root / 'center_test_0_refined.txt'}": 1}
    with pytest.raises(Exception, match="15 centre lines for 16 frames"):
        open_protocol_cache(MSRA, "P1", subject_crop(protocol, "P1"), protocol.centers, role="train", fold=0,
                            lines=(0, 16), data_root=root)
