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
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["Environment", "Latency", "environment", "interleaved_latency", "measure_latency", "summarize_rounds",
           "time_step", "to_latency"]


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
