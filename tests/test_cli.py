"""The command line, as a user runs it: exit codes, one-line errors, no stack traces."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hpbench.cli import app

runner = CliRunner()


def test_help_does_not_import_heavy_libraries():
    code = "import sys, hpbench.cli; bad = {'torch', 'pandas', 'matplotlib'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ls_shows_models_with_card_fields():
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0, result.output
    assert "tinycnn" in result.output and "63,520 / 63,130" in result.output
    result = runner.invoke(app, ["ls", "mean*"])
    assert "meanpose" in result.output and "tinycnn" not in result.output


@pytest.mark.evaldata
def test_eval_prints_the_reference_numbers(eval_dir):
    result = runner.invoke(app, ["eval", str(eval_dir / "results/nyu/CVPR18_NYU_V2V_PoseNet.txt"), "--dataset", "nyu",
                                 "--eval-dir", str(eval_dir)])
    assert result.exit_code == 0, result.output
    assert "8.419" in result.output and "71.2" in result.output and "88.1" in result.output


@pytest.mark.evaldata
def test_eval_saves_rows_and_refuses_a_bad_file_in_one_line(eval_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(" ".join(["1"] * 42) + "\n" + " ".join(["1"] * 41) + " x\n")
    good = eval_dir / "results/icvl/CVPR18_ICVL_V2V_PoseNet.txt"
    result = runner.invoke(app, ["eval", str(good), str(bad), "--dataset", "nyu", "--save", str(tmp_path / "res")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"refused {bad}:2: column 42: 'x' is not a number" in result.output
    assert "48 values, expected 42 for nyu" in result.output
    assert not (tmp_path / "res").exists()
    result = runner.invoke(app, ["eval", str(good), "--save", str(tmp_path / "res")])
    assert result.exit_code == 0 and (tmp_path / "res/icvl/CVPR18_ICVL_V2V_PoseNet.csv").is_file()


def test_bad_option_values_fail_cleanly(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("1 2 3\n")
    result = runner.invoke(app, ["eval", str(path), "--dataset", "nyu", "--joint-order", "a,b"])
    assert result.exit_code == 2 and "--joint-order must be" in result.output
    result = runner.invoke(app, ["eval", str(path), "--dataset", "nyux"])
    assert result.exit_code == 1 and "unknown dataset 'nyux'; did you mean nyu" in result.output
    result = runner.invoke(app, ["eval", str(path), "--coords", "polar"])
    assert result.exit_code == 2


def test_eval_model_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["eval", "--model", "tinycnn"])
    assert result.exit_code == 2 and "--model needs --dataset" in result.output
    result = runner.invoke(app, ["eval"])
    assert result.exit_code == 2 and "give prediction files, or --model" in result.output
    result = runner.invoke(app, ["eval", "--model", "tinycnn", "--dataset", "synth", "--data-root", str(tmp_path)])
    assert result.exit_code == 2 and "ships no checkpoint for 'synth'" in result.output
    result = runner.invoke(app, ["eval", "--model", "tinycnn", "--dataset", "nyu", "--checkpoint",
                                 str(tmp_path / "missing.safetensors"), "--data-root", str(tmp_path)])
    assert result.exit_code == 2 and "missing.safetensors does not exist" in result.output
