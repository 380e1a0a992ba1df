"""The profiler's counters pinned against hand computations, and honest timing on a shared machine."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import hpbench.latency
from hpbench.latency import Budget, Runtime, Target, parse_runtimes, significant, time_targets
from hpbench.profile import (
    count_macs,
    count_parameters,
    exact_macs,
    fvcore_macs,
    measure_latency,
    profile_models,
    profile_report,
    profile_rows,
    thop_macs,
    unused_parameters,
)


class MatmulAttention(nn.Module):
    """Tokens of a 16x16 grid attend to each other through functional matmuls."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)  # (B, C, N) each
        scores = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # (B, N, N)
        return (v @ scores.transpose(1, 2)).view(b, c, h, w)


# Hand computation at input 1 x 16 x 32 x 32 (MACs, no bias):
CONV = 16 * 32 * 3 * 3 * 32 * 32           # Conv2d 16->32 3x3 @32^2: 4,718,592
DECONV = 32 * 16 * 2 * 2 * 32 * 32          # ConvTranspose2d 32->16 k2 s2 on a 32^2 input: 2,097,152
DECONV_THOP = 16 * 64 * 64 * 32 * 2 * 2     # thop: output volume x (c_in k^2) = 4 x the true count
POOL_TO_16 = 0
QKV = 16 * 48 * 16 * 16                     # 1x1 conv 16 -> 48 on 16^2
ATTENTION = 2 * 256 * 256 * 16              # Q^T K and V S^T: N x N x C each


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.deconv = nn.ConvTranspose2d(32, 16, 2, stride=2, bias=False)
        self.pool = nn.AvgPool2d(4)
        self.attention = MatmulAttention(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.pool(self.deconv(self.conv(x))))


@pytest.fixture(scope="module")
def toy_counts():
    return count_macs(Toy(), torch.zeros(1, 16, 32, 32))


def test_exact_counter_matches_the_hand_count(toy_counts):
    assert toy_counts.exact == CONV + DECONV + QKV + ATTENTION
    assert toy_counts.exact_by_op["convolution"] == CONV + DECONV + QKV
    assert toy_counts.exact_by_op["bmm"] == ATTENTION


def test_thop_counts_deconv_by_output_volume_and_misses_matmul(toy_counts):
    pooled = 16 * 16 * 16  # thop's AvgPool2d: one per output element (plus kernel ops in some versions)
    assert toy_counts.thop - (CONV + DECONV_THOP + QKV) in range(0, 4 * pooled + 1)
    assert "thop counts transposed convs by output volume (k^d / s^d too many)" in toy_counts.notes
    assert toy_counts.disagree


def test_fvcore_counts_matmul_and_true_deconv(toy_counts):
    if toy_counts.fvcore is None:
        pytest.skip("fvcore not installed")
    assert toy_counts.fvcore == CONV + DECONV + QKV + ATTENTION
    assert "aten::softmax" in toy_counts.fvcore_skipped


def test_thop_misses_functional_matmul_note():
    counts = count_macs(MatmulAttention(16), torch.zeros(1, 16, 16, 16), fvcore=False)
    assert counts.thop == QKV and counts.exact == QKV + ATTENTION
    assert any("misses functional matmul" in note for note in counts.notes)


def test_cpu_sdpa_is_counted_exactly():
    class SDPA(nn.Module):
        def forward(self, x):
            return nn.functional.scaled_dot_product_attention(x, x, x)

    batch, heads, tokens, dim = 1, 2, 64, 16
    assert exact_macs(SDPA(), torch.zeros(batch, heads, tokens, dim)) == 2 * batch * heads * tokens * tokens * dim


def test_counters_do_not_touch_the_model():
    model = Toy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    thop_macs(model, torch.zeros(1, 16, 32, 32))
    fvcore_macs(model, torch.zeros(1, 16, 32, 32))
    assert set(model.state_dict()) == set(before)  # thop would add total_ops/total_params buffers
    assert model.training


class WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 3)
        self.unused = nn.Linear(10, 10)
        self.shared = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.shared(self.used(x)))


def test_parameters_and_unused_parameters():
    model = WithUnused()
    assert count_parameters(model) == (4 * 3 + 3) + (10 * 10 + 10) + (3 * 3 + 3)
    assert unused_parameters(model, torch.zeros(1, 4)) == ["unused.weight", "unused.bias"]
    model.unused.weight.requires_grad_(False)
    assert count_parameters(model) == (4 * 3 + 3) + 10 + (3 * 3 + 3)
    assert unused_parameters(nn.Linear(3, 3), torch.zeros(1, 4)) is None  # cannot run: unknown, not "none unused"


def test_latency_is_recorded_with_its_environment():
    threads_before = torch.get_num_threads()
    latency = measure_latency(nn.Conv2d(1, 8, 3), torch.zeros(2, 1, 64, 64), threads=1, min_run_time_s=0.1)
    assert torch.get_num_threads() == threads_before
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert latency.batch == 2 and latency.env.threads == 1 and latency.env.dtype == "float32"
    assert latency.env.torch == torch.__version__ and latency.env.device == "cpu" and latency.env.device_name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_latency_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no GPU"):
        measure_latency(nn.Linear(2, 2), torch.zeros(1, 2), device="cuda")


def test_runtimes_are_parsed_once_into_a_typed_tuple():
    assert parse_runtimes("eager, fused,onnx") == (Runtime.EAGER, Runtime.FUSED, Runtime.ONNX)
    assert parse_runtimes("torch.compile,eager,eager") == (Runtime.COMPILE, Runtime.EAGER)
    assert parse_runtimes("all") == tuple(Runtime)
    with pytest.raises(ValueError, match="unknown runtime.*tensorflow.*choose from"):
        parse_runtimes("eager,tensorflow")
    assert Runtime.FUSED.label == "eager fused" and Runtime.TENSORRT.unverified and not Runtime.EAGER.unverified


@pytest.mark.parametrize(("value", "uncertainty", "shown"), [
    (0.6, None, "0.60"),             # "0.6 samples/s, not 1"
    (0.6123, 0.05, "0.61"),
    (2050.06, 400.0, "2100"),        # +-400 ms: tens and units mean nothing
    (2050.06, 0.001, "2050"),        # at most four significant digits
    (12.3456, 0.01, "12.35"),
    (0.03, 5.0, "0.03"),             # at least one
    (1234567.0, None, "1200000"),
])
def test_figures_carry_the_digits_their_spread_allows(value, uncertainty, shown):
    assert significant(value, uncertainty) == shown


class _Clock:
    """A stand-in for the profiler's clock (``time.perf_counter``): it moves only when a fake call says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _target(name, durations_ms, runtime=Runtime.EAGER, clock=None):
    """A fake target whose calls sleep ``durations_ms(call index)`` (or, given a :class:`_Clock` the profiler
    reads, move it on by as much: no scheduling jitter); it counts its calls."""
    import time

    calls = []

    def step(batch):
        def call():
            calls.append(batch)
            seconds = durations_ms(len(calls)) * batch / 1000
            if clock is None:
                time.sleep(seconds)
            else:
                clock.now += seconds
        return call
    return Target(name, runtime, torch.device("cpu"), step, "sleep", threads=1), calls


def _quiet_machine(monkeypatch):
    counter = iter(range(0, 10**12, 10**6))
    monkeypatch.setattr(hpbench.latency, "_sched", lambda: (next(counter), 0))
    monkeypatch.setattr(hpbench.latency, "_load", lambda: 0.5)


def test_a_steady_target_is_reliable_with_its_samples_rounds_and_percentiles(monkeypatch):
    _quiet_machine(monkeypatch)
    # on the stand-in clock: a busy test machine's scheduling jitter cannot make the rounds differ
    clock = _Clock()
    monkeypatch.setattr(hpbench.latency, "time", clock)
    target, _ = _target("a", lambda i: 2.0, clock=clock)
    (timing,), notes = time_targets([target], Budget(seconds=0.5, samples=12, min_samples=4), sweep=False)
    assert timing.reliable and timing.samples == 12 and timing.rounds == 3 and not timing.repeated
    assert 1.9 < timing.p10_ms <= timing.median_ms <= timing.p90_ms < 30
    assert timing.spread is not None and timing.load == (0.5, 0.5) and timing.wait == 0.0 and notes == []
    assert timing.env.threads == 1 and timing.batch == 1 and timing.throughput == pytest.approx(1000 / timing.median_ms)


def test_contention_between_rounds_is_detected_repeated_once_and_flagged(monkeypatch):
    _quiet_machine(monkeypatch)
    rounds, measure_round = [], hpbench.latency._round
    monkeypatch.setattr(hpbench.latency, "_round", lambda *a, **k: (rounds.append(1), measure_round(*a, **k)))
    # calls are 5x slower from the second round on, of both attempts: the rounds disagree twice
    target, calls = _target("a", lambda i: 1.0 if len(rounds) in (0, 1, 4) else 5.0)
    (timing,), _ = time_targets([target], Budget(seconds=2.0, samples=12, min_samples=4), sweep=False)
    assert not timing.reliable and any(reason.startswith("rounds differ") for reason in timing.reasons)
    assert timing.repeated and len(rounds) == 6 and timing.rounds == 3


def test_waiting_for_a_cpu_and_load_make_a_figure_unreliable(monkeypatch):
    counter = iter(range(0, 10**12, 10**6))
    monkeypatch.setattr(hpbench.latency, "_sched", lambda: (next(counter), next(counter)))  # waits half the time
    monkeypatch.setattr(hpbench.latency, "_load", lambda: 0.5)
    (timing,), _ = time_targets([_target("a", lambda i: 1.0)[0]], Budget(seconds=0.3, samples=6, min_samples=2),
                                sweep=False)
    assert "waited for a CPU 50 %" in timing.reasons and timing.repeated
    monkeypatch.setattr(hpbench.latency, "_sched", lambda: None)  # no schedstat: the load average decides
    monkeypatch.setattr(hpbench.latency, "_load", lambda: 99.0)
    (timing,), _ = time_targets([_target("a", lambda i: 1.0)[0]], Budget(seconds=0.3, samples=6, min_samples=2),
                                sweep=False)
    assert timing.wait is None and any(reason.startswith("load 99.0 / ") for reason in timing.reasons)


def test_a_slow_model_stops_at_the_budget_says_so_and_skips_batches_that_do_not_fit(monkeypatch):
    _quiet_machine(monkeypatch)
    target, calls = _target("slow", lambda i: 60.0)
    timings, notes = time_targets([target], Budget(seconds=0.4, samples=30, min_samples=5))
    (timing,) = timings
    assert timing.samples < 5 and len(timing.reasons) == 1 and re.fullmatch(r"\d samples? < 5", timing.reasons[0])
    assert not timing.repeated  # a longer budget helps, repeating does not
    assert len(calls) < 10 and set(calls) == {1}
    assert any(note.startswith("slow, eager: batch 8 and larger not timed: one call takes about") for note in notes)


def test_the_sweep_times_larger_batches_that_fit(monkeypatch):
    _quiet_machine(monkeypatch)
    target, calls = _target("fast", lambda i: 0.02)
    timings, _ = time_targets([target], Budget(seconds=1.0, samples=5, min_samples=2, max_batch=32))
    assert [t.batch for t in timings] == [1, 8, 32] and {8, 32} <= set(calls)
    assert timings[2].throughput == pytest.approx(32_000 / timings[2].median_ms)


def test_variants_of_one_model_are_timed_in_the_same_rounds_and_the_fastest_is_kept(monkeypatch):
    """Two configurations of a model in one runtime (as ONNX Runtime's spinning and sleeping threads): both
    timed at batch 1, taking turns; the faster's timing and method stay, the sweep times only it, a note
    names both medians. A tie keeps the first."""
    _quiet_machine(monkeypatch)
    clock = _Clock()
    monkeypatch.setattr(hpbench.latency, "time", clock)
    (slow, slow_calls), (fast, fast_calls) = _target("a", lambda i: 3.0, clock=clock), _target("a", lambda i: 1.0,
                                                                                                clock=clock)
    slow.variant, slow.method, fast.variant, fast.method = "spinning on", "spin", "spinning off", "sleep"
    other, _ = _target("b", lambda i: 2.0, clock=clock)
    timings, notes = time_targets([slow, fast, other], Budget(seconds=0.6, samples=6, min_samples=2, max_batch=8))
    assert [(t.model, t.batch, t.method) for t in timings] == [("a", 1, "sleep"), ("a", 8, "sleep"),
                                                               ("b", 1, "sleep"), ("b", 8, "sleep")]
    assert timings[0].median_ms == pytest.approx(1.0)
    assert set(slow_calls) == {1} and 8 in fast_calls and slow_calls.count(1) >= 3
    assert notes == ["a, eager: spinning off kept, 1.00 ms against 3.00 ms spinning on "
                     "(batch 1, timed in the same rounds)"]
    first, second = _target("c", lambda i: 2.0, clock=clock)[0], _target("c", lambda i: 2.0, clock=clock)[0]
    first.variant, first.method, second.variant = "default", "kept", "other"
    timings, notes = time_targets([first, second], Budget(seconds=0.3, samples=3, min_samples=1), sweep=False)
    assert [t.method for t in timings] == ["kept"] and notes[0].startswith("c, eager: default kept, 2.00 ms")


def test_interleaved_rounds_alternate_targets_and_a_failure_is_a_note(monkeypatch):
    _quiet_machine(monkeypatch)
    order = []
    targets = []
    for name in ("a", "b"):
        target, _ = _target(name, lambda i: 0.5)
        inner = target.step
        target.step = lambda batch, inner=inner, name=name: (lambda: (order.append(name), inner(batch)()))
        targets.append(target)
    broken, _ = _target("c", lambda i: 0.5, runtime=Runtime.COMPILE)
    broken.step = lambda batch: (lambda: 1 / 0)
    timings, notes = time_targets([*targets, broken], Budget(seconds=0.3, samples=3, min_samples=1), sweep=False)
    assert [t.model for t in timings] == ["a", "b"]
    assert notes == ["c, torch.compile: does not compile: ZeroDivisionError: division by zero"]
    switches = sum(1 for x, y in zip(order, order[1:]) if x != y)
    assert switches >= 5  # a..b..a..b..a..b at least (warm-ups, then three rounds)


def test_profile_models_times_each_runtime_and_writes_tidy_rows():
    profiles = profile_models(["tinycnn", "meanpose"], dataset="icvl", budget=Budget(seconds=0.3, samples=5),
                              runtimes=(Runtime.EAGER, Runtime.FUSED, Runtime.CUDA_GRAPH), sweep=False, fvcore=False)
    tiny = profiles[0]
    assert tiny.params == tiny.declared_params == 63520 and tiny.unused == ()
    assert [t.runtime for t in tiny.timings] == [Runtime.EAGER, Runtime.FUSED]  # CUDA graphs: a GPU only
    assert set(tiny.latency) == {"cpu", "cpu eager fused"}
    assert any(note.startswith("fuse_for_inference: ") for note in tiny.notes)
    rows = profile_rows(profiles)
    macs = rows[(rows["model"] == "tinycnn") & (rows["metric"] == "macs")].set_index("counter")["value"]
    assert macs["thop"] == pytest.approx(tiny.macs.thop / 1e9) and set(macs.index) == {"thop", "exact"}
    latency = rows[(rows["model"] == "tinycnn") & (rows["metric"] == "latency_median")]
    assert latency["runtime"].tolist() == ["eager", "eager fused"]
    assert latency["device"].str.startswith("cpu: ").all()  # the device alone; the runtime has its column
    assert (latency["unit"] == "ms").all() and (latency["threads"] == torch.get_num_threads()).all()
    assert (latency["batch"] == 1).all() and latency["source"].str.match(r"^(reliable|unreliable: )").all()
    assert latency["n"].tolist() == [t.samples for t in tiny.timings]
    assert latency["value"].tolist() == pytest.approx([t.median_ms for t in tiny.timings])
    assert set(rows.loc[rows["model"] == "tinycnn", "metric"]) >= {"throughput", "peak_memory"}
    spread = rows[(rows["model"] == "tinycnn") & (rows["metric"] == "latency_spread")]
    assert len(spread) == sum(t.spread is not None for t in tiny.timings)  # one round (a slow call): no spread
    assert tiny.timings[0].peak_mb > 0.01  # its activations: 8 x 64^2 floats at least


def test_a_failing_fuse_or_compile_is_said_not_fatal(monkeypatch):
    import hpbench.fuse

    def refuse(model, example_input=None, **options):
        raise RuntimeError("cannot fold")

    monkeypatch.setattr(hpbench.fuse, "fuse_with_report", refuse)
    monkeypatch.setattr(torch, "compile", lambda model: (lambda x: (_ for _ in ()).throw(RuntimeError("no C++"))))
    (meanpose,) = profile_models(["meanpose"], dataset="icvl", budget=Budget(seconds=0.2, samples=3), sweep=False,
                                 runtimes=(Runtime.EAGER, Runtime.FUSED, Runtime.COMPILE), fvcore=False)
    assert [t.runtime for t in meanpose.timings] == [Runtime.EAGER]
    assert any(note.startswith("eager fused not timed") and "cannot fold" in note for note in meanpose.notes)
    assert "torch.compile: does not compile: RuntimeError: no C++" in meanpose.notes


def test_profile_report_puts_the_reference_first_and_states_what_it_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = profile_report(["meanpose", "tinycnn"], dataset="icvl", device="auto", reference="tinycnn",
                            budget=Budget(seconds=0.3, samples=5, rounds=1), runtimes=(Runtime.EAGER,), sweep=False,
                            fvcore=False, out=tmp_path / "p.csv")
    assert [row.model for row in report.costs] == ["tinycnn", "meanpose"]
    assert [(row.timing.model, row.timing.runtime) for row in report.timings] == [
        ("tinycnn", Runtime.EAGER), ("meanpose", Runtime.EAGER)]
    assert report.timings[0].ratio == 1.0 and report.timings[1].ratio > 0
    assert report.costs[0].params == 63520 and report.costs[1].fvcore_gmac is None
    assert report.warnings == ("no GPU: CUDA latency skipped on this machine",)
    assert report.notes[0].startswith("timing: ") and "up to 1 round " in report.notes[0]
    assert report.notes[1].startswith("machine: load ")
    assert all(any(note.startswith(f"(!) {t.model}, eager, batch 1: ") for note in report.notes)
               for t in report.unreliable)
    assert report.written == tmp_path / "p.csv" and (tmp_path / "p.csv").is_file()


def _table(output):
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│ ")]


def test_profile_cli_prints_runtimes_ratios_and_marks_unreliable_timing(tmp_path, monkeypatch):
    from hpbench.cli import app

    counter = iter(range(0, 10**12, 10**6))
    monkeypatch.setattr(hpbench.latency, "_sched", lambda: (next(counter), next(counter)))  # a busy machine
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(app, ["profile", "--models", "meanpose", "--reference", "tinycnn", "--budget", "0.3",
                                      "--runtimes", "eager,fused", "--throughput-batch", "0", "--no-fvcore",
                                      "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert "thread" in result.output and max(map(len, result.output.splitlines())) <= 120
    timing = {tuple(cells[:2]): cells for cells in _table(result.output) if len(cells) == 10}
    assert set(timing) == {("tinycnn (!)", "eager"), ("meanpose (!)", "eager"), ("tinycnn (!)", "eager fused"),
                           ("meanpose (!)", "eager fused")}
    assert timing["tinycnn (!)", "eager"][-1] == "1"  # the reference against itself
    assert re.search(r"\(!\) meanpose, eager, batch 1: .*waited for a CPU 50 % \(repeated once\)", result.output)
    assert (tmp_path / "p.csv").is_file()


def test_profile_cli_refuses_an_unknown_runtime():
    from hpbench.cli import app

    result = CliRunner().invoke(app, ["profile", "--models", "meanpose", "--runtimes", "eager,jax"])
    assert result.exit_code == 2 and "--runtimes: unknown runtime(s) jax" in result.output


def test_a_model_without_a_card_is_an_error_naming_the_card_file_not_a_guessed_input():
    from hpbench.cards import CardError
    from hpbench.models import create_model, models

    models.add("cardless-tiny", lambda *, num_joints=14: create_model("tinycnn", num_joints=num_joints))
    try:
        with pytest.raises(CardError, match=r"expected zoo/cardless-tiny\.toml"):
            profile_models(["cardless-tiny"], dataset="nyu", rounds=1, min_run_time_s=0.05, throughput_batch=0,
                           fvcore=False)
    finally:
        models._entries.pop("cardless-tiny")


def test_the_timing_table_fits_120_columns_with_honest_digits(monkeypatch, capsys):
    from hpbench._render_profile import show_profile
    from hpbench.latency import Environment, Timing
    from hpbench.profile import CostRow, ProfileReport, TimingRow

    costs = tuple(CostRow(model=name, params=12_345_678, thop_gmac=123.456, exact_gmac=98.765, fvcore_gmac=None,
                          disagree=True) for name in ("a2j@resnet18", "handfold"))
    env = Environment(device="cpu", device_name="Test CPU", torch="2.x", dtype="float32", threads=2)
    timings = tuple(TimingRow(Timing(
        model=cost.model, runtime=runtime, batch=1, samples=30, calls_per_sample=1, p10_ms=1200.01, median_ms=1234.56,
        p90_ms=1300.99, spread=0.123, rounds=3, load=(1.0, 1.0), cores=2, wait=0.0, peak_mb=123.4, env=env,
        method="m", reasons=("rounds differ 12 %",) if runtime is Runtime.FUSED else ()), ratio=1.5)
        for runtime in (Runtime.EAGER, Runtime.FUSED, Runtime.ONNX) for cost in costs)
    report = ProfileReport(dataset="nyu", reference="a2j@resnet18", budget=Budget(), runtimes=(Runtime.EAGER,),
                           profiles=(), costs=costs, timings=timings, notes=("a note",), warnings=())
    monkeypatch.setenv("COLUMNS", "120")
    show_profile(report)
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 120 and "…" not in out
    rows = [cells for cells in _table(out) if len(cells) == 10]
    # +-12 % between rounds: the median to the tens, 0.81 samples/s, not 1
    assert rows[0] == ["a2j@resnet18", "eager", "1", "1230", "1200-1300", "12 %", "30", "0.81", "120", "1"]
    assert rows[1][-1] == "1.5" and rows[3][:2] == ["handfold (!)", "eager fused"]
    assert "a2j@resnet18 (!)" in out and "12,345,678" in out and "123.456" in out


def test_precise_raises_samples_rounds_and_batches_and_budget_overrides_its_seconds(tmp_path):
    from hpbench.cli import app

    result = CliRunner().invoke(app, ["profile", "--models", "meanpose", "--reference", "meanpose", "--precise",
                                      "--budget", "0.2", "--runtimes", "eager", "--throughput-batch", "0",
                                      "--no-fvcore", "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "up to 5 rounds" in text and "budget 0.20 s per model and runtime" in text
    assert "200 samples at most, 30 at least; no batch sweep" in text
