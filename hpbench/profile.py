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

Latency: ``torch.utils.benchmark`` ``blocked_autorange`` after warm-up, in
inference mode, at a stated thread count; median and p10/p90 over the measured
blocks, with device, torch version, dtype and threads recorded beside the figure.
Models are timed in interleaved rounds (A, B, A, B, ...) so that ratios come from
the same process and moment, and the round-to-round spread is reported. Optionally
each model's ONNX export (hpbench.export) is timed the same way on ONNX Runtime's
CPU provider at the same thread count, under the device ``onnxruntime-cpu``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from hpbench._text import plural
from hpbench.export import onnxruntime_latency
from hpbench.latency import (
    Environment, Latency, environment, interleaved_latency, measure_latency, summarize_rounds,
)

__all__ = [
    "COUNTER_CONVENTIONS",
    "DEFAULT_REFERENCE",
    "ONNXRUNTIME",
    "CostRow",
    "Environment",
    "LatencyRow",
    "Latency",
    "MacCounts",
    "count_macs",
    "count_parameters",
    "environment",
    "exact_macs",
    "fvcore_macs",
    "measure_latency",
    "onnxruntime_latency",
    "thop_macs",
    "unused_parameters",
    "interleaved_latency",
    "profile_models",
    "profile_report",
    "profile_rows",
    "ProfileReport",
    "summarize_rounds",
    "ModelProfile",
]

COUNTER_CONVENTIONS: dict[str, str] = {
    "thop": "thop MACs (papers' 'FLOPs'): modules only; transposed conv by output volume; BN 4/elem",
    "exact": "FlopCounterMode FLOPs / 2: conv, linear, matmul, attention MACs; no bias, BN, softmax",
    "fvcore": "fvcore MACs (jit trace): conv, linear, matmul, einsum, upsample, BN; unknown ops listed",
}
ONNXRUNTIME = "onnxruntime-cpu"
"""Latency key (beside "cpu", "cuda") and row device of ONNX Runtime's CPU provider timings."""
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

    (thop registers buffers on the model it profiles: never hand it the real one.)
    """
    probe = copy.deepcopy(model).eval()
    with _quiet(), torch.no_grad():
        import thop  # its import warns about distutils

        macs, _ = thop.profile(probe, inputs=(example,), verbose=False)
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
    """Everything measured about one model at one dataset's joint count."""

    model: str
    dataset: str
    input_shape: tuple[int, ...]
    params: int
    declared_params: int | None
    excluded_params: str
    unused: tuple[str, ...] | None
    macs: MacCounts
    latency: dict[str, list[Latency]]
    throughput: dict[str, Latency]
    onnx_max_abs_diff: float | None = None
    notes: tuple[str, ...] = ()


def profile_models(
    names: Sequence[str],
    *,
    dataset: str,
    devices: Sequence[str] = ("cpu",),
    threads: int | None = None,
    batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 3,
    min_run_time_s: float = 1.0,
    fvcore: bool = True,
    onnxruntime: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ModelProfile]:
    """Profile registered models at their card's input shape for ``dataset``'s joints.

    Latency at ``batch`` is timed in ``rounds`` interleaved rounds per device;
    throughput once at ``throughput_batch`` (0 skips it). ``onnxruntime``: also
    time each model's ONNX export on ONNX Runtime's CPU provider (latency key
    ``ONNXRUNTIME``), or leave a note why not.
    """
    from hpbench.cards import load_card
    from hpbench.models import create_model

    built: dict[str, tuple[nn.Module, tuple[int, ...], object]] = {}
    for name in names:
        card = load_card(name)  # a model without a card is a CardError naming the file it expected
        built[name] = (create_model(name, dataset=dataset).eval(), card.input_shape, card)

    profiles: dict[str, dict[str, object]] = {}
    for name, (model, shape, card) in built.items():
        if progress:
            progress(f"{name}: counting parameters and MACs")
        example = torch.zeros(1, *shape)
        declared = card.declared.get(dataset) if card is not None else None
        unused = unused_parameters(model, example)
        profiles[name] = {
            "params": count_parameters(model),
            "declared_params": None if declared is None else declared.params,
            "excluded_params": "" if card is None else card.excluded_params,
            "unused": None if unused is None else tuple(unused),
            "macs": count_macs(model, example, fvcore=fvcore),
            "latency": {},
            "throughput": {},
            "notes": (),
        }
    for device in devices:
        if progress:
            progress(f"timing {plural(len(built), 'model')} on {device}, {plural(rounds, 'round')}")
        options = dict(device=device, threads=threads, min_run_time_s=min_run_time_s)
        timed = interleaved_latency(
            {name: (model, torch.zeros(batch, *shape)) for name, (model, shape, _) in built.items()},
            rounds=rounds, **options,
        )
        for name, latencies in timed.items():
            profiles[name]["latency"][device] = latencies
            if throughput_batch:
                model, shape, _ = built[name]
                profiles[name]["throughput"][device] = measure_latency(
                    model, torch.zeros(throughput_batch, *shape), **options
                )
    if onnxruntime:
        _time_onnxruntime(built, profiles, batch=batch, threads=threads, rounds=rounds,
                          min_run_time_s=min_run_time_s, progress=progress)
    return [
        ModelProfile(model=name, dataset=dataset, input_shape=built[name][1], **profiles[name])  # type: ignore[arg-type]
        for name in names
    ]


def _time_onnxruntime(built: dict[str, tuple[nn.Module, tuple[int, ...], object]],
                      profiles: dict[str, dict[str, object]], *, batch: int, threads: int | None, rounds: int,
                      min_run_time_s: float, progress: Callable[[str], None] | None) -> None:
    """Export each model to a temporary ONNX file and compare ONNX Runtime with PyTorch, then time
    the files in interleaved rounds; a missing onnxruntime or a failed export leaves a note instead."""
    import tempfile
    from pathlib import Path

    from hpbench.export import OnnxUnavailableError, check_onnx, example_input, export_onnx

    with tempfile.TemporaryDirectory(prefix="hpbench-onnx-") as folder:
        files: dict[str, tuple[Path, tuple[int, ...]]] = {}
        for index, (name, (model, shape, _)) in enumerate(built.items()):
            if progress:
                progress(f"{name}: exporting to ONNX")
            try:
                path = export_onnx(model, example_input(shape), Path(folder) / f"{index}.onnx")
                # no tolerance here: a larger difference is reported beside the latency, not fatal
                profiles[name]["onnx_max_abs_diff"] = check_onnx(model, path, example_input(shape, batch=batch),
                                                                  atol=float("inf"))
            except OnnxUnavailableError as error:
                for entry in profiles.values():
                    entry["notes"] += (f"onnxruntime latency skipped: {error}",)
                return
            except Exception as error:  # exporter, checker and ONNX Runtime raise many types
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                profiles[name]["notes"] += (f"onnxruntime latency skipped: {message}",)
                continue
            files[name] = (path, shape)
            if profiles[name]["onnx_max_abs_diff"] > ONNX_TOLERANCE:
                profiles[name]["notes"] += (f"onnxruntime differs from PyTorch by "
                                            f"{profiles[name]['onnx_max_abs_diff']:.2g} > {ONNX_TOLERANCE:g}",)
        if progress and files:
            progress(f"timing {plural(len(files), 'ONNX export')} on {ONNXRUNTIME}, {plural(rounds, 'round')}")
        for _ in range(rounds):
            for name, (path, shape) in files.items():
                latency = onnxruntime_latency(path, torch.zeros(batch, *shape), threads=threads,
                                              min_run_time_s=min_run_time_s)
                profiles[name]["latency"].setdefault(ONNXRUNTIME, []).append(latency)


def profile_rows(profiles: Sequence[ModelProfile]):  # -> pandas.DataFrame
    """Tidy result rows (hpbench.results) of profiles: params, MACs per counter, latency, throughput."""
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
        for device, latencies in profile.latency.items():
            env = latencies[0].env
            where = {"device": f"{device}: {env.device_name}", "dtype": env.dtype, "threads": env.threads,
                     "torch": env.torch, "batch": latencies[0].batch, "counter": latencies[0].method}
            summary = summarize_rounds(latencies)
            records += [
                {"metric": "latency_median", "value": summary["median_ms"], "unit": "ms", **where},
                {"metric": "latency_p10", "value": summary["p10_ms"], "unit": "ms", **where},
                {"metric": "latency_p90", "value": summary["p90_ms"], "unit": "ms", **where},
                {"metric": "latency_spread", "value": summary["spread"], "unit": "fraction", "n": len(latencies),
                 **where},
            ]
            if device in profile.throughput:
                big = profile.throughput[device]
                records.append({"metric": "throughput", "value": big.throughput, "unit": "samples/s",
                                **where, "batch": big.batch})
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
class LatencyRow:
    """One model's latency on one device over the interleaved rounds, its ratio to the reference
    on that device (None: no reference, or none timed there) and its throughput (None: not measured)."""

    model: str
    device: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    spread: float
    ratio: float | None
    samples_per_s: float | None


@dataclass(frozen=True)
class ProfileReport:
    """What ``hpbench profile`` shows: cost and latency rows, notes (conventions, environment, per-model
    caveats), warnings (skipped devices, cards that disagree with the code) and the results file written."""

    dataset: str
    reference: str | None
    throughput_batch: int
    profiles: tuple[ModelProfile, ...]
    costs: tuple[CostRow, ...]
    latencies: tuple[LatencyRow, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    written: os.PathLike[str] | None = None


def profile_report(
    names: Sequence[str],
    *,
    dataset: str = "nyu",
    device: str = "cpu",
    reference: str | None = None,
    threads: int | None = None,
    batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 3,
    min_run_time_s: float = 1.0,
    fvcore: bool = True,
    onnxruntime: bool | None = None,
    out: os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProfileReport:
    """Profile ``names`` beside a reference model and tabulate the results (``out``: also write result rows).

    ``device``: cpu, cuda or auto (cpu, and cuda when present); an absent GPU is a warning.
    ``reference`` defaults to :data:`DEFAULT_REFERENCE` when registered and is profiled first.
    ``onnxruntime`` defaults to whether onnxruntime is installed.
    """
    import importlib.util

    from hpbench.models import list_models

    if reference is None and DEFAULT_REFERENCE in list_models():
        reference = DEFAULT_REFERENCE
    names = list(dict.fromkeys([reference, *names] if reference is not None else names))
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu", "cuda"]}[device]
    warnings_: list[str] = []
    if "cuda" in devices and not torch.cuda.is_available():
        warnings_.append("no GPU: CUDA latency skipped on this machine")
        devices.remove("cuda")
    if onnxruntime is None:
        onnxruntime = importlib.util.find_spec("onnxruntime") is not None
    profiles = profile_models(names, dataset=dataset, devices=devices, threads=threads, batch=batch,
                              throughput_batch=throughput_batch, rounds=rounds, min_run_time_s=min_run_time_s,
                              fvcore=fvcore, onnxruntime=onnxruntime, progress=progress)
    warnings_ += [f"{p.model}: card declares {p.declared_params:,} parameters, the model has {p.params:,}"
                  for p in profiles if p.declared_params is not None and p.declared_params != p.params]
    if out is not None:
        from hpbench.results import write_results

        write_results(profile_rows(profiles), out)
    return ProfileReport(
        dataset=dataset, reference=reference, throughput_batch=throughput_batch, profiles=tuple(profiles),
        costs=tuple(_cost_row(profile) for profile in profiles), latencies=_latency_rows(profiles, reference),
        notes=_profile_notes(profiles, batch=batch, rounds=rounds), warnings=tuple(warnings_), written=out,
    )


def _cost_row(profile: ModelProfile) -> CostRow:
    macs = profile.macs
    return CostRow(model=profile.model, params=profile.params, thop_gmac=macs.thop / 1e9, exact_gmac=macs.exact / 1e9,
                   fvcore_gmac=None if macs.fvcore is None else macs.fvcore / 1e9, disagree=macs.disagree)


def _latency_rows(profiles: Sequence[ModelProfile], reference: str | None) -> tuple[LatencyRow, ...]:
    """Rows per model, then device in timing order: PyTorch's cpu, ONNX Runtime's, then cuda."""
    order = {"cpu": 0, ONNXRUNTIME: 1}
    baseline = {device: summarize_rounds(latencies)["median_ms"]
                for p in profiles if p.model == reference for device, latencies in p.latency.items()}
    rows = []
    for profile in profiles:
        for device in sorted(profile.latency, key=lambda name: order.get(name, 2)):
            summary = summarize_rounds(profile.latency[device])
            big = profile.throughput.get(device)
            rows.append(LatencyRow(
                model=profile.model, device=device, median_ms=summary["median_ms"], p10_ms=summary["p10_ms"],
                p90_ms=summary["p90_ms"], spread=summary["spread"],
                ratio=summary["median_ms"] / baseline[device] if device in baseline else None,
                samples_per_s=None if big is None else big.throughput,
            ))
    return tuple(rows)


def _profile_notes(profiles: Sequence[ModelProfile], *, batch: int, rounds: int) -> tuple[str, ...]:
    """How latency was measured, what each counter counts, and each model's caveats, one line each."""
    notes = []
    first = next(iter(profiles[0].latency.values()), None) if profiles else None
    if first:
        env = first[0].env
        notes.append(f"latency: {first[0].method}, batch {batch}, {env.dtype}, {plural(env.threads, 'thread')}, "
                     f"{env.device_name}, torch {env.torch}; spread = (max - min) / median of "
                     f"{plural(rounds, 'interleaved round')}")
    ort = next((p.latency[ONNXRUNTIME][0] for p in profiles if ONNXRUNTIME in p.latency), None)
    if ort:
        notes.append(f"{ONNXRUNTIME}: {ort.method}, each model's ONNX export at the same batch and "
                     f"{plural(ort.env.threads, 'thread')}")
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
