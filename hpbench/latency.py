"""Latency of one model: ``torch.utils.benchmark`` timing at a stated thread count, with where it ran.

``blocked_autorange`` after warm-up, in inference mode; median and p10/p90 over the
measured blocks, with device, torch version, dtype and threads recorded beside the
figure (design/profiling.md). :func:`interleaved_latency` times several models in
alternating rounds so their ratios come from one moment of the machine. Used by
:mod:`hpbench.profile` and :mod:`hpbench.export` (which times ONNX Runtime the same way).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import enum
import logging
import math
import os
import platform
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["DEFAULT_RUNTIMES", "Budget", "Environment", "Latency", "Runtime", "Target", "Timing", "environment",
           "interleaved_latency", "measure_latency", "parse_runtimes", "significant", "summarize_rounds",
           "time_step", "time_targets", "to_latency"]


@dataclass(frozen=True)
class Environment:
    """Where a latency was measured."""

    device: str
    device_name: str
    torch: str
    dtype: str
    threads: int


def environment(device: torch.device, dtype: torch.dtype, threads: int) -> Environment:
    """Describe ``device`` (GPU model or CPU model name) and the run settings."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return Environment(device=device.type, device_name=name, torch=torch.__version__,
                       dtype=str(dtype).replace("torch.", ""), threads=threads)


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Latency:
    """Time of one forward pass at ``batch``, ms: median and p10/p90 over measured blocks."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    blocks: int
    calls_per_block: int
    batch: int
    method: str
    env: Environment

    @property
    def throughput(self) -> float:
        """Samples per second at the median."""
        return 1000.0 * self.batch / self.median_ms

    @property
    def noisy(self) -> bool:
        """IQR above 10 % of the median: the machine was busy; quote ratios, not absolutes."""
        return self.iqr_ms > 0.10 * self.median_ms


def _prepared(model: nn.Module, example: torch.Tensor, device: torch.device, dtype: torch.dtype,
              channels_last: bool) -> tuple[nn.Module, torch.Tensor]:
    model = copy.deepcopy(model).eval().to(device=device, dtype=dtype)
    example = example.to(device=device, dtype=dtype)
    if channels_last and example.ndim == 4:
        model = model.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    return model, example


def _cuda_graph(model: nn.Module, example: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Capture one forward as a CUDA graph; the replay is what gets timed."""
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            model(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        output = model(static)
    return lambda: (graph.replay(), output)[1]


def measure_latency(
    model: nn.Module,
    example: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    warmup: int = 5,
    min_run_time_s: float = 1.0,
    channels_last: bool = False,
    cuda_graph: bool = False,
) -> Latency:
    """Forward latency of ``model`` on ``example`` (its batch size), inference mode.

    CPU: ``threads`` intra-op threads (default: torch's current setting), restored
    afterwards. CUDA: torch.utils.benchmark synchronizes; optionally channels_last
    and/or a captured CUDA graph, both named in ``method``.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no GPU: CUDA latency cannot be measured on this machine")
    threads = threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    model, example = _prepared(model, example, device, dtype, channels_last)
    method = "torch.utils.benchmark blocked_autorange"
    if channels_last:
        method += ", channels_last"
    try:
        torch.set_num_threads(threads)
        if cuda_graph and device.type == "cuda":
            step = _cuda_graph(model, example)
            method += ", CUDA graph"
        else:
            def step() -> torch.Tensor:
                with torch.inference_mode():
                    return model(example)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
        measurement = time_step(step, threads=threads, warmup=warmup, min_run_time_s=min_run_time_s, sync=sync)
    finally:
        torch.set_num_threads(previous)
    return to_latency(measurement, batch=int(example.shape[0]), method=method, env=environment(device, dtype, threads))


def time_step(step: Callable[[], object], *, threads: int, warmup: int, min_run_time_s: float,
               sync: Callable[[], None] | None = None):  # -> torch.utils.benchmark.Measurement
    """``warmup`` calls of ``step`` (then ``sync``), then torch.utils.benchmark's blocked_autorange at ``threads``."""
    # torch.utils.benchmark imports cpp_extension, which warns about a missing CUDA toolkit on CPU machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    for _ in range(warmup):
        step()
    if sync is not None:
        sync()
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time_s)


def to_latency(measurement, *, batch: int, method: str, env: Environment) -> Latency:  # measurement: benchmark.Measurement
    times_ms = np.asarray(measurement.times) * 1000.0
    p10, p25, p50, p75, p90 = np.percentile(times_ms, [10, 25, 50, 75, 90])
    return Latency(
        median_ms=float(p50), p10_ms=float(p10), p90_ms=float(p90), iqr_ms=float(p75 - p25),
        blocks=len(times_ms), calls_per_block=int(measurement.number_per_run), batch=batch, method=method, env=env,
    )


def interleaved_latency(
    models: dict[str, tuple[nn.Module, torch.Tensor]], *, rounds: int = 3, **options
) -> dict[str, list[Latency]]:
    """Time every model once per round, rounds interleaved (A, B, A, B, ...).

    Ratios between models measured this way share the machine's state; the spread
    of one model over rounds shows how far absolute figures move.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    results: dict[str, list[Latency]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, (model, example) in models.items():
            results[name].append(measure_latency(model, example, **options))
    return results


def summarize_rounds(latencies: Sequence[Latency]) -> dict[str, float]:
    """Median of the rounds' medians, their spread (max - min) / median, and the p10/p90 pooled."""
    medians = np.array([latency.median_ms for latency in latencies])
    median = float(np.median(medians))
    return {
        "median_ms": median,
        "p10_ms": float(np.median([latency.p10_ms for latency in latencies])),
        "p90_ms": float(np.median([latency.p90_ms for latency in latencies])),
        "spread": float((medians.max() - medians.min()) / median) if median > 0 else 0.0,
    }


# --- Timing on a shared machine: a budget, interleaved rounds, contention detected and said ---------------

class Runtime(str, enum.Enum):
    """Where a model's forward runs; the value is the CLI name (``--runtimes eager,fused``)."""

    EAGER = "eager"
    FUSED = "fused"
    COMPILE = "compile"
    ONNX = "onnx"
    CUDA_GRAPH = "cudagraph"
    TENSORRT = "tensorrt"

    @property
    def label(self) -> str:
        """The name in tables and rows."""
        return _LABELS[self]

    @property
    def cuda_only(self) -> bool:
        return self in (Runtime.CUDA_GRAPH, Runtime.TENSORRT)

    @property
    def unverified(self) -> bool:
        """Code paths written without a GPU to run them: rows say so until a GPU run confirms them."""
        return self.cuda_only


_LABELS = {Runtime.EAGER: "eager", Runtime.FUSED: "eager fused", Runtime.COMPILE: "torch.compile",
           Runtime.ONNX: "onnxruntime", Runtime.CUDA_GRAPH: "CUDA graph", Runtime.TENSORRT: "TensorRT"}
DEFAULT_RUNTIMES: tuple[Runtime, ...] = (Runtime.EAGER, Runtime.FUSED, Runtime.CUDA_GRAPH, Runtime.TENSORRT)
"""What ``hpbench profile`` times without ``--runtimes``: eager and fused everywhere (the CUDA-only ones on a
GPU). torch.compile (inductor: minutes on a CPU for a 3D network) and ONNX Runtime (the export alone takes
10-20 s per model on 2 cores) are asked for by name."""


def parse_runtimes(text: str) -> tuple[Runtime, ...]:
    """``"eager,fused,onnx"`` or ``"all"`` -> runtimes in the order given; unknown names raise ValueError."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return tuple(Runtime)
    aliases = {"torch.compile": "compile", "onnxruntime": "onnx", "cuda-graph": "cudagraph", "trt": "tensorrt"}
    known = {runtime.value for runtime in Runtime}
    unknown = [name for name in names if aliases.get(name, name) not in known]
    if unknown or not names:
        raise ValueError(f"unknown runtime(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(sorted(known))} or all")
    return tuple(dict.fromkeys(Runtime(aliases.get(name, name)) for name in names))


@dataclass(frozen=True)
class Budget:
    """How long to time one model in one runtime, all included (warm-up, latency rounds, batch sweep).

    Latency stops at ``samples`` or at ``LATENCY_SHARE`` of ``seconds``, whichever comes first, in
    ``rounds`` interleaved rounds; fewer than ``min_samples`` makes the figure unreliable. The batch sweep
    (8, 32, ... up to ``max_batch``) takes the rest: a batch whose warm-up and two timed calls would not fit
    is skipped, and said.
    """

    seconds: float = 6.0
    samples: int = 30
    min_samples: int = 5
    rounds: int = 3
    max_batch: int = 256
    repeat: bool = True

    @classmethod
    def precise(cls) -> Budget:
        """``--precise``: long measurements (a minute per model and runtime, 200 samples)."""
        return cls(seconds=60.0, samples=200, min_samples=30, rounds=5, max_batch=1024)

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.samples < 1 or self.min_samples < 1 or self.rounds < 1 or self.max_batch < 1:
            raise ValueError(f"invalid timing budget {self}")


LATENCY_SHARE = 0.6
"""Share of a budget spent on batch-1 latency; the batch sweep gets the rest."""
SWEEP_BATCHES = (8, 32, 128, 512, 1024)
MAX_SPREAD = 0.15
"""Rounds' medians further apart than this (max - min over median): the machine changed under us."""
MAX_WIDTH = 0.30
"""p10-p90 wider than this share of the median: calls vary too much for one figure."""
MAX_WAIT = 0.10
"""Our threads waited for a CPU longer than this share of their runnable time (/proc schedstat)."""
MIN_SAMPLE_MS = 1.0
"""A sample times enough back-to-back calls to last this long (timer overhead stays negligible)."""


@dataclass(frozen=True)
class Timing:
    """One model in one runtime at one batch: per-call ms percentiles over ``samples`` samples in ``rounds``
    interleaved rounds, what the machine was doing, and whether the figure can be trusted.

    ``spread``: (max - min) / median of the rounds' medians (None: one round). ``load``: 1-minute load
    average before and after, of ``cores``. ``wait``: share of our threads' runnable time spent waiting for
    a CPU (None where /proc has no schedstat). ``peak_mb``: growth of the process's peak memory (RSS on a
    CPU, allocated on a GPU) during the first call at this batch. ``reasons``: why the figure is
    unreliable (empty: reliable). ``unverified``: a code path no GPU run has confirmed yet.
    """

    model: str
    runtime: Runtime
    batch: int
    samples: int
    calls_per_sample: int
    p10_ms: float
    median_ms: float
    p90_ms: float
    spread: float | None
    rounds: int
    load: tuple[float, float]
    cores: int
    wait: float | None
    peak_mb: float | None
    env: Environment
    method: str
    reasons: tuple[str, ...] = ()
    repeated: tuple[str, ...] = ()
    unverified: bool = False

    @property
    def reliable(self) -> bool:
        return not self.reasons

    @property
    def throughput(self) -> float:
        """Samples per second at the median."""
        return 1000.0 * self.batch / self.median_ms

    @property
    def uncertainty_ms(self) -> float | None:
        """How far the median may be off: half the rounds' range, or the p10-p90 half-width over sqrt(n);
        None (unknown) below 3 samples."""
        if self.samples < 3:
            return None
        rounds = 0.5 * self.spread * self.median_ms if self.spread is not None else 0.0
        width = 0.5 * (self.p90_ms - self.p10_ms) / math.sqrt(max(self.samples, 1))
        return max(rounds, width, 1e-3 * self.median_ms)


@dataclass
class Target:
    """A prepared model in one runtime: ``step(batch)`` returns a call that runs one forward at ``batch``
    (built once per batch, e.g. a captured CUDA graph). ``device`` names where it runs. ``variant`` names one
    of several configurations of the same model, runtime and device (e.g. "intra-op spinning off"): all are
    timed in the same rounds and the fastest is kept (:func:`time_targets`)."""

    model: str
    runtime: Runtime
    device: torch.device
    step: Callable[[int], Callable[[], object]]
    method: str
    threads: int
    failed: str = ""
    calls: dict[int, Callable[[], object]] = dataclasses.field(default_factory=dict)
    estimate_ms: float = float("nan")
    variant: str = ""

    def call(self, batch: int) -> Callable[[], object]:
        if batch not in self.calls:
            self.calls[batch] = self.step(batch)
        return self.calls[batch]


def significant(value: float, uncertainty: float | None = None, *, digits: int = 2) -> str:
    """``value`` with the digits its ``uncertainty`` allows (the last shown digit is the uncertainty's
    first), else ``digits`` significant digits: 0.6 samples/s stays 0.6, 2050 +- 400 ms prints 2100."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if uncertainty is None or not uncertainty > 0:
        place = math.floor(math.log10(abs(value))) - digits + 1
    else:
        place = math.floor(math.log10(uncertainty))
        place = min(place, math.floor(math.log10(abs(value))))  # at least one significant digit
        place = max(place, math.floor(math.log10(abs(value))) - 3)  # at most four
    rounded = round(value, -place)
    return f"{rounded:.{max(0, -place)}f}"


def _sched() -> tuple[int, int] | None:
    """(on-CPU ns, waiting-for-a-CPU ns) summed over this process's threads, from /proc schedstat."""
    cpu = wait = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(FileNotFoundError):  # a thread may end meanwhile
                with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as file:
                    fields = file.read().split()
                cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return cpu, wait


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _rss_mb(field: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


class _LiveTensors:
    """Peak bytes of the tensors that aten ops create while it is active (a TorchDispatchMode), each storage
    counted once and freed when its last tensor dies: activations and outputs, not weights or inputs, nor an
    allocator's cache; the same on every machine, however busy."""

    def __init__(self) -> None:
        self.live = self.peak = 0
        self.tensors: dict[int, int] = {}

    def mode(self):  # -> TorchDispatchMode
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for leaf in tree_leaves(out):
                    if isinstance(leaf, torch.Tensor) and leaf.device.type != "meta":
                        tracker.add(leaf)
                return out
        return Mode()

    def add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if key not in self.tensors:
            self.live += size
            self.peak = max(self.peak, self.live)
        self.tensors[key] = self.tensors.get(key, 0) + 1
        weakref.finalize(tensor, self.drop, key, size)

    def drop(self, key: int, size: int) -> None:
        self.tensors[key] -= 1
        if not self.tensors[key]:
            del self.tensors[key]
            self.live -= size


def _first_call(target: Target, batch: int) -> tuple[float, float | None]:
    """Build and run the first call at ``batch``: (its ms, peak memory in MB during it: tensors created by
    PyTorch runtimes on a CPU, allocated bytes on a GPU, resident-set growth for ONNX Runtime)."""
    cuda = target.device.type == "cuda"
    call = target.call(batch)
    if not cuda and target.runtime in (Runtime.EAGER, Runtime.FUSED):
        tracker = _LiveTensors()
        start = time.perf_counter()
        with tracker.mode():
            call()
        return (time.perf_counter() - start) * 1000, tracker.peak / 2**20
    if not cuda and target.runtime is Runtime.COMPILE:  # the first call compiles: its memory is the compiler's
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1000, None
    if cuda:
        torch.cuda.synchronize(target.device)
        torch.cuda.reset_peak_memory_stats(target.device)
        before = torch.cuda.memory_allocated(target.device) / 2**20
    else:
        with contextlib.suppress(OSError):  # "5" resets VmHWM, the peak resident set (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w", encoding="ascii") as file:
                file.write("5")
        before = _rss_mb("VmRSS")
    start = time.perf_counter()
    call()
    elapsed = (time.perf_counter() - start) * 1000
    if cuda:
        peak = torch.cuda.max_memory_allocated(target.device) / 2**20
    else:
        peak = _rss_mb("VmHWM")
    return elapsed, None if peak is None or before is None else max(0.0, peak - before)


def _warm_up(target: Target, batch: int, *, seconds: float) -> float | None:
    """First call (its peak memory returned), then calls until ``seconds`` pass or 20 calls; sets the
    per-call estimate. A failure is recorded in ``target.failed``."""
    try:
        first_ms, peak = _first_call(target, batch)
        call, elapsed, estimate = target.call(batch), first_ms / 1000, first_ms
        for _ in range(20):
            if elapsed + estimate / 1000 > seconds:
                break
            start = time.perf_counter()
            call()
            estimate = (time.perf_counter() - start) * 1000
            elapsed += estimate / 1000
    except Exception as error:  # compilers, exporters and providers raise many types
        text = str(error).strip().splitlines()
        target.failed = f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__
        return None
    target.estimate_ms = estimate / batch
    return peak


@dataclass
class _Series:
    samples: list[float] = dataclasses.field(default_factory=list)
    medians: list[float] = dataclasses.field(default_factory=list)
    cpu_ns: int = 0
    wait_ns: int = 0
    sched: bool = True
    calls_per_sample: int = 1


def _round(target: Target, batch: int, series: _Series, *, samples: int, seconds: float) -> None:
    """Up to ``samples`` samples, stopping when the next would pass ``seconds`` (at least one)."""
    call = target.call(batch)
    per_call_ms = target.estimate_ms * batch
    series.calls_per_sample = max(1, math.ceil(MIN_SAMPLE_MS / max(per_call_ms, 1e-6)))
    sync = (lambda: torch.cuda.synchronize(target.device)) if target.device.type == "cuda" else (lambda: None)
    before, taken, start = _sched(), [], time.perf_counter()
    while len(taken) < samples:
        begin = time.perf_counter()
        for _ in range(series.calls_per_sample):
            call()
        sync()
        end = time.perf_counter()
        taken.append((end - begin) * 1000 / series.calls_per_sample)
        if end - start + (end - begin) > seconds:
            break
    after = _sched()
    if before is None or after is None:
        series.sched = False
    else:
        series.cpu_ns += after[0] - before[0]
        series.wait_ns += after[1] - before[1]
    series.samples += taken
    series.medians.append(float(np.median(taken)))


def _reasons(series: _Series, load: tuple[float, float], cores: int, budget: Budget,
             *, batch: int) -> tuple[tuple[str, ...], float | None, float | None]:
    """(why the series is unreliable, spread between rounds, wait share)."""
    reasons = []
    p10, p50, p90 = np.percentile(series.samples, [10, 50, 90])
    spread = None
    if len(series.medians) > 1:
        spread = float((max(series.medians) - min(series.medians)) / np.median(series.medians))
    total = series.cpu_ns + series.wait_ns
    wait = series.wait_ns / total if series.sched and total > 0 else None
    needed = budget.min_samples if batch == 1 else 2
    if len(series.samples) < needed:
        reasons.append(f"{len(series.samples)} sample{'' if len(series.samples) == 1 else 's'} < {needed}")
    if spread is not None and spread > MAX_SPREAD:
        reasons.append(f"rounds differ {100 * spread:.0f} %")
    if p50 > 0 and (p90 - p10) / p50 > MAX_WIDTH:
        reasons.append(f"p10-p90 = {100 * (p90 - p10) / p50:.0f} % of median")
    if wait is not None and wait > MAX_WAIT:
        reasons.append(f"waited for a CPU {100 * wait:.0f} %")
    busiest = max(load)
    if wait is None and busiest > cores + 0.5:  # the load average lags and counts our own threads: a fallback
        reasons.append(f"load {busiest:.1f} / {cores} cores")
    return tuple(reasons), spread, wait


def _timing(target: Target, batch: int, series: _Series, load: tuple[float, float], budget: Budget,
            peak: float | None) -> Timing:
    cores = os.cpu_count() or 1
    reasons, spread, wait = _reasons(series, load, cores, budget, batch=batch)
    p10, p50, p90 = (float(v) for v in np.percentile(series.samples, [10, 50, 90]))
    return Timing(model=target.model, runtime=target.runtime, batch=batch, samples=len(series.samples),
                  calls_per_sample=series.calls_per_sample, p10_ms=p10, median_ms=p50, p90_ms=p90, spread=spread,
                  rounds=len(series.medians), load=load, cores=cores, wait=wait, peak_mb=peak,
                  env=environment(target.device, torch.float32, target.threads), method=target.method,
                  reasons=reasons, unverified=target.runtime.unverified)


def _latency_rounds(targets: Sequence[Target], budget: Budget, peaks: dict[int, float | None],
                    progress: Callable[[str], None] | None, what: str = "") -> dict[int, Timing]:
    """Batch-1 latency of ``targets`` in interleaved rounds (A, B, A, B, ...): one Timing per target."""
    series = {id(target): _Series() for target in targets}
    per_round, seconds = math.ceil(budget.samples / budget.rounds), budget.seconds * LATENCY_SHARE
    # a model whose call takes longer than a round's share gets fewer rounds (one sample at least)
    rounds = {id(t): min(budget.rounds, max(1, int(seconds * 1000 // max(t.estimate_ms, 1e-6)))) for t in targets}
    load_before = _load()
    for index in range(budget.rounds):
        for target in (t for t in targets if rounds[id(t)] > index):
            if progress:
                progress(f"{what}latency of {target.model} in {target.runtime.label} at batch 1, "
                         f"round {index + 1}/{rounds[id(target)]}")
            _round(target, 1, series[id(target)], samples=per_round, seconds=seconds / rounds[id(target)])
    load = (load_before, _load())
    return {id(t): _timing(t, 1, series[id(t)], load, budget, peaks.get(id(t))) for t in targets}


def _available_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 2**20
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return None


def _sweep_plan(target: Target, first: Timing, budget: Budget) -> tuple[list[int], str]:
    """Batches of the sweep that fit the rest of the budget (warm-up + two timed calls each) and half the
    free memory, and '' or why the next one was skipped."""
    seconds, batches = budget.seconds * (1 - LATENCY_SHARE), []
    free = _available_mb(target.device)
    for batch in (b for b in SWEEP_BATCHES if b <= budget.max_batch):
        call_s = first.median_ms * batch / 1000
        if 3 * call_s > seconds:
            return batches, (f"batch {batch} and larger not timed: one call takes about {significant(call_s)} s, "
                             f"{significant(seconds)} s of the budget left")
        if first.peak_mb is not None and free is not None and first.peak_mb * batch > free / 2:
            return batches, (f"batch {batch} and larger not timed: about {first.peak_mb * batch:.0f} MB needed, "
                             f"{free:.0f} MB free")
        batches.append(batch)
        seconds -= 3 * call_s
    return batches, ""


def _sweep(targets: Sequence[Target], first: dict[int, Timing], budget: Budget,
           progress: Callable[[str], None] | None) -> tuple[dict[int, list[Timing]], list[str]]:
    """Throughput at the batches that fit each target's budget, interleaved by batch size (per target)."""
    plans = {id(t): _sweep_plan(t, first[id(t)], budget) for t in targets}
    notes = [f"{t.model}, {t.runtime.label}: {plans[id(t)][1]}" for t in targets if plans[id(t)][1]]
    timings: dict[int, list[Timing]] = {id(t): [] for t in targets}
    stopped = set()
    for batch in sorted({b for plan, _ in plans.values() for b in plan}):
        for target in targets:
            if batch not in plans[id(target)][0] or id(target) in stopped:
                continue
            if progress:
                progress(f"throughput of {target.model} in {target.runtime.label} at batch {batch}")
            load_before, series = _load(), _Series()
            per_sample = target.estimate_ms
            peak = _warm_up(target, batch, seconds=0)
            if target.failed:
                notes.append(f"{target.model}, {target.runtime.label}: batch {batch} failed: {target.failed}")
                stopped.add(id(target))
                target.failed = ""
                continue
            target.estimate_ms = per_sample  # the batch-1 estimate stays the reference
            call_s = first[id(target)].median_ms * batch / 1000
            share = budget.seconds * (1 - LATENCY_SHARE) / len(plans[id(target)][0]) - call_s  # after the warm-up
            _round(target, batch, series, samples=budget.samples, seconds=max(2 * call_s, share))
            timings[id(target)].append(_timing(target, batch, series, (load_before, _load()), budget, peak))
    return timings, notes


def _fastest_variants(targets: list[Target], first: dict[int, Timing]) -> tuple[list[Target], list[str]]:
    """``targets`` less the variants beaten at batch 1 (per model, runtime and device, the lowest median
    stays; a tie keeps the first), and a note per choice naming every variant's median."""
    groups: dict[tuple[str, Runtime, str], list[Target]] = {}
    for target in targets:
        groups.setdefault((target.model, target.runtime, str(target.device)), []).append(target)
    kept, notes = set(), []
    for (model, runtime, _), group in groups.items():
        best = min(group, key=lambda t: first[id(t)].median_ms)
        kept.add(id(best))
        if len(group) > 1:
            others = ", ".join(f"{significant(first[id(t)].median_ms, digits=3)} ms {t.variant}" for t in group
                               if t is not best)
            notes.append(f"{model}, {runtime.label}: {best.variant} kept, "
                         f"{significant(first[id(best)].median_ms, digits=3)} ms against {others} "
                         f"(batch 1, timed in the same rounds)")
    return [t for t in targets if id(t) in kept], notes


def time_targets(targets: Sequence[Target], budget: Budget = Budget(), *, sweep: bool = True,
                 progress: Callable[[str], None] | None = None) -> tuple[list[Timing], list[str]]:
    """Time prepared ``targets``: warm-up, batch-1 latency in interleaved rounds (repeated once for the
    targets whose figure is unreliable for reasons other than the budget), the fastest variant of each
    model, runtime and device kept (:attr:`Target.variant`), then (``sweep``) throughput at larger batches
    that fit the budget. Returns the timings (target order, batch 1 first) and notes on what failed, was
    skipped or chosen."""
    notes, peaks, live = [], {}, []
    for target in targets:
        if progress:
            progress(f"warming up {target.model} in {target.runtime.label}")
        peaks[id(target)] = _warm_up(target, 1, seconds=min(1.0, budget.seconds / 10))
        if target.failed:
            verb = "does not compile" if target.runtime is Runtime.COMPILE else "not timed"
            notes.append(f"{target.model}, {target.runtime.label}: {verb}: {target.failed}")
        else:
            live.append(target)
    first = _latency_rounds(live, budget, peaks, progress)
    # repeating helps against contention, not against a budget too short for the model: those are said
    again = [t for t in live if first[id(t)].reasons and first[id(t)].samples >= budget.min_samples]
    if budget.repeat and again:
        second = _latency_rounds(again, budget, peaks, progress, what="repeat (unreliable): ")
        for target in again:
            before, after = first[id(target)], second[id(target)]
            better = after if len(after.reasons) <= len(before.reasons) else before
            first[id(target)] = dataclasses.replace(better, repeated=before.reasons)
    live, chosen = _fastest_variants(live, first)
    notes += chosen
    more: dict[int, list[Timing]] = {}
    if sweep:
        more, skipped = _sweep(live, first, budget, progress)
        notes += skipped
    return [timing for t in live for timing in (first[id(t)], *more.get(id(t), []))], notes
