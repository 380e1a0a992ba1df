"""ONNX export (hpbench.export): ONNX Runtime reproduces PyTorch, the CLI, and ORT latency in the profiler."""

from __future__ import annotations

import copy
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

import hpbench  # noqa: E402
from hpbench.cards import load_card  # noqa: E402
from hpbench.cli import app  # noqa: E402
from hpbench.export import (  # noqa: E402
    OnnxExportError,
    OnnxMismatchError,
    OnnxUnavailableError,
    check_onnx,
    example_input,
    export_onnx,
    faster_onnxruntime_session,
    onnxruntime_session,
    run_onnx,
    spins,
)
from hpbench.profile import ONNXRUNTIME, Runtime, profile_models  # noqa: E402
from hpbench.results import read_results  # noqa: E402

TOLERANCE = 1e-4  # the bar: crop px and normalized depth


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module", params=["ours", "trinet"])
def exported(request, tmp_path_factory):
    """(model, ONNX path, input shape) of a registered model at NYU joints, exported once per module."""
    torch.manual_seed(0)
    model = hpbench.create_model(request.param, dataset="nyu").eval()
    shape = load_card(request.param).input_shape
    path = export_onnx(model, example_input(shape), tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return model, path, shape


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(exported, batch):
    model, path, shape = exported
    example = example_input(shape, batch=batch, seed=batch)
    with torch.no_grad():
        expected = model(example).numpy()
    actual = run_onnx(onnxruntime_session(path), example)
    assert actual.shape == expected.shape == (batch, 14, 3)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)
    assert check_onnx(model, path, example, atol=TOLERANCE) == pytest.approx(np.abs(actual - expected).max())


def test_sessions_spin_by_default_and_sleep_when_told(exported):
    _, path, shape = exported
    assert spins(onnxruntime_session(path, threads=2))
    sleeping = onnxruntime_session(path, threads=2, spinning=False)
    assert not spins(sleeping)
    example = example_input(shape)
    np.testing.assert_array_equal(run_onnx(sleeping, example), run_onnx(onnxruntime_session(path, threads=2), example))


@pytest.mark.parametrize("spinning_ms, sleeping_ms, kept", [(14.0, 8.0, False), (6.3, 8.9, True), (7.0, 7.0, True)])
def test_the_faster_session_is_kept_and_said(exported, spinning_ms, sleeping_ms, kept):
    """Spinning on or off, whichever the clock (here a stand-in) finds faster; a tie keeps ONNX Runtime's
    default (spinning). Each session is timed in every round."""
    _, path, shape = exported
    timed = []

    def measure(session, calls):
        timed.append(spins(session))
        return (spinning_ms if spins(session) else sleeping_ms) / 1e3

    session, said = faster_onnxruntime_session(path, example_input(shape), threads=2, measure=measure)
    assert spins(session) is kept
    first, second = (spinning_ms, sleeping_ms) if kept else (sleeping_ms, spinning_ms)
    assert said == f"onnxruntime: intra-op spinning {'on' if kept else 'off'}, measured {first:.2f} vs {second:.2f} ms"
    assert timed.count(True) == timed.count(False) >= 2


def test_one_thread_has_nothing_to_spin(exported):
    _, path, shape = exported
    session, said = faster_onnxruntime_session(path, example_input(shape), threads=1,
                                               measure=lambda *_: pytest.fail("timed with one thread"))
    assert said == "" and spins(session)


def test_exported_graph_is_valid_with_a_symbolic_batch(exported):
    _, path, shape = exported
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    (depth,), (joints,) = proto.graph.input, proto.graph.output
    assert (depth.name, joints.name) == ("depth", "joints")
    dims = depth.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(shape)
    assert not list(path.parent.glob("*.tmp"))  # the temporary file was renamed, not left behind


def test_check_catches_a_model_that_differs_from_its_export(exported):
    model, path, shape = exported
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(p for p in changed.parameters() if p.ndim == 4).add_(0.5)
    with pytest.raises(OnnxMismatchError, match="differs from PyTorch by"):
        check_onnx(changed, path, example_input(shape))


def test_static_batch_export_fixes_the_batch(tmp_path):
    model = hpbench.create_model("tinycnn", dataset="icvl").eval()
    path = export_onnx(model, example_input((1, 128, 128)), tmp_path / "tiny.onnx", dynamic_batch=False)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert check_onnx(model, path, example_input((1, 128, 128))) <= TOLERANCE


@torch.library.custom_op("hpbench_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


@mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mystery(x)


def test_unexportable_model_names_the_op_and_leaves_no_file(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous export")
    with pytest.raises(OnnxExportError, match=r"Unexportable .*hpbench_test\.mystery"):
        export_onnx(Unexportable(), torch.zeros(1, 1, 8, 8), target)
    assert target.read_bytes() == b"previous export"  # atomic: the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_missing_onnx_packages_name_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    with pytest.raises(OnnxUnavailableError, match=re.escape("pip install 'hpbench[onnx]'")):
        onnxruntime_session(tmp_path / "any.onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(OnnxUnavailableError, match="onnxscript is not installed"):
        export_onnx(nn.Identity(), torch.zeros(1, 1, 8, 8), tmp_path / "x.onnx")
    profiles = profile_models(["meanpose"], dataset="icvl", rounds=1, min_run_time_s=0.05, throughput_batch=0,
                              fvcore=False, onnxruntime=True)
    assert ONNXRUNTIME not in profiles[0].latency
    assert any("onnxruntime latency skipped" in note and "hpbench[onnx]" in note for note in profiles[0].notes)


def test_cli_export_loads_the_checkpoint_and_reports_the_difference(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    trained = hpbench.create_model("tinycnn", dataset="nyu").eval()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    save_file(trained.state_dict(), tmp_path / "weights.safetensors")
    out = tmp_path / "models" / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", "--model", "tinycnn", "--format", "onnx", "--dataset", "nyu",
                                      "--checkpoint", str(tmp_path / "weights.safetensors"), "--out", str(out),
                                      "--threads", "1", "--min-time", "0.05"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    diffs = re.search(r"max \|onnxruntime - torch\| = (\S+) at batch 1, (\S+) at batch 3", result.output)
    assert diffs and max(float(diffs[1]), float(diffs[2].rstrip(","))) <= TOLERANCE
    assert re.search(r"torch +\d+\.\d+ ms", result.output) and re.search(r"onnxruntime +\d+\.\d+ ms", result.output)
    example = example_input((1, 128, 128))
    with torch.no_grad():
        expected = trained(example).numpy()
    np.testing.assert_allclose(run_onnx(onnxruntime_session(out), example), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--format", "tflite"], "Invalid value for '--format'"),
        (["--checkpoint", "missing.safetensors"], "missing.safetensors does not exist"),
        (["--model", "ourz"], "ours"),  # unknown name: close matches suggested
    ],
)
def test_cli_export_errors(tmp_path, arguments, message):
    arguments = ["export", "--model", "tinycnn", "--out", str(tmp_path / "x.onnx"), *arguments]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich may wrap long messages
    assert not (tmp_path / "x.onnx").exists()


def test_failed_export_is_a_note_not_an_error(monkeypatch):
    import hpbench.export

    def refuse(model, *args, **kwargs):
        raise OnnxExportError(f"{type(model).__name__} cannot be exported to ONNX (opset 18): unsupported operator(s) x")

    monkeypatch.setattr(hpbench.export, "export_onnx", refuse)
    (profile,) = profile_models(["meanpose"], dataset="icvl", rounds=1, min_run_time_s=0.05, throughput_batch=0,
                                fvcore=False, onnxruntime=True, runtimes=(Runtime.EAGER,))
    assert ONNXRUNTIME not in profile.latency and "cpu" in profile.latency
    assert profile.notes == ("onnxruntime latency skipped: MeanPose cannot be exported to ONNX (opset 18): "
                             "unsupported operator(s) x",)


def test_cli_profile_reports_onnxruntime_next_to_cpu(tmp_path):
    result = CliRunner().invoke(app, ["profile", "--models", "tinycnn,meanpose", "--reference", "tinycnn",
                                      "--dataset", "icvl", "--threads", "1", "--rounds", "2", "--min-time", "0.05",
                                      "--throughput-batch", "0", "--no-fvcore", "--onnxruntime",
                                      "--out", str(tmp_path / "profile.csv")])
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│ ")]
    assert [cells[1] for cells in rows if cells[0].removesuffix(" (!)") == "tinycnn" and len(cells) > 5] == [
        "eager", "eager fused", "onnxruntime"]
    assert re.search(r"meanpose: ONNX export, max \|onnxruntime - torch\| = ", result.output)
    rows = read_results([tmp_path / "profile.csv"])
    latency = rows[rows["metric"] == "latency_median"].set_index(["model", "runtime"])
    for model in ("tinycnn", "meanpose"):
        torch_row, ort_row = latency.loc[(model, "eager")], latency.loc[(model, "onnxruntime")]
        assert ort_row["value"] > 0 and "onnxruntime" in ort_row["counter"]  # the timing method names it
        assert "onnxruntime" not in torch_row["counter"]
        assert ort_row["device"] == torch_row["device"] and ort_row["device"].startswith("cpu: ")
        assert ort_row["threads"] == torch_row["threads"] == 1 and ort_row["batch"] == torch_row["batch"] == 1
    ort_rows = rows[rows["runtime"] == "onnxruntime"]
    assert {"latency_median", "latency_p10", "latency_p90", "throughput"} <= set(ort_rows["metric"])
    assert (ort_rows.loc[ort_rows["metric"] == "latency_spread", "n"] == 2).all()  # two interleaved rounds


def test_export_without_checkpoint_warns_and_writes_under_results(tmp_path, monkeypatch):
    """Issue 17: random initial weights are said loudly, and the default path is results/export/, not ./."""
    from pathlib import Path

    from hpbench.export import default_export_path, export_model

    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="no --checkpoint: exported tinycnn's random initial weights"):
        report = export_model("tinycnn", dataset="nyu", dynamic_batch=False, latency=False)
    assert report.path == default_export_path("tinycnn", "nyu") == Path("results/export/tinycnn-nyu.onnx")
    assert (tmp_path / report.path).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # nothing loose in the current folder
    assert len(report.warnings) == 1 and "random initial weights" in report.warnings[0]
