"""hpbench.bench and ``hpbench bench``: structure and honesty only. No timed assertions: speed is
checked by ``hpbench bench`` itself, never here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hpbench.bench import (
    BAR_FLOOR, BAR_REPORT, BAR_SPEEDUP, BAR_TRAINING, FIRST_LOSS_TOLERANCE, MARKER_END, MARKER_START, Bar,
    BenchResult, GemmRate, InferenceRatios, Machine, ModelLatency, ReportVsPandas, SETUPS, SetupRate,
    TrainingThroughput, as_before, bars, bench_rows, gemm_macs, gemm_rate, mac_floor_ms, measured_setups,
    performance_table, replace_between_markers, report_vs_pandas, training_throughput, write_performance_table,
)
from hpbench.cli import app

QUIET = Machine(threads=2, cores=2, load=(0.5, 0.6), wait=0.01, cpu="test CPU")
BUSY = Machine(threads=2, cores=2, load=(6.0, 7.0), wait=0.4, cpu="test CPU")


def test_gemm_macs_by_hand():
    assert gemm_macs(2, 3, 4) == 24  # 2 x 3 outputs, 4 multiply-adds each
    assert gemm_macs(512, 512, 512) == 134_217_728


def test_gemm_rate_counts_its_shape(one_thread):
    rate = gemm_rate(1, shape=(64, 32, 16), seconds=0.01, samples=3)
    assert rate.shape == (64, 32, 16)
    assert rate.macs_per_call == 64 * 32 * 16
    assert rate.unit == "GMAC/s" and rate.samples == 3 and rate.calls_per_sample >= 1
    assert rate.p10 <= rate.gmac_per_s <= rate.p90 and rate.gmac_per_s > 0
    assert rate.machine.threads == 1 and rate.machine.cores >= 1


def test_mac_floor():
    assert mac_floor_ms(2.0, 100.0) == pytest.approx(20.0)  # 2 GMAC at 100 GMAC/s: 20 ms
    with pytest.raises(ValueError):
        mac_floor_ms(1.0, 0.0)


def test_machine_reasons_name_contention():
    assert QUIET.reasons == ()
    assert BUSY.reasons == ("waited for a CPU 40 %",)
    no_schedstat = dataclasses.replace(BUSY, wait=None)
    assert no_schedstat.reasons == ("load 7.0 / 2 cores",)


def test_bar_verdicts():
    assert Bar("a", 12.0, 10.0, ">=").verdict == "PASS"
    assert Bar("a", 9.0, 10.0, ">=").verdict == "MISS"
    assert Bar("a", 5.0, 4.0, "<=").verdict == "MISS"
    assert Bar("a", 1.2, None, ">=").verdict == "-"
    assert Bar("a", None, 3.0, "<=", skipped="why").verdict == "SKIPPED"
    assert Bar("a", 1.0, 10.0, ">=", goal=20.0).bar_text == ">= 10x (goal 20x)"


def _result(*, report: ReportVsPandas | None = None) -> BenchResult:
    """A run with hand-made numbers: every ratio below is computed by hand."""
    gemm = GemmRate(shape=(512, 512, 512), macs_per_call=gemm_macs(512, 512, 512), gmac_per_s=50.0, p10=48.0,
                    p90=52.0, samples=30, calls_per_sample=4, machine=QUIET)
    inference = InferenceRatios(
        models=("ours", "trinet"), runtimes=("eager", "eager fused"), threads=2,
        exact_gmac={"ours": 0.25, "trinet": 13.0}, thop_gmac={"ours": 0.26, "trinet": 13.47},
        latencies=(ModelLatency("ours", "eager", 12.0, 11.0, 13.0, 30, ()),
                   ModelLatency("trinet", "eager", 180.0, 170.0, 190.0, 30, ()),
                   ModelLatency("ours", "eager fused", 10.0, 9.0, 11.0, 30, ()),
                   ModelLatency("trinet", "eager fused", 150.0, 140.0, 160.0, 30, ("waited for a CPU 30 %",))),
        machine=QUIET)
    if report is None:
        report = ReportVsPandas(files=26, report_s=4.0, pandas_s=1.0, rounds=3, report_all_s=(4.0, 4.1, 4.2),
                                pandas_all_s=(1.0, 1.1, 1.0), tables_s=2.5, machine=QUIET)
    training = TrainingThroughput("ours", 8, 2, 2, setups=(SetupRate("before", 4.0, (4.0, 4.1, 3.9), 0.5, 0.4),
                                                           SetupRate("after", 9.0, (9.0, 9.1, 8.9), 0.5, 0.4),
                                                           SetupRate("bf16", 12.0, (12.0, 12.1, 11.9), 0.5, 0.4)),
                                  machine=QUIET)
    return BenchResult("ours", ("trinet",), 2, gemm, inference, report, training, seconds=100.0, date="2026-12-03")


def test_bars_are_the_ratios_by_hand():
    found = {bar.name: bar for bar in bars(_result())}
    fused = found["trinet / ours, eager fused, batch 1"]
    assert fused.value == pytest.approx(15.0) and fused.bar == BAR_SPEEDUP and fused.verdict == "PASS"
    assert fused.reasons == ("trinet: waited for a CPU 30 %",)  # contention is said, never hidden
    assert found["trinet / ours, eager, batch 1"].value == pytest.approx(15.0)
    assert found["trinet / ours, eager, batch 1"].bar is None  # the bar is on the fused runtime
    floor = found["ours best runtime / MAC floor"]  # best: fused 10 ms; floor 0.25 GMAC / 50 GMAC/s = 5 ms
    assert floor.value == pytest.approx(2.0) and floor.bar == BAR_FLOOR and floor.verdict == "PASS"
    report = found["hpbench report / pandas read"]
    assert report.value == pytest.approx(4.0) and report.bar == BAR_REPORT and report.verdict == "MISS"
    tables = found["hpbench report --no-figures / pandas read"]  # 2.5 s / 1 s
    assert tables.value == pytest.approx(2.5) and tables.bar == BAR_REPORT and tables.verdict == "PASS"
    training = found["training ours batch 8: after / before"]  # 9 / 4 crops/s
    assert training.value == pytest.approx(2.25) and training.bar == BAR_TRAINING == 2.0 and training.verdict == "PASS"
    bf16 = found["training ours batch 8: after with --bf16 / before"]  # 12 / 4 crops/s
    assert bf16.value == pytest.approx(3.0) and bf16.bar == BAR_TRAINING and bf16.verdict == "PASS"


def test_a_cpu_without_bfloat16_skips_its_bar_saying_why():
    result = _result()
    two = dataclasses.replace(result.training, setups=result.training.setups[:2])
    found = {bar.name: bar for bar in bars(dataclasses.replace(result, training=two))}
    bf16 = found["training ours batch 8: after with --bf16 / before"]
    assert bf16.value is None and bf16.verdict == "SKIPPED" and "no bfloat16 instructions" in bf16.skipped
    assert found["training ours batch 8: after / before"].verdict == "PASS"


def test_rows_carry_metrics_units_and_reliability():
    rows = bench_rows(_result())
    units = dict(zip(rows["metric"], rows["unit"], strict=False))
    assert units == {"gemm_rate": "GMAC/s", "macs": "GMAC", "mac_floor": "ms", "latency_median": "ms",
                     "report_time": "s", "pandas_read_time": "s", "train_throughput": "crops/s", "ratio": "x"}
    assert set(rows["split"]) == {"bench"} and set(rows["threads"]) == {2}
    latency = rows[rows["metric"] == "latency_median"]
    fused = latency[(latency["model"] == "trinet") & (latency["runtime"] == "eager fused")]
    assert fused["source"].item() == "unreliable: waited for a CPU 30 %"
    floor = rows[(rows["metric"] == "mac_floor") & (rows["model"] == "ours")]["value"].item()
    assert floor == pytest.approx(5.0)


def test_table_says_skips_and_unreliable():
    skipped = ReportVsPandas(files=0, skipped="report ratio skipped: no handpose-eval folder")
    table = performance_table(_result(report=skipped))
    assert "| hpbench report / pandas read | - | <= 3x | SKIPPED | report ratio skipped: no handpose-eval folder |" \
        in table
    assert "| trinet / ours, eager fused, batch 1 | 15x | >= 10x (goal 20x) | PASS (unreliable) |" in table
    assert "2 threads" in table and MARKER_START not in table


TEXT = f"# Title\n\nbefore  \r\n{MARKER_START}\nold table\n{MARKER_END}\nafter\ttabs\n\n"


def test_table_writer_replaces_only_between_markers(tmp_path: Path):
    new = replace_between_markers(TEXT, "| a |\n")
    head, tail = TEXT.split(MARKER_START)[0], TEXT.split(MARKER_END)[1]
    assert new == f"{head}{MARKER_START}\n| a |\n{MARKER_END}{tail}"
    assert replace_between_markers(new, "| a |\n") == new  # idempotent
    path = tmp_path / "README.md"
    path.write_bytes(TEXT.encode())
    assert write_performance_table(path, "| a |") is True
    assert write_performance_table(path, "| a |") is False
    assert path.read_bytes() == new.encode()


@pytest.mark.parametrize("text", ["no markers\n", f"{MARKER_END}\n{MARKER_START}\n",
                                  f"{MARKER_START}\n{MARKER_START}\n{MARKER_END}\n"])
def test_table_writer_refuses_bad_markers(text: str):
    with pytest.raises(ValueError, match="performance-table"):
        replace_between_markers(text, "x")


def test_missing_handpose_eval_is_a_stated_skip(tmp_path: Path):
    result = report_vs_pandas(eval_dir=tmp_path / "absent")
    assert result.ratio is None and result.report_s is None
    assert result.skipped.startswith("report ratio skipped:") and "absent" in result.skipped
    empty = tmp_path / "eval"
    (empty / "results" / "nyu").mkdir(parents=True)
    assert "no prediction files" in report_vs_pandas(eval_dir=empty).skipped
    assert "missing" in report_vs_pandas([tmp_path / "gone.txt"]).skipped


def test_training_setups_start_alike_in_their_own_processes():
    result = training_throughput("tinycnn", batch=2, steps=1, rounds=1, threads=1, seconds=0.0)
    assert tuple(rate.setup for rate in result.setups) == measured_setups(), result.skipped
    assert all(len(rate.rounds) == 1 and rate.unit == "crops/s" for rate in result.setups)
    first = result.setups[0].first_loss  # same weights, same batch: float32 to rounding, bfloat16 to its own
    for rate in result.setups:
        assert abs(rate.first_loss - first) <= FIRST_LOSS_TOLERANCE.get(rate.setup, 1e-4) * abs(first), rate
    assert "one round" in "; ".join(result.reasons)  # a single round is said
    unknown = training_throughput("no-such-model")  # the worker's failure comes back as words
    assert unknown.skipped.startswith("training throughput skipped: before:") and "no-such-model" in unknown.skipped


def test_the_before_setup_is_the_issues_model():
    import hpbench

    net = as_before(hpbench.create_model("ours", num_joints=14))
    assert net.channels_last is False
    ghosts = [m for m in net.modules() if hasattr(m, "dense_grad")]
    assert len(ghosts) > 10 and not any(m.dense_grad for m in ghosts)



def test_command_on_tiny_settings(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "bench.csv"
    result = CliRunner().invoke(app, [
        "bench", "--models", "tinycnn,meanpose", "--threads", "1", "--budget", "0.1", "--runtimes", "fused",
        "--eval-dir", str(tmp_path / "absent"), "--train-steps", "1", "--out", str(out), "--readme", str(readme),
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "meanpose / tinycnn, eager fused, batch 1:" in result.output
    assert "hpbench report / pandas read: -  bar <= 3x  SKIPPED  [report ratio skipped:" in result.output
    rows = pd.read_csv(out)
    assert {"gemm_rate", "macs", "mac_floor", "latency_median", "train_throughput", "ratio"} <= set(rows["metric"])
    assert "report_time" not in set(rows["metric"])  # skipped, not invented
    assert set(rows[rows["metric"] == "train_throughput"]["counter"]) == set(measured_setups())
    written = readme.read_bytes().decode("utf-8")
    assert written.startswith(TEXT.split(MARKER_START)[0]) and written.endswith(TEXT.split(MARKER_END)[1])
    assert "| tinycnn best runtime / MAC floor |" in written


def test_a_latency_below_its_floor_is_flagged():
    result = _result()
    fast = tuple(dataclasses.replace(t, median_ms=1.0) if t.model == "ours" else t
                 for t in result.inference.latencies)  # 1 ms < 0.25 GMAC / 50 GMAC/s = 5 ms: impossible
    result = dataclasses.replace(result, inference=dataclasses.replace(result.inference, latencies=fast))
    floor = next(bar for bar in bars(result) if bar.name == "ours best runtime / MAC floor")
    assert floor.value == pytest.approx(0.2)
    assert any("below the floor" in reason for reason in floor.reasons)


@pytest.mark.parametrize("arguments, needle", [
    (["--models", "ourz"], "unknown model 'ourz'"),
    (["--readme", "{tmp}/nowhere.md"], "nowhere.md does not exist"),
    (["--runtimes", "fast"], "unknown runtime"),
])
def test_bad_input_fails_before_measuring(tmp_path: Path, arguments: list[str], needle: str):
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    result = CliRunner().invoke(app, ["bench", *arguments], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and needle in result.output, result.output
    assert "GEMM" not in result.output


def test_training_setups_that_start_apart_are_flagged():
    def setups(first_after: float, last_after: float) -> TrainingThroughput:
        return TrainingThroughput("ours", 8, 5, 2, setups=(SetupRate("before", 4.0, (4.0, 4.0), 100.0, 80.0),
                                                           SetupRate("after", 8.0, (8.0, 8.0), first_after, last_after)),
                                  machine=QUIET)

    assert setups(100.0, 80.1).reasons == ()  # the same start; 0.1 % apart after training: rounding drift
    assert "first losses differ" in "; ".join(setups(100.1, 80.0).reasons)  # not the same model or batch
    assert "losses differ" in "; ".join(setups(100.0, 82.0).reasons)  # 2.5 % apart: more than drift
    assert setups(100.0, 82.0).loss_difference == pytest.approx(2.0 / 80.0)  # by hand: |82 - 80| / 80
    assert "first losses differ" in "; ".join(setups(100.05, 80.0).reasons)  # float32: 5e-4 is not rounding
    bf16 = dataclasses.replace(setups(100.0, 80.0), setups=setups(100.0, 80.0).setups + (
        SetupRate("bf16", 12.0, (12.0, 12.0), 100.05, 80.2),))
    assert bf16.reasons == ()  # bfloat16 rounds its first loss by up to 1e-3
    assert "first losses differ" in "; ".join(dataclasses.replace(bf16, setups=bf16.setups[:2] + (
        SetupRate("bf16", 12.0, (12.0, 12.0), 100.2, 80.2),)).reasons)  # 2e-3: beyond bfloat16's rounding


def test_a_worker_that_dies_silently_is_named():
    import multiprocessing

    from hpbench.bench import _ask

    ours, theirs = multiprocessing.Pipe()
    theirs.close()  # as when the worker is killed (out of memory) before it answers
    with pytest.raises(RuntimeError, match="after: its process ended without an answer"):
        _ask(ours, "after", timeout=5)


def test_bf16_is_measured_only_where_the_cpu_has_it(monkeypatch):
    import hpbench.hostinfo

    monkeypatch.setattr(hpbench.hostinfo, "native_bf16", lambda: False)
    assert measured_setups() == ("before", "after")
    monkeypatch.setattr(hpbench.hostinfo, "native_bf16", lambda: True)
    assert measured_setups() == SETUPS == ("before", "after", "bf16")
    with pytest.raises(ValueError, match="'before' first"):
        training_throughput("tinycnn", setups=("after", "before"))
