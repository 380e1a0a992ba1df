"""``hpbench bench``: the performance claims as ratios measured side by side in one run.

Absolute times on a shared 2-core machine drift +-20 % between runs (design/profiling.md); ratios of
things measured in one process, interleaved, do not. So every bar here is a ratio:

- inference: reference / candidate median latency at batch 1 within one runtime (trinet / ours), from
  the profiler's own interleaved timing (:func:`hpbench.profile.profile_models`), and the candidate's
  best-runtime latency against its MAC floor: its exact MACs (FlopCounterMode) divided by the GMAC/s
  of a plain matmul measured in the same run at the same thread count (:func:`gemm_rate`);
- the report: ``hpbench report``'s work (:func:`hpbench.report.report_files`, figures included) on the
  published prediction files against a plain ``pandas.read_csv`` of the same files, interleaved, best
  of N;
- training: crops/s of forward + backward + Adam step at batch 8 as the issue found it and as hpbench
  trains now (:data:`SETUPS`), one process each, taking turns, from the same seed and weights, with the
  first and last losses compared.

Each function takes a time budget, returns a frozen dataclass with its numbers, units and the
machine's state (threads, load, how long our threads waited for a CPU: /proc schedstat, as the
profiler reads it), and says why it skipped what it could not measure. Speed is checked here, never
by timed assertions in the test suite.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hpbench._text import plural
from hpbench.latency import MAX_SPREAD, MAX_WAIT, Budget, Runtime, _cpu_name, _load, _sched

__all__ = [
    "BAR_FLOOR", "BAR_REPORT", "BAR_SPEEDUP", "BAR_TRAINING", "BAR_SPEEDUP_GOAL", "MARKER_END", "MARKER_START", "Bar",
    "BenchResult", "FIRST_LOSS_TOLERANCE", "GemmRate", "InferenceRatios", "Machine", "ModelLatency", "ReportVsPandas",
    "SETUPS", "SetupRate", "TrainingThroughput", "as_before", "bars", "bench_rows", "default_runtimes", "gemm_macs",
    "gemm_rate", "inference_ratios", "mac_floor_ms", "measured_setups", "performance_table", "replace_between_markers",
    "report_vs_pandas",
    "run_bench", "training_throughput", "write_performance_table",
]

BAR_SPEEDUP, BAR_SPEEDUP_GOAL = 10.0, 20.0
"""Reference / candidate latency in eager PyTorch (fused), batch 1: the bar and the goal."""
BAR_FLOOR = 4.0
"""The candidate's best-runtime latency at most this many times its MAC floor."""
BAR_REPORT = 3.0
"""``hpbench report`` at most this many times a plain pandas read of the same files."""
BAR_TRAINING = 2.0
"""The candidate's training crops/s now ('after') at least this many times the issue's ('before')."""
MARKER_START, MARKER_END = "<!-- performance-table -->", "<!-- /performance-table -->"
"""The README's performance table lies between these lines."""


# --- the machine's state ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Machine:
    """What the machine did while something was measured: ``load`` (1-minute load average before, after)
    on ``cores``; ``wait``: share of our threads' runnable time spent waiting for a CPU (None: no
    schedstat)."""

    threads: int
    cores: int
    load: tuple[float, float]
    wait: float | None
    cpu: str = ""
    torch: str = torch.__version__

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why figures taken now are unreliable (contention), as the profiler words it; empty: quiet."""
        if self.wait is not None:
            return (f"waited for a CPU {100 * self.wait:.0f} %",) if self.wait > MAX_WAIT else ()
        busiest = max(self.load)
        return (f"load {busiest:.1f} / {self.cores} cores",) if busiest > self.cores + 0.5 else ()


class _Watch:
    """Load and schedstat from now on; :meth:`machine` closes the window."""

    def __init__(self, threads: int) -> None:
        self.threads, self.load, self.sched = threads, _load(), _sched()

    def machine(self) -> Machine:
        after, wait = _sched(), None
        if self.sched is not None and after is not None:
            cpu, waited = after[0] - self.sched[0], after[1] - self.sched[1]
            if cpu > 0 and waited >= 0:  # threads that ended meanwhile take their counts with them
                wait = waited / (cpu + waited)
        return Machine(self.threads, os.cpu_count() or 1, (self.load, _load()), wait, _cpu_name())


def _merge(machines: Sequence[Machine]) -> Machine:
    """One state for several windows: the load's range and the longest wait."""
    waits = [m.wait for m in machines if m.wait is not None]
    first = machines[0]
    return Machine(first.threads, first.cores, (min(m.load[0] for m in machines), max(m.load[1] for m in machines)),
                   max(waits) if waits else None, first.cpu, first.torch)


class _Threads:
    """torch's intra-op threads set for a block, restored after."""

    def __init__(self, threads: int) -> None:
        self.threads, self.previous = threads, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)


# --- GEMM rate and the MAC floor -------------------------------------------------------------------------

def gemm_macs(m: int, n: int, k: int) -> int:
    """Multiply-accumulates of an (m x k) @ (k x n) matmul: one per output element per k."""
    return m * n * k


@dataclass(frozen=True)
class GemmRate:
    """GMAC/s of a float32 matmul of ``shape`` (m, n, k) at ``threads``: median (p10, p90) over ``samples``
    samples, each long enough (``calls_per_sample`` calls) for the timer not to matter."""

    shape: tuple[int, int, int]
    macs_per_call: int
    gmac_per_s: float
    p10: float
    p90: float
    samples: int
    calls_per_sample: int
    machine: Machine
    unit: str = "GMAC/s"

    @property
    def reasons(self) -> tuple[str, ...]:
        spread = (self.p90 - self.p10) / self.gmac_per_s if self.gmac_per_s > 0 else 0.0
        return self.machine.reasons + ((f"p10-p90 = {100 * spread:.0f} % of median",) if spread > 0.3 else ())


def gemm_rate(threads: int = 2, *, shape: tuple[int, int, int] = (512, 512, 512), seconds: float = 3.0,
              samples: int = 30, seed: int = 0) -> GemmRate:
    """The machine's matmul rate at ``threads``: what a perfectly efficient model would reach. A 512^3
    float32 matmul (134 M MAC, a few ms) is the representative shape: large enough for the BLAS to run
    at its pace, small enough for many samples within ``seconds``."""
    m, n, k = shape
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.rand(m, k, generator=generator), torch.rand(k, n, generator=generator)
    out = torch.empty(m, n)
    macs = gemm_macs(m, n, k)
    with _Threads(threads), torch.inference_mode():
        for _ in range(3):
            torch.mm(a, b, out=out)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        calls = max(1, math.ceil(0.02 / max(time.perf_counter() - start, 1e-6)))  # samples of ~20 ms
        watch, rates, begin = _Watch(threads), [], time.perf_counter()
        while len(rates) < samples and (len(rates) < 3 or time.perf_counter() - begin < seconds):
            start = time.perf_counter()
            for _ in range(calls):
                torch.mm(a, b, out=out)
            rates.append(macs * calls / (time.perf_counter() - start) / 1e9)
    deciles = statistics.quantiles(rates, n=10)
    p10, p50, p90 = deciles[0], statistics.median(rates), deciles[-1]
    return GemmRate(shape=(m, n, k), macs_per_call=macs, gmac_per_s=p50, p10=p10, p90=p90, samples=len(rates),
                    calls_per_sample=calls, machine=watch.machine())


def mac_floor_ms(model_gmac: float, rate_gmac_per_s: float) -> float:
    """The least time ``model_gmac`` GMAC can take at ``rate_gmac_per_s``, in ms."""
    if rate_gmac_per_s <= 0:
        raise ValueError(f"a GEMM rate must be positive, got {rate_gmac_per_s}")
    return 1000.0 * model_gmac / rate_gmac_per_s


# --- inference: the profiler's timings, ratios within one runtime -----------------------------------------

@dataclass(frozen=True)
class ModelLatency:
    """One model's batch-1 latency in one runtime, from :func:`hpbench.profile.profile_models`."""

    model: str
    runtime: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int
    reasons: tuple[str, ...]
    unit: str = "ms"


@dataclass(frozen=True)
class InferenceRatios:
    """Batch-1 latencies of ``models`` in each runtime timed (interleaved, one process), their exact and thop
    GMAC, the machine's state over the timings, and what was not timed (``notes``)."""

    models: tuple[str, ...]
    runtimes: tuple[str, ...]
    threads: int
    exact_gmac: dict[str, float]
    thop_gmac: dict[str, float]
    latencies: tuple[ModelLatency, ...]
    machine: Machine | None
    notes: tuple[str, ...] = ()

    def latency(self, model: str, runtime: str) -> ModelLatency | None:
        return next((t for t in self.latencies if t.model == model and t.runtime == runtime), None)

    def ratio(self, slow: str, fast: str, runtime: str) -> float | None:
        """``slow``'s median over ``fast``'s in ``runtime`` (None: one of them not timed there)."""
        a, b = self.latency(slow, runtime), self.latency(fast, runtime)
        return None if a is None or b is None else a.median_ms / b.median_ms

    def best(self, model: str) -> ModelLatency | None:
        """``model``'s fastest runtime."""
        timed = [t for t in self.latencies if t.model == model]
        return min(timed, key=lambda t: t.median_ms) if timed else None


def default_runtimes() -> tuple[Runtime, ...]:
    """eager, eager fused, and ONNX Runtime when installed (its export alone takes 10-20 s per model:
    not spent when onnxruntime is absent). torch.compile is asked for by name (minutes for trinet)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return (Runtime.EAGER, Runtime.FUSED)
    return (Runtime.EAGER, Runtime.FUSED, Runtime.ONNX)


def inference_ratios(models: Sequence[str] = ("ours", "trinet"), runtimes: Sequence[Runtime] | None = None, *,
                     threads: int = 2, dataset: str = "nyu", seconds: float = 6.0,
                     progress: Callable[[str], None] | None = None) -> InferenceRatios:
    """Time ``models`` at batch 1 in ``runtimes`` (default :func:`default_runtimes`) with the profiler:
    ``seconds`` per model and runtime, rounds interleaved across models and runtimes, contention detected
    and a contended figure repeated once; no batch sweep, no fvcore."""
    from hpbench.profile import profile_models

    notes: list[str] = []
    chosen = list(default_runtimes() if runtimes is None else runtimes)
    if Runtime.ONNX in chosen and default_runtimes()[-1] is not Runtime.ONNX:
        chosen.remove(Runtime.ONNX)
        notes.append("onnxruntime not installed: ONNX Runtime not timed")
    profiles = profile_models(list(models), dataset=dataset, threads=threads, runtimes=chosen,
                              budget=Budget(seconds=seconds), sweep=False, fvcore=False, progress=progress)
    latencies, machines = [], []
    for profile in profiles:
        notes += [f"{profile.model}: {note}" for note in profile.notes]
        for t in profile.timings:
            if t.batch != 1:
                continue
            latencies.append(ModelLatency(t.model, t.runtime.label, t.median_ms, t.p10_ms, t.p90_ms, t.samples,
                                          t.reasons))
            machines.append(Machine(t.env.threads, t.cores, t.load, t.wait, t.env.device_name, t.env.torch))
    return InferenceRatios(
        models=tuple(models), runtimes=tuple(r.label for r in chosen), threads=threads,
        exact_gmac={p.model: p.macs.exact / 1e9 for p in profiles},
        thop_gmac={p.model: p.macs.thop / 1e9 for p in profiles},
        latencies=tuple(latencies), machine=_merge(machines) if machines else None, notes=tuple(notes))


# --- the report against a plain pandas read --------------------------------------------------------------

@dataclass(frozen=True)
class ReportVsPandas:
    """Best-of-``rounds`` seconds of :func:`hpbench.report.report_files` (tables and figures into a temporary
    folder) and of ``pandas.read_csv`` on the same ``files``, interleaved; ``skipped``: why not measured."""

    files: int
    report_s: float | None = None
    pandas_s: float | None = None
    rounds: int = 0
    refused: int = 0
    report_all_s: tuple[float, ...] = ()
    pandas_all_s: tuple[float, ...] = ()
    tables_s: float | None = None
    """Best-of-rounds seconds of the same report without figures (``hpbench report --no-figures``)."""
    machine: Machine | None = None
    skipped: str = ""
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        return None if self.report_s is None or not self.pandas_s else self.report_s / self.pandas_s

    @property
    def tables_ratio(self) -> float | None:
        """The report without figures over the pandas read."""
        return None if self.tables_s is None or not self.pandas_s else self.tables_s / self.pandas_s

    @property
    def reasons(self) -> tuple[str, ...]:
        said = self.machine.reasons if self.machine is not None else ()
        if self.rounds == 1:
            said += ("one round: best of 1",)
        elif len(self.report_all_s) > 1 and _spread(self.report_all_s) > MAX_SPREAD:
            said += (f"report rounds differ {100 * _spread(self.report_all_s):.0f} %",)
        return said


def _spread(values: Sequence[float]) -> float:
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle > 0 else 0.0


def published_files(eval_dir: str | os.PathLike[str] | None = None, dataset: str = "nyu") -> tuple[list[Path], str]:
    """The published prediction files of ``dataset`` in the handpose-eval folder, and '' or why there are none."""
    from hpbench.scoring import find_eval_dir

    try:
        folder = find_eval_dir(eval_dir)
    except FileNotFoundError as error:
        return [], f"report ratio skipped: {error}"
    if folder is None:
        return [], "report ratio skipped: no handpose-eval folder (--eval-dir, $HPBENCH_EVAL_DIR or ../shared)"
    files = sorted((folder / "results" / dataset).glob("*.txt"))
    if not files:
        return [], f"report ratio skipped: no prediction files in {folder / 'results' / dataset}"
    return files, ""


def _pandas_read(files: Sequence[Path]) -> int:
    import pandas as pd

    return sum(len(pd.read_csv(path, sep=r"\s+", header=None)) for path in files)


def report_vs_pandas(files: Sequence[Path] | None = None, *, eval_dir: str | os.PathLike[str] | None = None,
                     rounds: int = 3, seconds: float = 40.0, threads: int = 2,
                     progress: Callable[[str], None] | None = None) -> ReportVsPandas:
    """Time ``hpbench report``'s work on ``files`` (default: the NYU published predictions of the
    handpose-eval folder), with and without figures, against reading them with pandas, all in this process,
    interleaved (pandas, report, report without figures, pandas, ...), up to ``rounds`` rounds while
    ``seconds`` allow (one at least)."""
    from hpbench.report import report_files

    skipped = ""
    if files is None:
        files, skipped = published_files(eval_dir)
    if skipped:
        return ReportVsPandas(files=0, skipped=skipped)
    missing = [str(path) for path in files if not Path(path).is_file()]
    if missing or not files:
        return ReportVsPandas(files=len(files), skipped="report ratio skipped: " + (
            f"missing {', '.join(missing[:3])}" if missing else "no files given"))
    report_times, tables_times, pandas_times, refused, watches = [], [], [], 0, []
    begin = time.perf_counter()
    with _Threads(threads):
        for index in range(rounds):
            if progress:
                progress(f"report vs pandas, round {index + 1}/{rounds}: pandas.read_csv of {len(files)} files")
            watch = _Watch(threads)
            start = time.perf_counter()
            _pandas_read(files)
            pandas_times.append(time.perf_counter() - start)
            if progress:
                progress(f"report vs pandas, round {index + 1}/{rounds}: hpbench report of {len(files)} files")
            for figures, times in ((True, report_times), (False, tables_times)):
                with tempfile.TemporaryDirectory(prefix="hpbench-bench-report-") as folder:
                    start = time.perf_counter()
                    refused = len(report_files(list(files), Path(folder), figures=figures).refused)
                    times.append(time.perf_counter() - start)
            watches.append(watch.machine())
            one_round = time.perf_counter() - begin
            if time.perf_counter() - begin + one_round / (index + 1) > seconds:
                break
    return ReportVsPandas(files=len(files), report_s=min(report_times), pandas_s=min(pandas_times),
                          rounds=len(report_times), refused=refused, report_all_s=tuple(report_times),
                          pandas_all_s=tuple(pandas_times), tables_s=min(tables_times), machine=_merge(watches))


# --- training throughput: before and after -------------------------------------------------------------

SETUPS = ("before", "after", "bf16")
"""Training steps of the candidate as issue 16 found them, as hpbench runs them now, and as ``--bf16`` runs
them, each in a fresh spawned process (a C allocator's state cannot be reset within one):

- 'before': NCHW maps (``channels_last`` off where a model has the switch), torch.cat's strided channel
  gradients in Ghost modules (``dense_grad`` off), glibc's default allocator (an mmap per large block);
- 'after': the model as built (ours: channels_last maps, dense-gradient concatenation),
  :func:`hpbench.allocator.keep_freed_memory`, as the CLI applies it, and Adam fused as training builds it
  (:func:`hpbench.train.fused_adam`; 'before': torch's default, a loop over the tensors);
- 'bf16': 'after' with forward and loss under bfloat16 autocast (``--bf16``; weights, gradients and Adam
  float32), measured only on a CPU with bfloat16 instructions.

'before' undoes those four changes only, so it is a little faster than the code the issue measured:
18.2 against 17.0 crops/s for that code itself (commit d0cee6b), taking turns in one run (2026-12-03)."""


@dataclass(frozen=True)
class SetupRate:
    """Crops/s of one setup: the median over rounds of (batch x steps / seconds), each round's rate, the loss
    of its first step and of its last (the setups start from the same weights and batches: equal up to
    rounding)."""

    setup: str
    crops_per_s: float
    rounds: tuple[float, ...]
    first_loss: float
    last_loss: float
    unit: str = "crops/s"


@dataclass(frozen=True)
class TrainingThroughput:
    """Forward + backward + Adam step of ``model`` at ``batch``: the setups' rates ('before' first), their
    largest relative loss difference (first and last step), the machine's state; ``skipped``: why not
    measured. The first losses must agree to 1e-4 (same weights and batch); later ones drift apart as the
    gradients' summation order differs, within 1e-2 over ~50 steps (measured: 1.5e-3 after 46)."""

    model: str
    batch: int
    steps: int
    threads: int
    setups: tuple[SetupRate, ...] = ()
    machine: Machine | None = None
    method: str = ""
    skipped: str = ""

    def ratio(self, setup: str) -> float | None:
        """``setup``'s crops/s over 'before''s (None when either was not measured)."""
        rates = {rate.setup: rate.crops_per_s for rate in self.setups}
        return rates[setup] / rates["before"] if setup in rates and "before" in rates else None

    @property
    def loss_difference(self) -> float | None:
        """The largest difference from 'before' of a setup's first or last loss, relative to 'before''s."""
        if not self.setups:
            return None
        base = self.setups[0]
        pairs = [(r.first_loss, base.first_loss) for r in self.setups] + [(r.last_loss, base.last_loss)
                                                                          for r in self.setups]
        return max(abs(loss - reference) / (abs(reference) or 1.0) for loss, reference in pairs)

    @property
    def reasons(self) -> tuple[str, ...]:
        said = self.machine.reasons if self.machine is not None else ()
        for rate in self.setups:
            if len(rate.rounds) == 1:
                said += (f"{rate.setup}: one round",)
            elif _spread(rate.rounds) > MAX_SPREAD:
                said += (f"{rate.setup} rounds differ {100 * _spread(rate.rounds):.0f} %",)
        base = self.setups[0].first_loss if self.setups else 0.0
        apart = [rate for rate in self.setups
                 if abs(rate.first_loss - base) > FIRST_LOSS_TOLERANCE.get(rate.setup, 1e-4) * (abs(base) or 1.0)]
        if apart:
            said += ("setups' first losses differ: " + ", ".join(f"{rate.setup} {rate.first_loss:.6g}"
                                                                  for rate in self.setups),)
        elif self.loss_difference is not None and self.loss_difference > 1e-2:
            said += (f"setups' losses differ {self.loss_difference:.1e} (relative)",)
        return said


FIRST_LOSS_TOLERANCE = {"bf16": 1e-3}
"""How far a setup's first loss may lie from 'before''s, relative (others: 1e-4, float32's summation order):
bfloat16 keeps 8 bits of mantissa, so its first loss differs by rounding (6.5e-5 for ours on NYU's joints)."""


def _train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, depth: torch.Tensor,
                target: torch.Tensor, autocast: torch.dtype | None = None) -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        loss = net.loss(net.forward_train(depth), target)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def as_before(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` switched in place to the 'before' setup's model: NCHW maps, strided concatenation gradients."""
    for module in net.modules():
        if getattr(module, "channels_last", None) is True:
            module.channels_last = False
        if getattr(module, "dense_grad", None) is True:
            module.dense_grad = False
    return net


@dataclass(frozen=True)
class _TrainingJob:
    model: str
    dataset: str
    setup: str
    batch: int
    steps: int
    threads: int
    seed: int
    lr: float


def _training_worker(connection: Any, job: _TrainingJob) -> None:
    """One setup in its own process: ("first", loss), then per request (True) one round ("round", crops/s,
    last loss, on-CPU ns, waiting ns); None ends it. Failures come back as ("error", text)."""
    try:
        if job.setup != "before":
            from hpbench.allocator import keep_freed_memory

            keep_freed_memory()
        from hpbench.models import create_model
        from hpbench.train import fused_adam

        torch.set_num_threads(job.threads)
        torch.manual_seed(job.seed)
        net = create_model(job.model, dataset=job.dataset).train()
        if not any(p.requires_grad for p in net.parameters()):
            raise ValueError(f"{job.model} has no trainable parameters")
        if job.setup == "before":
            as_before(net)
        size, generator = net.input_size, torch.Generator().manual_seed(job.seed)
        depth = torch.rand(job.batch, 1, size, size, generator=generator) * 2 - 1
        target = torch.rand(job.batch, net.num_joints, 3, generator=generator) * torch.tensor([size, size, 2.0]) \
            - torch.tensor([0.0, 0.0, 1.0])
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=job.lr, fused=None if job.setup == "before" else fused_adam(params))
        autocast = torch.bfloat16 if job.setup == "bf16" else None
        connection.send(("first", _train_step(net, optimizer, depth, target, autocast)))
        while connection.recv():
            before, start = _sched(), time.perf_counter()
            for _ in range(job.steps):
                loss = _train_step(net, optimizer, depth, target, autocast)
            seconds, after = time.perf_counter() - start, _sched()
            cpu, waited = (after[0] - before[0], after[1] - before[1]) if before and after else (0, 0)
            connection.send(("round", job.batch * job.steps / seconds, loss, cpu, waited))
    except Exception as error:  # said by the parent, not fatal to the bench
        connection.send(("error", f"{type(error).__name__}: {error}"))


def _ask(connection: Any, setup: str, timeout: float = 600.0) -> tuple:
    """A worker's next answer; RuntimeError naming ``setup`` when it failed, ended or stayed silent."""
    if not connection.poll(timeout):
        raise RuntimeError(f"{setup}: no answer in {timeout:.0f} s")
    try:
        answer = connection.recv()
    except EOFError:  # killed (out of memory, a signal) before it could say why
        raise RuntimeError(f"{setup}: its process ended without an answer") from None
    if answer[0] == "error":
        raise RuntimeError(f"{setup}: {answer[1]}")
    return answer


def measured_setups() -> tuple[str, ...]:
    """:data:`SETUPS` this machine can measure: 'bf16' only on a CPU with bfloat16 instructions (or where that
    cannot be told)."""
    from hpbench.hostinfo import native_bf16

    return SETUPS if native_bf16() is not False else tuple(setup for setup in SETUPS if setup != "bf16")


def training_throughput(model: str = "ours", batch: int = 8, steps: int = 2, *, rounds: int = 3, threads: int = 2,
                        dataset: str = "nyu", seed: int = 0, lr: float = 1e-4, seconds: float = 60.0,
                        setups: Sequence[str] | None = None,
                        progress: Callable[[str], None] | None = None) -> TrainingThroughput:
    """Crops/s of ``model`` training at ``batch`` in each of ``setups`` (default :func:`measured_setups`;
    'before' first), each in its own spawned process, from the same seeded weights, batch and Adam: one
    warm-up step each (its loss compared), then rounds of ``steps`` steps, the setups taking turns (never two
    at once), up to ``rounds`` while ``seconds`` allow (one at least)."""
    import multiprocessing

    setups = tuple(measured_setups() if setups is None else setups)
    if not setups or setups[0] != "before" or not set(setups) <= set(SETUPS):
        raise ValueError(f"setups {setups}: 'before' first, then any of {', '.join(SETUPS[1:])}")
    context, workers, first = multiprocessing.get_context("spawn"), {}, {}
    if progress:
        progress(f"training {model} at batch {batch}: one process per setup ({', '.join(setups)}), warm-up steps")
    try:
        for setup in setups:  # one after the other: their warm-up steps are not timed, but kept apart
            ours, theirs = context.Pipe()
            job = _TrainingJob(model, dataset, setup, batch, steps, threads, seed, lr)
            process = context.Process(target=_training_worker, args=(theirs, job), daemon=True)
            process.start()
            workers[setup] = (process, ours)
            first[setup] = _ask(ours, setup)[1]
        return _timed_rounds(model, batch, steps, threads, rounds, seconds, workers, first, progress, seed, lr,
                             setups)
    except RuntimeError as error:
        return TrainingThroughput(model, batch, steps, threads, skipped=f"training throughput skipped: {error}")
    finally:
        for process, connection in workers.values():
            with contextlib.suppress(OSError):
                connection.send(None)
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def _timed_rounds(model: str, batch: int, steps: int, threads: int, rounds: int, seconds: float, workers: dict,
                  first: dict[str, float], progress: Callable[[str], None] | None, seed: int,
                  lr: float, setups: tuple[str, ...]) -> TrainingThroughput:
    rates: dict[str, list[float]] = {setup: [] for setup in setups}
    last, cpu, waited, load, begin = {}, 0, 0, _load(), time.perf_counter()
    for index in range(rounds):
        started = time.perf_counter()
        for setup in setups:
            if progress:
                progress(f"training {model} at batch {batch}, {setup}: round {index + 1}/{rounds}, {steps} steps")
            connection = workers[setup][1]
            connection.send(True)
            _, rate, last[setup], on_cpu, wait = _ask(connection, setup)
            rates[setup].append(rate)
            cpu, waited = cpu + on_cpu, waited + wait
        if time.perf_counter() - begin + (time.perf_counter() - started) > seconds:
            break
    machine = Machine(threads, os.cpu_count() or 1, (load, _load()), waited / (cpu + waited) if cpu else None,
                      _cpu_name())
    return TrainingThroughput(
        model, batch, steps, threads,
        setups=tuple(SetupRate(setup, statistics.median(rates[setup]), tuple(rates[setup]), first[setup],
                               last[setup]) for setup in setups),
        machine=machine,
        method=f"float32 ('bf16': bfloat16 autocast), train mode, Adam lr {lr:g}, same seed {seed}, synthetic "
               f"batch; one spawned process per setup, {steps} steps per round, setups taking turns")


# --- everything together: bars, rows, the README table ------------------------------------------------------

@dataclass(frozen=True)
class BenchResult:
    """One ``hpbench bench`` run: ``candidate`` (the model measured against references and its floor)."""

    candidate: str
    references: tuple[str, ...]
    threads: int
    gemm: GemmRate
    inference: InferenceRatios
    report: ReportVsPandas
    training: TrainingThroughput
    seconds: float
    gemm_rates: tuple[float, ...] = ()
    """Every GEMM measurement of the run (before and after the inference timings), GMAC/s; ``gemm`` is the
    fastest, so the floor is the lowest the machine allowed."""
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d", time.gmtime()))


@dataclass(frozen=True)
class Bar:
    """One claim: ``value`` (a ratio, unit "x") against ``bar`` in ``direction`` (">=" or "<="); ``passed`` None
    when there is no bar (reported only) or nothing was measured (``skipped`` says why)."""

    name: str
    value: float | None
    bar: float | None
    direction: str
    goal: float | None = None
    reasons: tuple[str, ...] = ()
    skipped: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None or self.bar is None:
            return None
        return self.value >= self.bar if self.direction == ">=" else self.value <= self.bar

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "SKIPPED"
        return {True: "PASS", False: "MISS", None: "-"}[self.passed]

    @property
    def bar_text(self) -> str:
        if self.bar is None:
            return "-"
        return f"{self.direction} {self.bar:g}x" + (f" (goal {self.goal:g}x)" if self.goal else "")


def _ms(value: float) -> str:
    """3 significant digits without an exponent: 2720, 21.8, 0.0204."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _named(what: str, reasons: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{what}: {reason}" for reason in reasons)


def bars(result: BenchResult) -> tuple[Bar, ...]:
    """The claims of issue 16 from one run, in the order the table shows them."""
    inference, candidate, out = result.inference, result.candidate, []
    for reference in result.references:
        for runtime in inference.runtimes:
            ratio = inference.ratio(reference, candidate, runtime)
            a, b = inference.latency(reference, runtime), inference.latency(candidate, runtime)
            fused = runtime == Runtime.FUSED.label
            out.append(Bar(f"{reference} / {candidate}, {runtime}, batch 1", ratio,
                           BAR_SPEEDUP if fused else None, ">=", BAR_SPEEDUP_GOAL if fused else None,
                           reasons=() if a is None or b is None else _named(reference, a.reasons)
                           + _named(candidate, b.reasons),
                           skipped="" if ratio is not None else f"{runtime}: not timed for both",
                           detail="" if a is None or b is None else f"{_ms(a.median_ms)} / {_ms(b.median_ms)} ms"))
    best, gmac = inference.best(candidate), inference.exact_gmac.get(candidate)
    if best is not None and gmac:
        floor = mac_floor_ms(gmac, result.gemm.gmac_per_s)
        below = ("below the floor: the GEMM ran under heavier contention than the model",) \
            if best.median_ms < floor else ()
        out.append(Bar(f"{candidate} best runtime / MAC floor", best.median_ms / floor, BAR_FLOOR, "<=",
                       reasons=_named(candidate, best.reasons) + _named("GEMM", result.gemm.reasons) + below,
                       detail=f"{best.runtime} {_ms(best.median_ms)} ms / ({gmac:.3g} GMAC at "
                              f"{result.gemm.gmac_per_s:.3g} GMAC/s = {_ms(floor)} ms)"))
    else:
        out.append(Bar(f"{candidate} best runtime / MAC floor", None, BAR_FLOOR, "<=",
                       skipped=f"{candidate} not timed" if best is None else f"{candidate} has no MACs"))
    report = result.report
    out.append(Bar("hpbench report / pandas read", report.ratio, BAR_REPORT, "<=", reasons=report.reasons,
                   skipped=report.skipped,
                   detail="" if report.ratio is None else
                   f"{report.files} files: {report.report_s:.3g} s / {report.pandas_s:.3g} s, best of {report.rounds}"))
    out.append(Bar("hpbench report --no-figures / pandas read", report.tables_ratio, BAR_REPORT, "<=",
                   reasons=report.reasons, skipped=report.skipped,
                   detail="" if report.tables_ratio is None else
                   f"{report.files} files: {report.tables_s:.3g} s / {report.pandas_s:.3g} s, best of {report.rounds}"))
    training = result.training
    rates = {rate.setup: rate for rate in training.setups}
    steps = 1 + training.steps * len(training.setups[0].rounds) if training.setups else 0
    for setup in SETUPS[1:]:
        detail = "" if setup not in rates or "before" not in rates else (
            f"before {rates['before'].crops_per_s:.3g}, {setup} {rates[setup].crops_per_s:.3g} crops/s; loss after "
            f"{steps} steps {rates['before'].last_loss:.4g} / {rates[setup].last_loss:.4g}")
        missing = f"{setup}: not measured" + (" (this CPU has no bfloat16 instructions)" if setup == "bf16" else "")
        skipped = training.skipped or ("" if detail else missing)
        out.append(Bar(f"training {training.model} batch {training.batch}: {_SETUP_WORDS[setup]} / before",
                       training.ratio(setup), BAR_TRAINING, ">=", reasons=training.reasons, skipped=skipped,
                       detail=detail))
    return tuple(out)


_SETUP_WORDS = {"after": "after", "bf16": "after with --bf16"}


def bench_rows(result: BenchResult):  # -> pandas.DataFrame
    """Tidy result rows (hpbench.results), split "bench": every measured number with its unit, threads and
    reliability in ``source``; ratios in unit "x"."""
    import hpbench
    from hpbench.results import make_rows

    def source(reasons: Sequence[str]) -> str:
        return "reliable" if not reasons else "unreliable: " + "; ".join(dict.fromkeys(reasons))

    gemm, records = result.gemm, []
    records.append({"metric": "gemm_rate", "value": gemm.gmac_per_s, "unit": gemm.unit, "n": gemm.samples,
                    "counter": "torch.mm float32 {}x{}x{}".format(*gemm.shape), "source": source(gemm.reasons)})
    for name in result.inference.models:
        for counter, table in (("exact", result.inference.exact_gmac), ("thop", result.inference.thop_gmac)):
            if name in table:
                records.append({"metric": "macs", "value": table[name], "unit": "GMAC", "counter": counter,
                                "model": name})
        if name in result.inference.exact_gmac and gemm.gmac_per_s > 0:
            records.append({"metric": "mac_floor", "value": mac_floor_ms(result.inference.exact_gmac[name],
                                                                         gemm.gmac_per_s),
                            "unit": "ms", "model": name, "counter": "exact MACs / gemm_rate", "batch": 1})
    for t in result.inference.latencies:
        records.append({"metric": "latency_median", "value": t.median_ms, "unit": t.unit, "model": t.model,
                        "runtime": t.runtime, "n": t.samples, "batch": 1, "source": source(t.reasons)})
    report = result.report
    if report.ratio is not None:
        where = {"n": report.rounds, "counter": f"best of rounds, {report.files} files",
                 "source": source(report.reasons)}
        records += [{"metric": "report_time", "value": report.report_s, "unit": "s", **where},
                    {"metric": "pandas_read_time", "value": report.pandas_s, "unit": "s", **where}]
        if report.tables_s is not None:
            records.append({"metric": "report_time", "value": report.tables_s, "unit": "s", **where,
                            "counter": f"best of rounds, {report.files} files, no figures"})
    for rate in result.training.setups:
        records.append({"metric": "train_throughput", "value": rate.crops_per_s, "unit": rate.unit,
                        "model": result.training.model, "counter": rate.setup, "batch": result.training.batch,
                        "n": len(rate.rounds), "source": source(result.training.reasons)})
    for bar in bars(result):
        if bar.value is not None:
            records.append({"metric": "ratio", "value": bar.value, "unit": "x", "counter": bar.name,
                            "source": source(bar.reasons)})
    return make_rows(records, model=result.candidate, dataset="nyu", split="bench", threads=result.threads,
                     torch=torch.__version__, hpbench=hpbench.__version__, date=result.date,
                     device=f"cpu: {gemm.machine.cpu}")


def performance_table(result: BenchResult) -> str:
    """The README's section body: one Markdown row per bar, then how and where it was measured."""
    lines = ["| measure | ratio | bar | result | measured |", "|---|---|---|---|---|"]
    for bar in bars(result):
        value = "-" if bar.value is None else f"{bar.value:.3g}x"
        verdict = bar.verdict + (" (unreliable)" if bar.reasons and bar.value is not None else "")
        lines.append(f"| {bar.name} | {value} | {bar.bar_text} | {verdict} | {bar.detail or bar.skipped} |")
    machines = [m for m in (result.gemm.machine, result.inference.machine, result.report.machine,
                            result.training.machine) if m is not None]
    state = _merge(machines)
    wait = "" if state.wait is None else f", our threads waited for a CPU up to {100 * state.wait:.0f} %"
    lines += ["", f"Measured {result.date} by `hpbench bench` in {result.seconds:.0f} s: {result.threads} threads, "
              f"{state.cpu or 'CPU'}, {state.cores} cores, torch {state.torch}, load "
              f"{state.load[0]:.1f}-{state.load[1]:.1f}{wait}. Ratios come from one run, interleaved; "
              f"(unreliable) names contention or spread (the CSV's `source` says which)."
              + (" GEMM " + " and ".join(f"{rate:.3g}" for rate in result.gemm_rates) + " GMAC/s before and after "
                 "the inference timings: the faster sets the MAC floor." if len(result.gemm_rates) > 1 else "")]
    if state.wait is not None and state.wait > MAX_WAIT and result.threads > 1:
        lines.append(f"Busy machine: with {result.threads} threads a call waits for its slowest thread to get a CPU "
                     f"(`--threads 1` suffers less).")
    notes = [bar for bar in bars(result) if bar.reasons and bar.value is not None]
    lines += [f"- {bar.name}: {'; '.join(dict.fromkeys(bar.reasons))}" for bar in notes]
    return "\n".join(lines)


def replace_between_markers(text: str, body: str, *, start: str = MARKER_START, end: str = MARKER_END) -> str:
    """``text`` with the lines between the ``start`` and ``end`` marker lines replaced by ``body``; all else
    byte for byte. Missing or misordered markers raise ValueError."""
    first = text.find(start)
    last = text.find(end, first + len(start)) if first >= 0 else -1
    if first < 0 or last < 0 or text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"need exactly one {start!r} line followed by one {end!r} line")
    head = text[:first + len(start)]
    return head + "\n" + body.strip("\n") + "\n" + text[last:]


def write_performance_table(path: str | os.PathLike[str], body: str) -> bool:
    """Rewrite the table between the markers of ``path`` (atomically); True when the file changed."""
    from hpbench.files import atomic_write_text

    with open(path, encoding="utf-8", newline="") as file:  # line endings kept as they are
        old = file.read()
    new = replace_between_markers(old, body)
    if new != old:
        atomic_write_text(Path(path), new)
    return new != old


def run_bench(models: Sequence[str] = ("ours", "trinet"), *, threads: int = 2, seconds: float = 6.0,
              runtimes: Sequence[Runtime] | None = None, eval_dir: str | os.PathLike[str] | None = None,
              files: Sequence[Path] | None = None, train_steps: int = 5, train_batch: int = 8,
              progress: Callable[[str], None] | None = None) -> BenchResult:
    """Every measurement of :func:`bars`: the first of ``models`` is the candidate, the others references.
    ``seconds``: the budget of each timed item (a model in a runtime; the GEMM, timed before and after the
    inference timings, a quarter each: the faster sets the floor); the report
    and training comparisons get ``8 x seconds`` each (rounds are whole: one at least)."""
    if not models:
        raise ValueError("bench needs at least one model")
    begin = time.perf_counter()
    if progress:
        progress(f"GEMM rate: torch.mm 512x512x512 float32 at {plural(threads, 'thread')}")
    before = gemm_rate(threads, seconds=max(0.2, seconds / 4))
    inference = inference_ratios(models, runtimes, threads=threads, seconds=seconds, progress=progress)
    if progress:
        progress(f"GEMM rate again, after the inference timings (before: {before.gmac_per_s:.3g} GMAC/s)")
    after = gemm_rate(threads, seconds=max(0.2, seconds / 4))
    gemm = max(before, after, key=lambda rate: rate.gmac_per_s)
    report = report_vs_pandas(files, eval_dir=eval_dir, seconds=8 * seconds, threads=threads, progress=progress)
    if report.skipped and progress:
        progress(report.skipped)
    training = training_throughput(models[0], train_batch, train_steps, rounds=10, threads=threads,
                                   seconds=8 * seconds, progress=progress)
    return BenchResult(candidate=models[0], references=tuple(models[1:]), threads=threads, gemm=gemm,
                       inference=inference, report=report, training=training, seconds=time.perf_counter() - begin,
                       gemm_rates=(before.gmac_per_s, after.gmac_per_s))
