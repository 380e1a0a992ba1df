"""What the CLI prints, as a person reads it at 80 columns: external text exactly as written (no rich markup,
no emoji codes), numbers never cut, tables without a pandas index, help that wraps instead of cutting."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from hpbench._console import print_table, table
from hpbench.cli import app

runner = CliRunner()
FRAME = " ".join(["1"] * 48)  # one synth frame: 16 joints x (u, v, d)
NARROW = {"COLUMNS": "80"}


@pytest.fixture()
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text(f"{FRAME}\n{FRAME}\n")
    return path


def _predictions(path: Path, frames: int, bad_line: int) -> Path:
    """``frames`` lines of a synth prediction file whose line ``bad_line`` ends in the token '[/x]'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [FRAME] * frames
    lines[bad_line - 1] = " ".join(["1"] * 47) + " [/x]"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line", [1, 100, 1234])
@pytest.mark.parametrize("name", ["[bold]x[/bold].txt", "a:smile:b.txt"])  # '[bold]x[' holds 'bold].txt'
def test_a_refused_file_prints_its_name_line_and_token_as_written(tmp_path, labels, name, line):
    path = _predictions(tmp_path / name, max(line, 2), line)
    result = runner.invoke(app, ["eval", str(path), "--dataset", "synth", "--labels", str(labels)], env=NARROW)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"refused {path}:{line}: column 48: '[/x]' is not a number" in result.output


def test_an_error_prints_as_written(tmp_path):
    missing = tmp_path / "[red]:smile:[/]" / "run:100:.csv"
    result = runner.invoke(app, ["report", str(missing), "--out", str(tmp_path / "out")], env=NARROW)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: {missing} does not exist" in result.output


def test_table_cells_are_plain_text_and_numbers_are_never_cut():
    numbers = ["12345.678", "0.001", "987654321"]
    columns = [("method", "text"), ("mean error (mm)", "number"), ("AUC", "number"), ("params", "number")]
    out = Console(file=io.StringIO(), width=48, markup=False, emoji=False, highlight=False)
    print_table(out, table(columns, [["a long method name " * 3, *numbers]]))
    text = out.file.getvalue()
    assert all(number in text for number in numbers) and "…" not in text
    assert max(map(len, text.splitlines())) <= 48  # the method wraps instead
    out = Console(file=io.StringIO(), width=80, markup=False, emoji=False, highlight=False)
    print_table(out, table(columns, [["[bold]x[/bold] :smile: [/x]", *numbers]]))
    assert "[bold]x[/bold] :smile: [/x]" in out.file.getvalue()
    out = Console(file=io.StringIO(), width=20, markup=False, emoji=False, highlight=False)
    print_table(out, table([("a", "number"), ("b", "number"), ("c", "number")], [numbers]))
    assert all(number in out.file.getvalue() for number in numbers)  # wider than the console, never cut


def test_help_at_80_columns_wraps_and_keeps_every_option_and_default():
    result = runner.invoke(app, ["profile", "--help"], env=NARROW)
    assert result.exit_code == 0
    assert max(map(len, result.output.splitlines())) <= 80
    text = " ".join(result.output.split())
    for shown in ("--throughput-batch", "--no-onnxruntime", "[default: results/profile.csv]", "[default: 32; x>=0]"):
        assert shown in text


def test_the_command_list_fits_80_columns_uncut():
    result = runner.invoke(app, ["--help"], env=NARROW)
    lines = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    described = {words[0]: " ".join(words[1:]) for words in lines if words}
    for command in ("ls", "eval", "report", "profile", "synth", "throughput", "export"):
        assert described[command] and not described[command].endswith("...")


def _rows_file(tmp_path: Path) -> Path:
    """A results file of two methods on ICVL, as `hpbench eval --save` writes it."""
    from hpbench.data.specs import get_dataset
    from hpbench.results import write_results
    from hpbench.scoring import Score

    rng = np.random.default_rng(0)
    frames = [Score(method=f"method_{i}[x]", source=Path("p.txt"), dataset=get_dataset("icvl"),
                    errors_mm=rng.uniform(0, 30 + 10 * i, (50, 16)), frame_indices=np.arange(50), frames="all",
                    reading="uvd").rows() for i in range(2)]
    import pandas as pd

    path = tmp_path / "icvl.csv"
    write_results(pd.concat(frames, ignore_index=True), path)
    return path


def test_report_prints_a_table_without_index_and_writes_refused_txt(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", str(_rows_file(tmp_path)), str(bad), "--out", str(out), "--format",
                                 "markdown", "--no-figures"], env=NARROW)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # the table and the reproduction gap of the cards with a published ICVL error (markdown only)
    assert "icvl: 2 methods" in result.output and "wrote 3 files to" in result.output
    assert sorted(path.name for path in out.iterdir()) == ["icvl_reproduction.md", "icvl_table.md", "refused.txt"]
    body = [line for line in lines if line.startswith("│ method_")]
    assert [line.split("│")[1].strip() for line in body] == ["method_0[x]", "method_1[x]"]  # no index column
    assert all(re.fullmatch(r"\d+\.\d+", line.split("│")[2].strip()) for line in body)
    refused = (out / "refused.txt").read_text()
    assert refused.startswith(f"{bad}: cannot tell the dataset") and f"refused {bad}:" in result.output


@pytest.mark.evaldata
def test_eval_of_many_files_keeps_every_number_at_80_columns(eval_dir):
    files = sorted((eval_dir / "results/nyu").glob("*.txt"))
    result = runner.invoke(app, ["eval", *map(str, files), "--dataset", "nyu"], env=NARROW)
    lines = [line for line in result.output.splitlines() if line[:1] in "┏┃┡│└"]  # the table, not refusals
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    numbers = [cell.strip() for row in rows for cell in row[4:] if cell.strip()]
    assert len(numbers) >= 4 * 20 and all(re.fullmatch(r"\d+\.\d+", n) for n in numbers)
    assert "8.419" in numbers and not any("…" in line for line in lines) and max(map(len, lines)) <= 80


def _rich_output(monkeypatch) -> io.StringIO:
    """What rich's default console (the one progress bars draw on) writes, drawn as on a 120-column terminal."""
    import rich

    buffer = io.StringIO()
    monkeypatch.setattr(rich, "_console", Console(file=buffer, force_terminal=True, width=120))
    return buffer


def _tiny_frames(count: int) -> list[dict]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return [{"depth": torch.rand(1, 128, 128, generator=generator), "joints": torch.rand(16, 3, generator=generator),
             "visible": torch.ones(16)} for _ in range(count)]


def test_progress_bars_name_their_model_and_stage_as_written(monkeypatch, tmp_path):
    from hpbench.cards import Cosine
    from hpbench.evaluate import predict_crops
    from hpbench.models import create_model
    from hpbench.train import Recipe, train

    out = _rich_output(monkeypatch)
    model = create_model("tinycnn", num_joints=16)
    recipe = Recipe(optimizer="adam", lr=1e-3, batch_size=2, epochs=1, schedule=Cosine(), augment=False,
                    mixed_precision=False)
    train(model, _tiny_frames(4), recipe, checkpoint_dir=tmp_path, progress=True, name="tinycnn")
    assert "tinycnn: training epoch 1/1, loss " in out.getvalue()
    label = "[bold]x[/bold] :smile: evaluating on synth test"  # brackets and emoji codes stay text
    predict_crops(model, _tiny_frames(2), progress=True, label=label)
    assert label in out.getvalue()


def test_a_count_of_one_agrees_with_its_noun(tmp_path, labels):
    path = tmp_path / "one.txt"
    path.write_text(f"{FRAME}\n")
    result = runner.invoke(app, ["eval", str(path), "--dataset", "synth", "--labels", str(labels)], env=NARROW)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 line but the synth test set has 2 frames" in result.output


@pytest.mark.parametrize("command", ["train", "run"])
def test_bf16_is_refused_on_a_cpu_without_bfloat16_and_on_cuda(monkeypatch, tmp_path, command):
    import hpbench.hostinfo

    model = ["--model", "tinycnn"] if command == "train" else ["--models", "tinycnn"]
    monkeypatch.setattr(hpbench.hostinfo, "native_bf16", lambda: False)
    result = runner.invoke(app, [command, *model, "--bf16", "--results", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--bf16: this CPU has no bfloat16 instructions" in result.output, result.output
    assert not any(tmp_path.iterdir())  # refused before any work
    monkeypatch.setattr(hpbench.hostinfo, "native_bf16", lambda: True)
    monkeypatch.setattr("hpbench.cli_options.check_device", lambda device: None)  # as if a GPU were there
    result = runner.invoke(app, [command, *model, "--bf16", "--device", "cuda", "--results", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--bf16 is mixed precision on a CPU" in result.output, result.output


def test_a_run_refuses_bf16_on_its_own_cpu_before_any_work(monkeypatch, tmp_path):
    """A sweep's Slurm job is not checked where it is submitted: the run itself refuses --bf16 on a CPU
    without bfloat16 instructions, leaving nothing behind; a local sweep is refused at the command line."""
    import hpbench.hostinfo
    from hpbench.data.specs import get_dataset
    from hpbench.runner import RunSettings, run_one

    monkeypatch.setattr(hpbench.hostinfo, "native_bf16", lambda: False)
    outcome = run_one("tinycnn", get_dataset("synth"), 0, RunSettings(bf16=True), results_dir=tmp_path,
                      progress=False, echo=lambda text: None)
    assert outcome.refused and outcome.error.startswith("--bf16: this CPU has no bfloat16 instructions")
    assert not any(tmp_path.iterdir())
    result = runner.invoke(app, ["sweep", "--models", "tinycnn", "--bf16", "--results", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--bf16: this CPU has no bfloat16 instructions" in result.output, result.output
