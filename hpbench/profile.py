"""Cost of a model: parameters, MACs from several counters side by side, latency.

Papers quote "FLOPs" that are thop multiply-accumulates at batch 1. hpbench reports
each counter under its own name and convention (design/profiling.md):

- ``thop``: thop's MACs, what papers quote. Sees modules only: functional matmul,
  einsum, softmax and interpolate count 0; transposed convolutions are counted by
  output volume (k^d / s^d too many); BatchNorm adds 4 per element.
- ``exact``: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2: conv, linear,
  matmul and attention multiply-accumulates exactly; bias, BN, softmax, pooling and
  elementwise ops count 0. Counted on the meta device when the model allows it.
- ``fvcore``: fvcore's ``FlopCountAnalysis`` (jit trace): MACs for conv, linear,
  matmul, einsum, upsampling and BN; ops it does not know are listed, not counted.

Timing (hpbench.latency): every model in every runtime (eager, eager fused by hpbench.fuse, torch.compile,
ONNX Runtime; on CUDA also CUDA graphs and TensorRT, unverified until a GPU run confirms them) within a time
budget per model and runtime, in rounds interleaved across models and runtimes so that contention hits them
alike; each figure carries its samples, p10/median/p90, the spread between rounds, the machine's load and
how long our threads waited for a CPU, and is flagged unreliable (with the reason) when these say the
machine was busy, after one repeat. Ratios compare models within one runtime. A batch sweep (8, 32, ...)
gives throughput and peak memory where the budget and memory allow.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from hpbench._text import plural
from hpbench.latency import (
    DEFAULT_RUNTIMES, LATENCY_SHARE, MAX_WAIT, Budget, Environment, Latency, Runtime, Target, Timing, environment,
    measure_latency, significant, time_targets,
)

__all__ = [
    "COUNTER_CONVENTIONS",
    "DEFAULT_REFERENCE",
    "DEFAULT_RUNTIMES",
    "ONNXRUNTIME",
    "Budget",
    "CostRow",
    "Environment",
    "Latency",
    "MacCounts",
    "ModelProfile",
    "ProfileReport",
    "Runtime",
    "Timing",
    "TimingRow",
    "count_macs",
    "count_parameters",
    "environment",
    "exact_macs",
    "fvcore_macs",
    "measure_latency",
    "profile_models",
    "profile_report",
    "profile_rows",
    "significant",
    "thop_macs",
    "unused_parameters",
]

COUNTER_CONVENTIONS: dict[str, str] = {
    "thop": "thop MACs (papers' 'FLOPs'): modules only; transposed conv by output volume; BN 4/elem",
    "exact": "FlopCounterMode FLOPs / 2: conv, linear, matmul, attention MACs; no bias, BN, softmax",
    "fvcore": "fvcore MACs (jit trace): conv, linear, matmul, einsum, upsample, BN; unknown ops listed",
}
ONNXRUNTIME = "onnxruntime-cpu"
"""Key of ONNX Runtime's CPU provider timings in :attr:`ModelProfile.latency` (beside "cpu", "cuda") and
their rows' device."""
ONNX_TOLERANCE = 1e-4
"""Max |ONNX Runtime - PyTorch| joint coordinate (crop px, normalized depth) above which a note is left."""
DISAGREEMENT = 0.05
"""Relative gap between counters above which a model is flagged."""


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (``requires_grad``), each shared tensor counted once."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


def unused_parameters(model: nn.Module, example: torch.Tensor) -> list[str] | None:
    """Names of trainable parameters that get no gradient from ``model(example).sum()``.

    Runs on the meta device (no memory, no arithmetic); None when the model cannot
    run there. Such parameters inflate a parameter count without doing anything.
    """
    meta_model = copy.deepcopy(model).to("meta").train()
    try:
        meta_model(example.to("meta")).sum().backward()
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError):
        return None
    return [name for name, p in meta_model.named_parameters() if p.requires_grad and p.grad is None]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence counters' prints and deprecation warnings (thop prints, jit.trace warns)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def thop_macs(model: nn.Module, example: torch.Tensor) -> int:
    """thop's MAC count at the example's batch size, on a deep copy in eval mode.

    (thop registers buffers on the model it profiles: never hand it the real one.) Run on the meta device
    when the model allows it: thop's hooks read shapes only, so the count is the same (checked for every
    registered model) without the arithmetic (trinet: 1 s instead of 6-10 s on 2 busy cores).
    """
    with _quiet(), torch.no_grad():
        import thop  # its import warns about distutils

        try:
            macs, _ = thop.profile(copy.deepcopy(model).to("meta").eval(), inputs=(example.to("meta"),),
                                   verbose=False)
        except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError):
            macs, _ = thop.profile(copy.deepcopy(model).eval(), inputs=(example,), verbose=False)
    return int(round(float(macs)))


def _flops_by_op(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """FlopCounterMode FLOPs per aten op of one eval-mode forward, on meta when possible."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(probe: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            probe(inputs)
        return {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}

    try:
        return count(copy.deepcopy(model).to("meta").eval(), example.to("meta"))
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return count(copy.deepcopy(model).eval(), example)


def exact_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Conv/linear/matmul/attention MACs from FlopCounterMode (FLOPs / 2), eval mode.

    Counted on the meta device when possible (no activations allocated), else on
    the example's device.
    """
    return sum(_flops_by_op(model, example).values()) // 2


def fvcore_macs(model: nn.Module, example: torch.Tensor) -> tuple[int | None, dict[str, int], str]:
    """fvcore's MAC count, the ops it skipped (name -> calls), and '' or why it failed."""
    try:
        with _quiet():
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(copy.deepcopy(model).eval(), (example,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            total = int(analysis.total())
            skipped = dict(analysis.unsupported_ops())
    except ImportError:
        return None, {}, "fvcore not installed"
    except Exception as error:  # tracing fails on data-dependent control flow
        return None, {}, f"jit trace failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return total, skipped, ""


@dataclass(frozen=True)
class MacCounts:
    """MACs of one model at one input from each counter, with notes on disagreements.

    ``exact_by_op``: the exact counter's MACs per aten op (convolution, mm, bmm, ...).
    """

    thop: int
    exact: int
    fvcore: int | None
    exact_by_op: dict[str, int] = field(default_factory=dict)
    fvcore_skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def disagree(self) -> bool:
        """True when any two counters differ by more than 5 % of the exact count."""
        values = [v for v in (self.thop, self.exact, self.fvcore) if v is not None]
        return (max(values) - min(values)) / max(self.exact, 1) > DISAGREEMENT


_MATMUL_OPS = ("mm", "bmm", "addmm", "baddbmm", "_scaled_dot_product")


def _explain(model: nn.Module, exact_by_op: dict[str, int], thop_count: int, exact: int,
             fvcore_skipped: dict[str, int]) -> tuple[str, ...]:
    """Known reasons for the counters to disagree, read off the model's modules and ops."""
    notes = []
    modules = list(model.modules())
    if any(isinstance(m, nn.modules.conv._ConvTransposeNd) for m in modules):
        notes.append("thop counts transposed convs by output volume (k^d / s^d too many)")
    # nn.Linear also runs as addmm/mm: only call it functional when thop saw less than the total
    functional = sum(n for op, n in exact_by_op.items() if op.startswith(_MATMUL_OPS)) // 2
    if functional > 0 and thop_count < exact:
        notes.append("thop misses functional matmul / attention (torch.matmul, @, einsum, SDPA)")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules) and thop_count > exact:
        notes.append("thop adds BatchNorm (4 per element) and other elementwise modules")
    if fvcore_skipped:
        notes.append("fvcore skipped: " + ", ".join(sorted(fvcore_skipped)))
    return tuple(notes)


def count_macs(model: nn.Module, example: torch.Tensor, *, fvcore: bool = True) -> MacCounts:
    """MACs of ``model`` at ``example`` from thop, the exact counter and (optionally) fvcore."""
    thop_count = thop_macs(model, example)
    by_op = _flops_by_op(model, example)
    exact = sum(by_op.values()) // 2
    fv, skipped, failure = fvcore_macs(model, example) if fvcore else (None, {}, "")
    notes = _explain(model, by_op, thop_count, exact, skipped) + ((f"fvcore: {failure}",) if failure else ())
    return MacCounts(thop=thop_count, exact=exact, fvcore=fv, exact_by_op={k: v // 2 for k, v in by_op.items()},
                     fvcore_skipped=skipped, notes=notes)


@dataclass(frozen=True)
class ModelProfile:
    """Everything measured about one model at one dataset's joint count: counts, and its timings in
    every runtime (batch 1 first, then the batch sweep)."""

    model: str
    dataset: str
    input_shape: tuple[int, ...]
    params: int
    declared_params: int | None
    excluded_params: str
    unused: tuple[str, ...] | None
    macs: MacCounts
    timings: tuple[Timing, ...] = ()
    onnx_max_abs_diff: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def latency(self) -> dict[str, Timing]:
        """Batch-1 timings by key: the device for eager PyTorch ("cpu", "cuda"), :data:`ONNXRUNTIME`, else
        "<device> <runtime label>"."""
        return {_key(t): t for t in self.timings if t.batch == 1}


def _key(timing: Timing) -> str:
    if timing.runtime is Runtime.EAGER:
        return timing.env.device
    if timing.runtime is Runtime.ONNX:
        return ONNXRUNTIME
    return f"{timing.env.device} {timing.runtime.label}"


class _Exports:
    """Each model's ONNX export, made once (in a temporary folder) for ONNX Runtime and TensorRT, checked
    against PyTorch; what failed is remembered and said once."""

    def __init__(self, folder: str) -> None:
        self.folder, self.paths, self.failed = folder, {}, {}
        self.seconds: dict[str, float] = {}
        self.diffs: dict[str, float] = {}

    def path(self, name: str, model: nn.Module, shape: tuple[int, ...]):
        from pathlib import Path

        from hpbench.export import check_onnx, example_input, export_onnx

        if name in self.failed:
            raise RuntimeError(self.failed[name])
        if name not in self.paths:
            start = time.perf_counter()
            try:
                path = export_onnx(model, example_input(shape), Path(self.folder) / f"{len(self.paths)}.onnx")
                # no tolerance here: a larger difference is reported beside the timing, not fatal
                self.diffs[name] = check_onnx(model, path, example_input(shape), atol=float("inf"))
            except Exception as error:  # exporter, checker and ONNX Runtime raise many types
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                self.failed[name] = message
                raise
            self.seconds[name] = time.perf_counter() - start
            self.paths[name] = path
        return self.paths[name]


def _torch_step(net: nn.Module, shape: tuple[int, ...], device: torch.device) -> Callable[[int], Callable]:
    from hpbench.export import example_input

    def step(batch: int) -> Callable[[], object]:
        inputs = example_input(shape, batch=batch).to(device)

        def call() -> object:
            with torch.inference_mode():
                return net(inputs)
        return call
    return step


def _onnx_step(session, shape: tuple[int, ...]) -> Callable[[int], Callable]:
    from hpbench.export import example_input

    def step(batch: int) -> Callable[[], object]:
        feed = {session.get_inputs()[0].name: example_input(shape, batch=batch).numpy()}
        return lambda: session.run(None, feed)
    return step


def _onnx_targets(name: str, model: nn.Module, runtime: Runtime, shape: tuple[int, ...], threads: int,
                  exports: _Exports) -> list[Target]:
    """The ONNX export of ``model`` in ONNX Runtime's CPU provider, or in its TensorRT provider.

    On the CPU with more than one thread, two variants: intra-op threads spinning (ONNX Runtime's default)
    and sleeping; :func:`hpbench.latency.time_targets` times both in the same rounds and keeps the faster.
    (Where cores are shared, as on a VM, spinning threads may take a CPU from the thread doing the work:
    ours took 13-16 ms spinning against 7-9.5 ms sleeping in some hours, 5.5 against 7.9 ms in others, and
    a short choice before the timing once picked spinning at 5.5 ms for a run that then measured 14.2 ms.)"""
    from hpbench.export import onnxruntime_session, spinning_words

    path = exports.path(name, model, shape)
    import onnxruntime as ort

    if runtime is Runtime.ONNX:
        ways = (True, False) if threads > 1 else (True,)
        sessions = [onnxruntime_session(path, threads=threads, spinning=spinning) for spinning in ways]
        return [Target(name, runtime, torch.device("cpu"), _onnx_step(session, shape),
                       f"onnxruntime {ort.__version__} CPUExecutionProvider{spinning_words(session)}", threads,
                       variant=f"intra-op spinning {'on' if spinning else 'off'}" if len(ways) > 1 else "")
                for spinning, session in zip(ways, sessions, strict=True)]
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError("onnxruntime has no TensorrtExecutionProvider (onnxruntime-gpu with TensorRT)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=[
        ("TensorrtExecutionProvider", {"trt_fp16_enable": False}), "CUDAExecutionProvider"])
    if session.get_providers()[0] != "TensorrtExecutionProvider":
        raise RuntimeError(f"TensorRT not used: onnxruntime chose {session.get_providers()[0]}")
    return [Target(name, runtime, torch.device("cuda"), _onnx_step(session, shape),
                   f"onnxruntime {ort.__version__} TensorrtExecutionProvider fp32, host input", threads)]


def _targets(name: str, model: nn.Module, runtime: Runtime, device: str, shape: tuple[int, ...], threads: int,
             exports: _Exports) -> tuple[list[Target], str]:
    """A prepared model in ``runtime`` on ``device`` (several variants where a runtime has settings worth
    timing, see :func:`_onnx_targets`) and '' or what the preparation says (fusion)."""
    if runtime in (Runtime.ONNX, Runtime.TENSORRT):
        return _onnx_targets(name, model, runtime, shape, threads, exports), ""
    where, said = torch.device(device), ""
    net = copy.deepcopy(model).eval()
    method = "eager PyTorch, inference mode"
    if runtime is Runtime.FUSED:
        net, said = _fused(net, shape)
        method = "hpbench.fuse.fuse_for_inference, inference mode"
    net = net.to(where)
    if runtime is Runtime.COMPILE:
        net = torch.compile(net)  # compiles (inductor) at the first call, in the warm-up
        method = "torch.compile (inductor), inference mode; compiled in the warm-up"
    if runtime is Runtime.CUDA_GRAPH:
        from hpbench.export import example_input
        from hpbench.latency import _cuda_graph

        return [Target(name, runtime, where, lambda b: _cuda_graph(net, example_input(shape, batch=b).to(where)),
                       "CUDA graph replay of eager PyTorch", threads)], ""
    return [Target(name, runtime, where, _torch_step(net, shape, where), method, threads)], said


def _fused(net: nn.Module, shape: tuple[int, ...]) -> tuple[nn.Module, str]:
    """:func:`hpbench.fuse.fuse_with_report` applied to ``net`` (every model alike; channels_last kept where
    timing a batch-1 input of ``shape`` finds it faster) and its one-line account."""
    from hpbench.export import example_input
    from hpbench.fuse import fuse_with_report

    fused, report = fuse_with_report(net, example_input(shape, batch=1))
    return fused, report.describe()


def _applies(runtime: Runtime, device: str) -> bool:
    if runtime.cuda_only:
        return device == "cuda"
    return device == "cpu" if runtime is Runtime.ONNX else True


def _legacy_budget(budget: Budget, rounds: int | None, min_run_time_s: float | None,
                   throughput_batch: int | None) -> tuple[Budget, bool]:
    """The budget with the old knobs applied: ``rounds``, ``min_run_time_s`` (seconds per round of
    latency), ``throughput_batch`` (largest batch of the sweep; 0: no sweep)."""
    changes: dict[str, object] = {}
    if rounds is not None:
        changes["rounds"] = rounds
    if min_run_time_s is not None:
        changes["seconds"] = min_run_time_s * changes.get("rounds", budget.rounds) / LATENCY_SHARE
    if throughput_batch:
        changes["max_batch"] = throughput_batch
    return dataclasses.replace(budget, **changes), throughput_batch != 0


def profile_models(
    names: Sequence[str],
    *,
    dataset: str,
    devices: Sequence[str] = ("cpu",),
    threads: int | None = None,
    runtimes: Sequence[Runtime] = DEFAULT_RUNTIMES,
    budget: Budget = Budget(),
    sweep: bool = True,
    fvcore: bool = True,
    onnxruntime: bool | None = None,
    rounds: int | None = None,
    min_run_time_s: float | None = None,
    throughput_batch: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ModelProfile]:
    """Profile registered models at their card's input shape for ``dataset``'s joints: counters once,
    then every model in every runtime that applies to each device, timed together (:func:`time_targets`:
    interleaved rounds within ``budget``, contention detected, the batch sweep when ``sweep``).

    ``onnxruntime``: True adds, False removes :attr:`Runtime.ONNX`. ``rounds``, ``min_run_time_s`` (seconds
    per latency round) and ``throughput_batch`` (largest swept batch, 0: none) adjust ``budget``.
    """
    budget, swept = _legacy_budget(budget, rounds, min_run_time_s, throughput_batch)
    swept = swept and sweep
    runtimes = [r for r in runtimes if r is not Runtime.ONNX or onnxruntime is not False]
    if onnxruntime and Runtime.ONNX not in runtimes:
        runtimes.append(Runtime.ONNX)
    built, profiles = _count_all(names, dataset=dataset, fvcore=fvcore, progress=progress)
    threads = threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="hpbench-onnx-") as folder:
        exports = _Exports(folder)
        try:
            torch.set_num_threads(1)  # exports and checks: no timing here, and a busy machine punishes 2 threads
            targets = _prepare_all(built, profiles, devices=devices, runtimes=runtimes, threads=threads,
                                   exports=exports, progress=progress)
        finally:
            torch.set_num_threads(previous)
        try:
            torch.set_num_threads(threads)
            timings, notes = time_targets(targets, budget, sweep=swept, progress=progress)
        finally:
            torch.set_num_threads(previous)
    for name in built:
        profiles[name]["timings"] = tuple(t for t in timings if t.model == name)
        profiles[name]["notes"] += tuple(note.removeprefix(f"{name}, ") for note in notes if note.startswith(f"{name}, "))
        profiles[name]["onnx_max_abs_diff"] = exports.diffs.get(name)
        if name in exports.seconds:
            profiles[name]["notes"] += (f"ONNX export took {exports.seconds[name]:.1f} s (not in the timings)",)
        if exports.diffs.get(name, 0.0) > ONNX_TOLERANCE:
            profiles[name]["notes"] += (f"onnxruntime differs from PyTorch by {exports.diffs[name]:.2g} > "
                                        f"{ONNX_TOLERANCE:g}",)
    return [ModelProfile(model=name, dataset=dataset, input_shape=built[name][1], **profiles[name])  # type: ignore[arg-type]
            for name in names]


def _prepare_all(built: dict[str, tuple[nn.Module, tuple[int, ...]]], profiles: dict[str, dict[str, object]], *,
                 devices: Sequence[str], runtimes: Sequence[Runtime], threads: int, exports: _Exports,
                 progress: Callable[[str], None] | None) -> list[Target]:
    """Every model in every runtime that applies to each device, runtime by runtime; what cannot be prepared
    (no fuser, a failed export, no TensorRT) is a note in ``profiles``."""
    targets = []
    for device in devices:
        for runtime in (r for r in runtimes if _applies(r, device)):
            for name, (model, shape) in built.items():
                if progress:
                    progress(f"preparing {name} in {runtime.label}" + (" (ONNX export)" if runtime is Runtime.ONNX
                                                                         else ""))
                try:
                    prepared, said = _targets(name, model, runtime, device, shape, threads, exports)
                except Exception as error:  # a runtime that cannot take a model is said, not fatal
                    _skip_note(profiles[name], runtime, error)
                    continue
                targets += prepared
                if said and said not in profiles[name]["notes"]:
                    profiles[name]["notes"] += (said,)
    return targets


def _skip_note(entry: dict[str, object], runtime: Runtime, error: Exception) -> None:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    note = (f"onnxruntime latency skipped: {message}" if runtime is Runtime.ONNX
            else f"{runtime.label} not timed: {message}")
    if note not in entry["notes"]:
        entry["notes"] += (note,)


def _count_all(names: Sequence[str], *, dataset: str, fvcore: bool, progress: Callable[[str], None] | None):
    """Build each model (its card first: a model without one is a CardError naming the file) and count
    its parameters and MACs once: ({name: (model, input shape)}, {name: ModelProfile fields})."""
    from hpbench.cards import load_card
    from hpbench.models import create_model

    built: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}
    cards = {}
    for name in names:
        cards[name] = load_card(name)
        built[name] = (create_model(name, dataset=dataset).eval(), tuple(cards[name].input_shape))
    profiles: dict[str, dict[str, object]] = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # counts do not depend on it; on a busy machine 2 threads wait for each other (5x)
    try:
        for name, (model, shape) in built.items():
            if progress:
                progress(f"counting parameters and MACs of {name}")
            profiles[name] = _counts(model, shape, cards[name], dataset=dataset, fvcore=fvcore)
    finally:
        torch.set_num_threads(previous)
    return built, profiles


def _counts(model: nn.Module, shape: tuple[int, ...], card, *, dataset: str, fvcore: bool) -> dict[str, object]:
    """ModelProfile's count fields of ``model`` (``card``: its hpbench.cards.ModelCard)."""
    example = torch.zeros(1, *shape)
    declared = card.declared.get(dataset)
    unused = unused_parameters(model, example)
    return {
        "params": count_parameters(model),
        "declared_params": None if declared is None else declared.params,
        "excluded_params": card.excluded_params,
        "unused": None if unused is None else tuple(unused),
        "macs": count_macs(model, example, fvcore=fvcore),
        "notes": (),
    }


def profile_rows(profiles: Sequence[ModelProfile]):  # -> pandas.DataFrame
    """Tidy result rows (hpbench.results): params, MACs per counter, then per runtime and batch: latency
    percentiles and spread (batch 1), throughput and peak memory. ``device`` starts with the runtime's key in
    :attr:`ModelProfile.latency` ("cpu: <CPU>" for eager PyTorch, "cpu eager fused: <CPU>", "onnxruntime-cpu:
    <CPU>"), so that reports keep one latency per model and configuration; ``counter`` names the runtime and
    its method, ``n`` the samples (rounds for the spread), ``source`` "reliable" or "unreliable: <reasons>"."""
    import pandas as pd

    import hpbench
    from hpbench.results import make_rows

    frames = []
    for profile in profiles:
        records: list[dict[str, object]] = [{"metric": "params", "value": profile.params, "unit": "count"}]
        for counter in ("thop", "exact", "fvcore"):
            value = getattr(profile.macs, counter)
            if value is not None:
                records.append({"metric": "macs", "value": value / 1e9, "unit": "GMAC", "counter": counter})
        for t in profile.timings:
            where = {"device": f"{t.env.device}: {t.env.device_name}", "runtime": t.runtime.label,
                     "dtype": t.env.dtype, "threads": t.env.threads, "torch": t.env.torch, "batch": t.batch,
                     "counter": t.method, "n": t.samples,
                     "source": "reliable" if t.reliable else "unreliable: " + "; ".join(t.reasons)}
            if t.unverified:
                where["source"] = "unverified; " + str(where["source"])
            if t.batch == 1:
                records += [{"metric": f"latency_{stat}", "value": getattr(t, f"{stat}_ms"), "unit": "ms", **where}
                            for stat in ("median", "p10", "p90")]
                if t.spread is not None:
                    records.append({"metric": "latency_spread", "value": t.spread, "unit": "fraction", **where,
                                    "n": t.rounds})
            records.append({"metric": "throughput", "value": t.throughput, "unit": "samples/s", **where})
            if t.peak_mb is not None:
                records.append({"metric": "peak_memory", "value": t.peak_mb, "unit": "MB", **where})
        frames.append(make_rows(records, model=profile.model, dataset=profile.dataset, split="profile",
                                hpbench=hpbench.__version__))
    return pd.concat(frames, ignore_index=True)


DEFAULT_REFERENCE = "trinet"
"""Model whose latency the others are divided by, when registered and no other is asked for."""


@dataclass(frozen=True)
class CostRow:
    """One model's parameters and MACs (billions) per counter; ``disagree``: counters differ > 5 %."""

    model: str
    params: int
    thop_gmac: float
    exact_gmac: float
    fvcore_gmac: float | None
    disagree: bool


@dataclass(frozen=True)
class TimingRow:
    """One timing as the table shows it: its ratio to the reference's median in the same runtime, device and
    batch (None: no reference, or the reference not timed there)."""

    timing: Timing
    ratio: float | None


@dataclass(frozen=True)
class ProfileReport:
    """What ``hpbench profile`` shows: cost and timing rows, notes (conventions, environment, per-model
    caveats, why a figure is unreliable), warnings (skipped devices, cards that disagree with the code) and
    the results file written."""

    dataset: str
    reference: str | None
    budget: Budget
    runtimes: tuple[Runtime, ...]
    profiles: tuple[ModelProfile, ...]
    costs: tuple[CostRow, ...]
    timings: tuple[TimingRow, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    written: os.PathLike[str] | None = None

    @property
    def unreliable(self) -> tuple[Timing, ...]:
        return tuple(row.timing for row in self.timings if not row.timing.reliable)


def profile_report(
    names: Sequence[str],
    *,
    dataset: str = "nyu",
    device: str = "cpu",
    reference: str | None = None,
    threads: int | None = None,
    runtimes: Sequence[Runtime] = DEFAULT_RUNTIMES,
    budget: Budget = Budget(),
    sweep: bool = True,
    fvcore: bool = True,
    onnxruntime: bool | None = None,
    out: os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    **legacy: int | float | None,
) -> ProfileReport:
    """Profile ``names`` beside a reference model and tabulate the results (``out``: also write result rows).

    ``device``: cpu, cuda or auto (cpu, and cuda when present); an absent GPU is a warning.
    ``reference`` defaults to :data:`DEFAULT_REFERENCE` when registered and is profiled first.
    ``legacy``: ``rounds``, ``min_run_time_s``, ``throughput_batch`` as :func:`profile_models` takes them.
    """
    from hpbench.models import list_models

    if reference is None and DEFAULT_REFERENCE in list_models():
        reference = DEFAULT_REFERENCE
    names = list(dict.fromkeys([reference, *names] if reference is not None else names))
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu", "cuda"]}[device]
    warnings_: list[str] = []
    if "cuda" in devices and not torch.cuda.is_available():
        warnings_.append("no GPU: CUDA latency skipped on this machine")
        devices.remove("cuda")
    if any(r.cuda_only for r in runtimes) and "cuda" not in devices and tuple(runtimes) != DEFAULT_RUNTIMES:
        warnings_.append(", ".join(r.label for r in runtimes if r.cuda_only) + ": CUDA only, not timed")
    profiles = profile_models(names, dataset=dataset, devices=devices, threads=threads, runtimes=runtimes,
                              budget=budget, sweep=sweep, fvcore=fvcore, onnxruntime=onnxruntime, progress=progress,
                              **legacy)  # type: ignore[arg-type]
    warnings_ += [f"{p.model}: card declares {p.declared_params:,} parameters, the model has {p.params:,}"
                  for p in profiles if p.declared_params is not None and p.declared_params != p.params]
    if out is not None:
        from hpbench.results import write_results

        write_results(profile_rows(profiles), out)
    rows = _timing_rows(profiles, reference)
    used = _legacy_budget(budget, legacy.get("rounds"), legacy.get("min_run_time_s"), legacy.get("throughput_batch"))[0]
    return ProfileReport(
        dataset=dataset, reference=reference, budget=used, runtimes=tuple(runtimes), profiles=tuple(profiles),
        costs=tuple(_cost_row(profile) for profile in profiles), timings=rows,
        notes=_profile_notes(profiles, rows, used, sweep=sweep and legacy.get("throughput_batch") != 0),
        warnings=tuple(warnings_), written=out,
    )


def _cost_row(profile: ModelProfile) -> CostRow:
    macs = profile.macs
    return CostRow(model=profile.model, params=profile.params, thop_gmac=macs.thop / 1e9, exact_gmac=macs.exact / 1e9,
                   fvcore_gmac=None if macs.fvcore is None else macs.fvcore / 1e9, disagree=macs.disagree)


def _timing_rows(profiles: Sequence[ModelProfile], reference: str | None) -> tuple[TimingRow, ...]:
    """Rows grouped by runtime (in timing order), then model, then batch: ratios compare models within one
    runtime."""
    timings = [t for p in profiles for t in p.timings]
    baseline = {(t.runtime, t.env.device, t.batch): t.median_ms for t in timings if t.model == reference}
    order = {key: index for index, key in enumerate(dict.fromkeys((t.env.device, t.runtime) for t in timings))}
    models = {p.model: index for index, p in enumerate(profiles)}
    timings.sort(key=lambda t: (order[t.env.device, t.runtime], models[t.model], t.batch))
    return tuple(TimingRow(t, t.median_ms / baseline[key] if (key := (t.runtime, t.env.device, t.batch)) in baseline
                           else None) for t in timings)


def _profile_notes(profiles: Sequence[ModelProfile], rows: Sequence[TimingRow], budget: Budget, *,
                   sweep: bool = True) -> tuple[str, ...]:
    """How timing was done, why any figure is unreliable, what each counter counts, and each model's caveats."""
    notes = _timing_notes([row.timing for row in rows], budget, sweep=sweep)
    notes += [f"{name}: {convention}" for name, convention in COUNTER_CONVENTIONS.items()]
    for p in profiles:
        notes += [f"(!) {p.model}: {note}" if p.macs.disagree else f"{p.model}: {note}" for note in p.macs.notes]
        if p.excluded_params:
            notes.append(f"{p.model}: parameters exclude {p.excluded_params}")
        if p.onnx_max_abs_diff is not None:
            notes.append(f"{p.model}: ONNX export, max |onnxruntime - torch| = {p.onnx_max_abs_diff:.2g}")
        notes += [f"{p.model}: {note}" for note in p.notes]
        if p.unused:
            notes.append(f"{p.model}: no gradient reaches {plural(len(p.unused), 'parameter tensor')}: "
                         f"{', '.join(p.unused[:5])}")
    return tuple(notes)


def _timing_notes(timings: Sequence[Timing], budget: Budget, *, sweep: bool = True) -> list[str]:
    if not timings:
        return []
    env, loads = timings[0].env, [value for t in timings for value in t.load]
    waits = [t.wait for t in timings if t.wait is not None]
    notes = [f"timing: {plural(env.threads, 'thread')}, {env.device_name}, torch {env.torch}, {env.dtype}, "
             f"inference mode; per-call p10/median/p90 over n samples in up to {plural(budget.rounds, 'round')} "
             f"interleaved across models and runtimes; spread = (max - min) / median of the rounds' medians; "
             f"budget {significant(budget.seconds)} s per model and runtime (latency: {budget.samples} samples "
             f"at most, {budget.min_samples} at least; "
             + (f"batches up to {budget.max_batch} that fit the rest)" if sweep else "no batch sweep)"),
             f"machine: load {min(loads):.1f}-{max(loads):.1f} on {plural(timings[0].cores, 'core')}"
             + (f"; our threads waited for a CPU {100 * min(waits):.0f}-{100 * max(waits):.0f} % of their "
                f"runnable time (/proc schedstat)" if waits else "")]
    if any(t.peak_mb is not None for t in timings):
        notes.append("peak MB: during the first call, the most memory held by tensors PyTorch created (activations, "
                     "outputs; on a GPU, allocated bytes), or the process's resident-set growth (ONNX Runtime)")
    if waits and max(waits) > MAX_WAIT and env.threads > 1:
        notes.append(f"busy machine: with {env.threads} threads a call waits for its slowest thread to get a CPU "
                     f"(--threads 1 suffers less; --precise measures longer)")
    notes += [f"(!) {t.model}, {t.runtime.label}, batch {t.batch}: {'; '.join(t.reasons)}"
              + (" (repeated once)" if t.repeated else "") for t in timings if not t.reliable]
    notes += [f"{t.model}, {t.runtime.label}, batch {t.batch}: reliable when repeated (first: {'; '.join(t.repeated)})"
              for t in timings if t.reliable and t.repeated]
    if any(t.unverified for t in timings):
        notes.append("CUDA graph and TensorRT rows: code paths not yet confirmed by a GPU run (unverified)")
    return notes
