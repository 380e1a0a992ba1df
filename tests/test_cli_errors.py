"""Every command's error paths (issue 17): a non-zero exit, one ``error:`` line naming the bad input, no
traceback; bad model specs refused before any work; read-only or full output folders named in one line, with
what was written before left whole.

The tests run as root, for whom a chmod-ed read-only folder is writable: :func:`read_only` simulates one by
making this process's writes under it fail with PermissionError as the kernel would, and a full disk is an
ENOSPC raised where hpbench.files.atomic_write renames its temporary file into place.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hpbench.files
from hpbench.cli import app
from hpbench.data.synth import ensure_synthetic
from hpbench.rundir import RunDir

runner = CliRunner()
FRAME = " ".join(["1"] * 48)  # one synth frame: 16 joints x (u, v, d)


def _error_line(result, *needles: str) -> str:
    """The one ``error:`` line of a failed command, holding each of ``needles``; no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return ensure_synthetic("synth", tmp_path_factory.mktemp("synth"), frames=16, test_frames=8, seed=3)


@pytest.fixture(autouse=True)
def _crop_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "crops"))


@pytest.fixture()
def read_only(monkeypatch):
    """``read_only(folder)`` makes ``folder`` (created) read-only for this process: opening a file under it
    for writing, creating one or making a folder raises PermissionError (EACCES), as for a non-root user."""
    folders: list[str] = []
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def denied(path) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        resolved = os.path.abspath(os.fspath(path))
        return any(resolved == folder or resolved.startswith(folder + os.sep) for folder in folders)

    def refuse(path) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def open_(file, mode="r", *args, **kwargs):
        if set(mode) & set("wax+") and denied(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and denied(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if denied(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    for module, name, value in ((builtins, "open", open_), (io, "open", open_), (os, "open", os_open),
                                (os, "mkdir", mkdir)):
        monkeypatch.setattr(module, name, value)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(os.path.abspath(folder))
        return folder

    return make


class _FullDisk:
    """hpbench.files' ``os``, whose ``replace`` into a file named ``name`` fails with ENOSPC (no file named, as
    a full disk's write error names none)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str):
        return getattr(os, attribute)

    def replace(self, source, target) -> None:
        if Path(target).name == self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.replace(source, target)


# --- each command's input errors (ls, eval, report and export are covered in test_cli.py, test_export.py) ----

@pytest.mark.parametrize("arguments, needles", [
    (["profile", "--models", "ourz"], ["unknown model 'ourz'", "did you mean ours"]),
    (["profile", "--models", "meanpose", "--reference", "tinycnn,ours"], ["--reference takes one model"]),
    (["synth", "--out", "{tmp}/s", "--dataset", "nyux"], ["nyux"]),
    (["throughput", "--dataset", "nyux", "--frames", "8"], ["nyux"]),
    (["train", "--model", "ours,trinet"], ["--model takes one model, got 2: ours, trinet"]),
    (["train", "--model", "tinycnn", "--device", "tpu"], ["--device must be cpu or cuda, got 'tpu'"]),
    (["sweep", "--models", "tinycnn", "--seeds", "0-x"], ["--seeds takes", "'0-x'"]),
    (["sweep", "--models", "tinycnn", "--datasets", "synth,nope"], ["unknown dataset 'nope'"]),
    (["run", "--models", "tinycnn", "--dataset", "nope"], ["unknown dataset 'nope'"]),
])
def test_each_command_fails_in_one_line_naming_the_bad_input(tmp_path, arguments, needles):
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    _error_line(runner.invoke(app, [*arguments, "--results", str(tmp_path / "results")]
                              if arguments[0] in ("train", "run", "sweep") else arguments), *needles)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("spec, needles", [
    ("a2j@nope", ["model 'a2j@nope': unknown backbone 'nope'", "or any timm model name"]),
    ("a2j@resnt18", ["unknown backbone 'resnt18'; did you mean resnet18"]),
    ("nohead@resnet18", ["model 'nohead@resnet18': unknown head 'nohead'", "registered: a2j"]),
    ("a2j@resnet34", ["model 'a2j@resnet34' has no card: expected zoo/a2j@resnet34.toml", "models with cards: a2j,"]),
])
def test_every_model_spec_is_checked_before_any_work(tmp_path, spec, needles):
    """`run --models ours,a2j@nope` used to train ours, then fail on a missing card."""
    result = runner.invoke(app, ["run", "--models", f"tinycnn,{spec}", "--results", str(tmp_path / "results"),
                                 "--reports", str(tmp_path / "reports")])
    _error_line(result, *needles)
    assert not (tmp_path / "results").exists() and not (tmp_path / "reports").exists()


# --- read-only and full output folders -----------------------------------------------------------------------

def test_train_and_run_into_a_read_only_results_folder_name_it(tmp_path, read_only):
    results = read_only(tmp_path / "results")
    for command in (["train", "--model", "tinycnn"], ["run", "--models", "tinycnn", "--no-floor"]):
        result = runner.invoke(app, [*command, "--results", str(results), "--reports", str(tmp_path / "reports")]
                               if command[0] == "run" else [*command, "--results", str(results)])
        _error_line(result, f"{results / 'synth' / 'tinycnn-s0'}: cannot write the run directory: Permission denied")
    assert list(results.iterdir()) == []


def test_run_into_a_read_only_reports_folder_keeps_the_results(tmp_path, synth_root, read_only):
    reports = read_only(tmp_path / "reports")
    result = runner.invoke(app, ["run", "--models", "meanpose", "--no-floor", "--epochs", "1", "--batch-size", "8",
                                 "--data-root", str(synth_root), "--no-profile", "--results", str(tmp_path / "results"),
                                 "--reports", str(reports)])
    _error_line(result, str(reports / "synth"), "Permission denied")
    assert (tmp_path / "results/synth/meanpose-s0/metrics.csv").is_file()


def _predictions_and_labels(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "labels.txt").write_text(f"{FRAME}\n{FRAME}\n")
    (tmp_path / "p.txt").write_text(f"{FRAME}\n{FRAME}\n")
    return tmp_path / "p.txt", tmp_path / "labels.txt"


def test_eval_save_and_report_into_a_read_only_folder_name_it(tmp_path, read_only):
    predictions, labels = _predictions_and_labels(tmp_path)
    rows = tmp_path / "rows"
    saved = runner.invoke(app, ["eval", str(predictions), "--dataset", "synth", "--labels", str(labels),
                                "--save", str(rows)])
    assert saved.exit_code == 0, saved.output
    folder = read_only(tmp_path / "ro")
    result = runner.invoke(app, ["eval", str(predictions), "--dataset", "synth", "--labels", str(labels),
                                 "--save", str(folder)])
    _error_line(result, f"{folder / 'synth' / 'p.csv'}: Permission denied")
    result = runner.invoke(app, ["report", str(rows / "synth" / "p.csv"), "--out", str(folder), "--format", "csv",
                                 "--no-figures"])
    _error_line(result, str(folder), "Permission denied")
    assert list(folder.iterdir()) == []


def test_a_full_disk_names_the_file_and_keeps_the_earlier_one_whole(tmp_path, monkeypatch):
    out = tmp_path / "profile.csv"
    out.write_text("model,metric,value\nearlier,params,1\n")
    monkeypatch.setattr(hpbench.files, "os", _FullDisk("profile.csv"))
    result = runner.invoke(app, ["profile", "--models", "meanpose", "--reference", "meanpose", "--rounds", "1",
                                 "--min-time", "0.05", "--throughput-batch", "0", "--no-fvcore", "--no-onnxruntime",
                                 "--out", str(out)])
    _error_line(result, f"{out}: No space left on device")
    assert out.read_text() == "model,metric,value\nearlier,params,1\n" and os.listdir(tmp_path) == ["profile.csv"]


def test_a_full_disk_during_a_resumed_evaluation_keeps_the_earlier_metrics(tmp_path, synth_root, monkeypatch):
    common = ["train", "--model", "meanpose", "--epochs", "1", "--batch-size", "8", "--data-root", str(synth_root),
              "--results", str(tmp_path / "results")]
    assert runner.invoke(app, common).exit_code == 0
    metrics = tmp_path / "results/synth/meanpose-s0/metrics.csv"
    before = metrics.read_bytes()
    monkeypatch.setattr(hpbench.files, "os", _FullDisk("metrics.csv"))
    _error_line(runner.invoke(app, [*common, "--resume"]), "No space left on device", str(metrics), "error.txt")
    assert metrics.read_bytes() == before
    assert not [p.name for p in metrics.parent.iterdir() if p.name.endswith(".tmp")]

    def no_room(self, text: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(RunDir, "record_failure", no_room)  # error.txt cannot be written either: still one line
    _error_line(runner.invoke(app, [*common, "--resume"]), str(metrics),
                f"(and {metrics.parent / 'error.txt'} could not be written: No space left on device)")
    assert metrics.read_bytes() == before

