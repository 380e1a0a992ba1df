"""The command line, as a user runs it: exit codes, one-line errors, no stack traces."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hpbench.cli import app

runner = CliRunner()


def test_help_does_not_import_heavy_libraries():
    code = "import sys, hpbench.cli; bad = {'torch', 'pandas', 'matplotlib'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ls_is_one_line_per_model_and_no_number_is_cut_at_80_columns():
    from hpbench import list_models
    from hpbench._render import compact, short_paper
    from hpbench.cards import load_card

    result = runner.invoke(app, ["ls"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = list_models()
    assert len(lines) == len(names) + 5  # title, top rule, header, header rule, bottom rule
    assert max(map(len, lines)) <= 80
    for name in names:
        card = load_card(name)
        (row,) = [line for line in lines if line.startswith(f"│ {name} ")]
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        assert cells[1] == "x".join(map(str, card.input_shape))
        assert cells[2] == " / ".join(compact(card.declared[d].params) for d in ("icvl", "nyu"))
        assert cells[3] == " / ".join(compact(card.declared[d].thop_macs) for d in ("icvl", "nyu"))
        assert "…" not in "".join(cells[:4])
        assert short_paper(card.paper).startswith(cells[4].rstrip("…"))
    assert "│ ours " in result.output and "Liu 2023" in result.output and "Rezaei 2023" in result.output
    result = runner.invoke(app, ["ls", "mean*"])
    assert "meanpose" in result.output and "tinycnn" not in result.output


def test_ls_name_prints_the_whole_card():
    from hpbench.cards import load_card

    card = load_card("tinycnn")
    result = runner.invoke(app, ["ls", "tinycnn"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert " ".join(card.summary.split()) in text and " ".join(card.paper.split()) in text
    assert "declared.icvl.params 63,520" in text and "declared.nyu.params 63,130" in text
    result = runner.invoke(app, ["ls", "tinycn"])
    assert result.exit_code == 2 and "tinycnn" in result.output and "Traceback" not in result.output


def test_compact_numbers_and_short_papers():
    from hpbench._render import compact, short_paper

    assert [compact(v) for v in (0, 48, 63_520, 181_819, 999_999, 1_282_505, 6.22e9)] == [
        "0", "48", "63.5k", "182k", "1M", "1.28M", "6.22G"]
    assert short_paper('Rezaei, Rastgoo & Athitsos, "TriHorn-Net: ...", Expert Systems with Applications 223 (2023)'
                       ) == "Rezaei 2023"
    assert short_paper('Fu Xiong, Boshen Zhang, "A2J: ...", ICCV 2019') == "Xiong 2019"
    assert short_paper('A2J head: Xiong et al., "A2J", ICCV 2019; ResNet-18: He et al., CVPR 2016') == "Xiong 2019"
    assert short_paper("none (hpbench reference model)") == "none (hpbench reference model)"


def test_plural():
    from hpbench._text import plural

    assert [plural(1, "epoch"), plural(2, "epoch"), plural(0, "worker"), plural(1, "worker")] == [
        "1 epoch", "2 epochs", "0 workers", "1 worker"]
    assert plural(2, "process", "processes") == "2 processes" and plural(1200, "frame") == "1,200 frames"


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


def test_throughput_measures_each_stage_of_the_data_pipeline():
    arguments = ["throughput", "--frames", "16", "--workers", "1", "--size", "32"]
    result = runner.invoke(app, arguments, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "synthesize (render + encode + write)" in result.output and "cached crops -> DataLoader" in result.output
    assert re.search(r"\d+ CPUs?, \d+ torch threads?, load average [\d.]+ before", result.output)
