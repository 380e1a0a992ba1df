"""Issue 17: implausible predictions, comma-separated files, reports of huge errors, exports without weights.

Ground truth is a synthetic handpose-eval folder (ICVL's layout and frame count), so these run without the
real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hpbench.cli import app
from hpbench.data.specs import get_dataset
from hpbench.predictions import PredictionFileError
from hpbench.scoring import ReadOptions, load_ground_truth, score_file

runner = CliRunner()
ICVL = get_dataset("icvl")


@pytest.fixture()
def icvl_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray]:
    """A handpose-eval folder with synthetic ICVL test labels (1,596 frames); $HPBENCH_EVAL_DIR points at it."""
    rng = np.random.default_rng(0)
    frames = ICVL.num_test_frames or 1596
    uvd = np.empty((frames, ICVL.num_joints, 3))
    uvd[..., 0] = rng.uniform(100, 220, uvd.shape[:2])
    uvd[..., 1] = rng.uniform(60, 180, uvd.shape[:2])
    uvd[..., 2] = rng.uniform(300, 500, uvd.shape[:2])
    root = tmp_path / "eval"
    labels, names = root / ICVL.test_labels, root / ICVL.test_list
    labels.parent.mkdir(parents=True)
    np.savetxt(labels, uvd.reshape(frames, -1), fmt="%.3f")
    names.write_text("".join(f"test_seq_1/image_{i:04d}.png\n" for i in range(frames)))
    monkeypatch.setenv("HPBENCH_EVAL_DIR", str(root))
    return root, uvd


def _write(path: Path, uvd: np.ndarray, *, sep: str = " ") -> Path:
    path.write_text("".join(sep.join(f"{v:.6g}" for v in row) + "\n" for row in uvd.reshape(len(uvd), -1)))
    return path


def _eval(*args: str):
    return runner.invoke(app, ["eval", *args, "--dataset", "icvl"])


@pytest.mark.parametrize(("frame", "joint", "axis", "value", "what"), [
    (2, 3, 2, -12.0, "joint 4 depth -12 mm"),
    (0, 0, 2, 0.0, "joint 1 depth 0 mm"),
    (5, 1, 2, 20_000.0, "joint 2 depth 20000 mm"),
    (3, 7, 0, 5000.0, "joint 8 u 5000 px"),
    (4, 2, 1, -300.0, "joint 3 v -300 px"),
    (1, 0, 0, 1e30, "joint 1 u 1e+30 px"),
])
def test_implausible_values_are_refused_with_one_line(icvl_dir, tmp_path, frame, joint, axis, value, what):
    _, uvd = icvl_dir
    pred = uvd.copy()
    pred[frame, joint, axis] = value
    path = _write(tmp_path / "f.txt", pred)
    result = _eval(str(path))
    assert result.exit_code == 1, result.output
    assert f"f.txt:{frame + 1}: 1 implausible value (first: {what})" in result.output
    assert "pass --no-check to score as read" in result.output
    assert "--coords" not in result.output  # the misread check does not run on such a file
    assert _eval(str(path), "--no-check").exit_code == 0


def test_implausible_count_names_the_first_line(icvl_dir, tmp_path):
    _, uvd = icvl_dir
    pred = uvd.copy()
    pred[2, 3, 2] = -12.0
    pred[2, 5, 2] = -1.0
    pred[9, 0, 2] = -1.0
    with pytest.raises(PredictionFileError, match=r"f\.txt:3: 3 implausible values \(first: joint 4 depth -12 mm\)"):
        score_file(_write(tmp_path / "f.txt", pred), load_ground_truth(ICVL))


def test_xyz_depth_behind_the_camera_is_refused(icvl_dir, tmp_path):
    _, uvd = icvl_dir
    xyz = ICVL.camera.uvd_to_xyz(uvd)
    xyz[0, 0, 2] = -50.0
    path = _write(tmp_path / "f.txt", xyz)
    with pytest.raises(PredictionFileError, match=r"f\.txt:1: 1 implausible value \(first: joint 1 depth -50 mm\)"):
        score_file(path, load_ground_truth(ICVL), ReadOptions(coords="xyz"))


@pytest.mark.parametrize("token", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_values_are_refused_even_with_no_check(icvl_dir, tmp_path, token):
    _, uvd = icvl_dir
    path = _write(tmp_path / "f.txt", uvd)
    lines = path.read_text().splitlines()
    values = lines[3].split()
    values[4] = token
    lines[3] = " ".join(values)
    path.write_text("\n".join(lines) + "\n")
    for extra in ((), ("--no-check",)):
        result = _eval(str(path), *extra)
        assert result.exit_code == 1, result.output
        assert "f.txt:4:" in result.output and "non-finite" in result.output


@pytest.mark.parametrize("sep", [",", ";", ", "])
def test_comma_or_semicolon_separated_file_names_the_separator(icvl_dir, tmp_path, sep):
    _, uvd = icvl_dir
    path = _write(tmp_path / "f.txt", uvd, sep=sep)
    result = _eval(str(path))
    assert result.exit_code == 1, result.output
    assert f"f.txt:1: values separated by {sep.strip()!r}: expected whitespace-separated numbers" in result.output
    assert "0 values" not in result.output


def test_report_of_huge_errors_does_not_crash(icvl_dir, tmp_path):
    from hpbench.report import report_files

    _, uvd = icvl_dir
    good, huge = uvd + 3.0, uvd.copy()
    huge[0] = 1e200  # one line of 1e200: errors overflow to inf
    huge[1:] += 5.0
    files = [_write(tmp_path / "good.txt", good), _write(tmp_path / "huge.txt", huge)]
    out = tmp_path / "report"
    report = report_files(files, out, dataset="icvl", options=ReadOptions(check=False))
    assert not report.refused
    assert any(path.suffix in (".pdf", ".png", ".svg") for path in report.written)
    result = runner.invoke(app, ["report", *map(str, files), "--out", str(tmp_path / "cli"), "--dataset", "icvl",
                                 "--no-check"])
    assert result.exit_code == 0, result.output


def test_report_refuses_the_huge_file_by_default(icvl_dir, tmp_path):
    from hpbench.report import report_files

    _, uvd = icvl_dir
    huge = uvd.copy()
    huge[0] = 1e200
    files = [_write(tmp_path / "good.txt", uvd + 3.0), _write(tmp_path / "huge.txt", huge)]
    report = report_files(files, tmp_path / "report", dataset="icvl")
    assert len(report.refused) == 1 and "huge.txt:1: 48 implausible values" in report.refused[0]


def test_scoring_on_threads_keeps_the_files_order_rows_and_refusals(icvl_dir, tmp_path, monkeypatch):
    """collect reads and scores files on several threads; its rows, scores and refusals are those of one
    thread, in the files' order (a refusal between scored files stays where its file is)."""
    import hpbench.scoring as scoring

    _, uvd = icvl_dir
    rng = np.random.default_rng(1)
    files = []
    for index in range(7):
        noisy = uvd + rng.normal(0.0, 1.0 + index, uvd.shape)
        if index == 3:
            noisy[10, 2, 2] = -5.0  # implausible depth: refused
        files.append(_write(tmp_path / f"method{index}_icvl.txt", noisy))
    files.append(tmp_path / "nodataset.txt")
    _write(files[-1], uvd)  # no dataset in its name: refused
    found = {}
    for threads in (1, 3):
        monkeypatch.setattr(scoring, "SCORING_THREADS", threads)
        found[threads] = scoring.collect(files)
    one, many = found[1], found[3]
    assert [score.method for score in many.scores] == [f"method{i}_icvl" for i in (0, 1, 2, 4, 5, 6)]
    assert [score.method for score in one.scores] == [score.method for score in many.scores]
    assert len(many.refused) == 2 and "method3_icvl.txt" in many.refused[0] and "nodataset.txt" in many.refused[1]
    assert one.refused == many.refused
    assert one.rows.drop(columns="date").equals(many.rows.drop(columns="date"))  # date: when scored, to the second
    means = [float(s.errors_mm.mean()) for s in many.scores]
    assert means == sorted(means)  # noise grows with the file's index: each file kept its own score
