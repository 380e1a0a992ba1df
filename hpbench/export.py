"""ONNX export of hpbench models, checked against PyTorch with ONNX Runtime.

Exporter: torch.onnx's ``torch.export``-based exporter (``dynamo=True``), the
default since torch 2.9; the TorchScript exporter is deprecated and warns. It
exports ours (and its ablations), trinet, v2v (voxelization by scatter inside
forward), a2j, tinycnn and meanpose; ONNX Runtime reproduces their joints to
about 1e-5 (crop px, normalized depth), a2j's to about 2e-4 px (float32 rounding
of its anchor sums: PyTorch float32 is itself 1.3e-4 px from float64). handfold does not export: ``torch.linalg.eigh`` (its
PCA frame) has no ONNX operator.

The batch axis stays symbolic (``dynamic_batch``). ``torch.export`` specializes
dimensions of size 1, so a batch-1 example is traced at batch 2; the exported
graph is then checked to really take any batch.

onnx, onnxscript and onnxruntime are the optional extra ``hpbench[onnx]``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import os
import re
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from hpbench.files import atomic_write
from hpbench.latency import Latency, environment, measure_latency, time_step, to_latency

__all__ = [
    "DEFAULT_OPSET",
    "ExportReport",
    "OnnxExportError",
    "OnnxMismatchError",
    "OnnxUnavailableError",
    "check_onnx",
    "default_export_path",
    "example_input",
    "export_model",
    "export_onnx",
    "faster_onnxruntime_session",
    "onnxruntime_latency",
    "onnxruntime_session",
    "run_onnx",
    "spinning_words",
    "spins",
]

DEFAULT_OPSET = 18
"""ONNX opset written by default: the exporter's own default, read by ONNX Runtime >= 1.14."""
INPUT_NAME, OUTPUT_NAME = "depth", "joints"


class OnnxUnavailableError(ImportError):
    """onnx, onnxscript or onnxruntime is not installed."""


class OnnxExportError(RuntimeError):
    """The model cannot be exported; the message names the operator when the exporter does."""


class OnnxMismatchError(ValueError):
    """ONNX Runtime's output differs from PyTorch's by more than the tolerance."""


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxUnavailableError(
            f"{module} is not installed; ONNX export needs the optional extra: pip install 'hpbench[onnx]'"
        ) from None


def example_input(shape: tuple[int, ...], *, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A (batch, *shape) normalized depth crop, uniform in [-1, 1): varied enough to check an export."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, *shape, generator=generator) * 2 - 1


_OPS = (
    re.compile(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)"),  # torch.export-based exporter
    re.compile(r"'(\w+::[\w.]+)'"),  # aten::op names (unsupported FX nodes, TorchScript exporter)
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _unsupported_ops(message: str) -> list[str]:
    """Operator names in an exporter's error message ('hpbench_test.mystery.default', 'aten::op')."""
    ops = {".".join(match) for match in _OPS[0].findall(message)} | set(_OPS[1].findall(message))
    return sorted(ops)


def _first_line(error: BaseException) -> str:
    text = _ANSI.sub("", str(error)).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (eval mode, on a copy) at ``example``'s shape to ``path``; returns the path.

    The file is written atomically (temp file + rename) after ``onnx.checker``
    accepts it. Input ``depth`` (B, 1, S, S), output ``joints`` (B, J, 3); B is
    symbolic when ``dynamic_batch``.
    """
    for module in ("onnx", "onnxscript"):
        _require(module)
    import onnx

    path = Path(path)
    probe = copy.deepcopy(model).eval()
    if dynamic_batch and example.shape[0] == 1:  # torch.export would fix a size-1 batch to 1
        example = example.expand(2, *example.shape[1:]).contiguous()
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                probe, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, verbose=False, report=False,
            )
    except Exception as error:  # the exporter raises several types (torch.export, onnxscript, its own)
        ops = _unsupported_ops(str(error))
        which = f"unsupported operator(s) {', '.join(ops)}" if ops else _first_line(error)
        raise OnnxExportError(f"{type(model).__name__} cannot be exported to ONNX (opset {opset}): {which}") from error

    def save_checked(temporary: str) -> None:
        program.save(temporary, external_data=False)
        proto = onnx.load(temporary)
        onnx.checker.check_model(proto, full_check=True)
        if dynamic_batch:
            batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
            if not batch_dim.dim_param:
                raise OnnxExportError(f"{type(model).__name__}: the exported graph fixes the batch to "
                                      f"{batch_dim.dim_value}; export with dynamic_batch=False")

    atomic_write(path, save_checked)  # an earlier file stays whole; errors name ``path``
    return path


SPINNING_KEY = "session.intra_op.allow_spinning"
"""The session option that lets idle intra-op threads sleep ("0") instead of spin-waiting."""
CHOICE_SECONDS = 0.15
"""About how long :func:`faster_onnxruntime_session` times each session per round (3 rounds; one call each
when a call takes longer)."""


def onnxruntime_session(path: str | os.PathLike[str], *, threads: int = 1, spinning: bool = True) -> Any:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads (one inter-op thread).

    ``spinning``: whether idle intra-op threads spin-wait for the next operator (ONNX Runtime's default) or
    sleep (``session.intra_op.allow_spinning`` = 0)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    if not spinning:
        options.add_session_config_entry(SPINNING_KEY, "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def spins(session: Any) -> bool:
    """Whether ``session``'s idle intra-op threads spin-wait (ONNX Runtime's default)."""
    try:
        return session.get_session_options().get_session_config_entry(SPINNING_KEY) != "0"
    except RuntimeError:  # not set: the default
        return True


def spinning_words(session: Any) -> str:
    """", intra-op spinning off" for a session whose threads sleep, else "" (ONNX Runtime's default)."""
    return "" if spins(session) else ", intra-op spinning off"


def _call_seconds(session: Any, example: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run_onnx(session, example)
    return (time.perf_counter() - start) / calls


def faster_onnxruntime_session(path: str | os.PathLike[str], example: torch.Tensor, *, threads: int,
                               measure: Callable[[Any, int], float] | None = None) -> tuple[Any, str]:
    """The faster on ``example`` of two sessions on ``path``, intra-op spinning on (the default) and off, and
    a line saying which, with each one's median seconds per call; with one thread (nothing to spin) the
    default session and "".

    Spinning threads take a CPU from the thread doing the work wherever the cores are shared (a VM's
    hyperthreads, another job): on this project's 2-core VM ours at batch 1 and 2 threads took 12-16 ms with
    spinning and 7-9.5 ms without, in alternating runs, while at other times spinning was the faster (6.3-6.5
    against 8.6-9.5 ms, 2026-12-03).
    The sessions take turns: one warm-up call each, then 3 rounds of about :data:`CHOICE_SECONDS` each (a
    single round of one call when a call takes longer). ``measure(session, calls)`` (seconds per call) replaces
    the clock in tests."""
    if threads <= 1:
        return onnxruntime_session(path, threads=threads), ""
    measure = measure or (lambda session, calls: _call_seconds(session, example, calls))
    sessions = {True: onnxruntime_session(path, threads=threads, spinning=True),
                False: onnxruntime_session(path, threads=threads, spinning=False)}
    first = {spinning: measure(session, 1) for spinning, session in sessions.items()}  # warm-up
    slowest = max(first.values())
    rounds, calls = (3, max(1, int(CHOICE_SECONDS / slowest))) if slowest < CHOICE_SECONDS else (1, 1)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for spinning, session in sessions.items():
            times[spinning].append(measure(session, calls))
    medians = {spinning: statistics.median(values) for spinning, values in times.items()}
    chosen = min(medians, key=lambda spinning: (medians[spinning], not spinning))  # a tie keeps the default
    said = (f"onnxruntime: intra-op spinning {'on' if chosen else 'off'}, measured "
            f"{1e3 * medians[chosen]:.2f} vs {1e3 * medians[not chosen]:.2f} ms")
    return sessions[chosen], said


def run_onnx(session: Any, example: torch.Tensor) -> np.ndarray:
    """The session's first output for ``example`` (float32 numpy)."""
    inputs = {session.get_inputs()[0].name: example.detach().cpu().numpy().astype(np.float32, copy=False)}
    return session.run(None, inputs)[0]


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example: torch.Tensor,
    *,
    atol: float = 1e-4,
    threads: int = 1,
) -> float:
    """Max |ONNX Runtime - PyTorch| over ``example``'s outputs (crop px and normalized depth).

    Raises OnnxMismatchError when the shapes differ or the difference exceeds ``atol``.
    """
    session = onnxruntime_session(path, threads=threads)
    was_training = model.training
    try:
        with torch.inference_mode():
            expected = model.eval()(example).float().cpu().numpy()
    finally:
        model.train(was_training)
    actual = run_onnx(session, example)
    if actual.shape != expected.shape:
        raise OnnxMismatchError(f"{path}: ONNX Runtime returns {actual.shape}, PyTorch {expected.shape}")
    difference = float(np.abs(actual - expected).max())
    if not difference <= atol:  # NaN fails too
        raise OnnxMismatchError(f"{path}: ONNX Runtime differs from PyTorch by {difference:.3g} > atol {atol:g} "
                                f"at batch {example.shape[0]}")
    return difference


@dataclass(frozen=True)
class ExportReport:
    """An exported and checked ONNX file: its input shape (without batch), the max |ONNX Runtime - PyTorch|
    per checked batch size, (when timed) CPU latency at batch 1 per runtime, "torch" first, and warnings to
    show loudly (e.g. random initial weights exported: no checkpoint given)."""

    path: Path
    opset: int
    dynamic_batch: bool
    input_shape: tuple[int, ...]
    atol: float
    max_abs_diff: dict[int, float]
    latency: dict[str, Latency] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def default_export_path(name: str, dataset: str) -> Path:
    """Where an export goes without an explicit path: under results/, never loose in the current folder."""
    return Path("results") / "export" / f"{name}-{dataset}.onnx"


def export_model(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    dataset: str = "nyu",
    checkpoint: str | os.PathLike[str] | None = None,
    opset: int | None = None,
    dynamic_batch: bool = True,
    atol: float = 1e-4,
    threads: int | None = None,
    min_run_time_s: float = 1.0,
    latency: bool = True,
) -> ExportReport:
    """Export registered model ``name`` (``dataset``'s joints; ``checkpoint``'s weights, else its initial
    ones) to ``path`` (default ``results/export/NAME-DATASET.onnx``), check ONNX Runtime against PyTorch at batch 1
    (and 3 with ``dynamic_batch``), and optionally time both on the CPU.

    Raises OnnxMismatchError (the file is kept for inspection) above ``atol``.
    """
    from hpbench.cards import CardError, load_card
    from hpbench.models import create_model
    from hpbench.train import load_checkpoint_weights

    network = create_model(name, dataset=dataset).eval()
    notes: tuple[str, ...] = ()
    if checkpoint is not None:
        load_checkpoint_weights(network, checkpoint)
    else:
        notes = (f"no --checkpoint: exported {name}'s random initial weights, not a trained model",)
        warnings.warn(notes[0], UserWarning, stacklevel=2)
    try:
        shape = load_card(name).input_shape
    except CardError:
        shape = (1, network.input_size, network.input_size)
    path = Path(path) if path is not None else default_export_path(name, dataset)
    opset = opset or DEFAULT_OPSET
    export_onnx(network, example_input(shape), path, opset=opset, dynamic_batch=dynamic_batch)
    diffs = {batch: check_onnx(network, path, example_input(shape, batch=batch, seed=batch), atol=atol)
             for batch in ((1, 3) if dynamic_batch else (1,))}
    timed = {}
    if latency:
        example = example_input(shape)
        timed = {"torch": measure_latency(network, example, threads=threads, min_run_time_s=min_run_time_s),
                 "onnxruntime": onnxruntime_latency(path, example, threads=threads, min_run_time_s=min_run_time_s)}
    return ExportReport(path=path, opset=opset, dynamic_batch=dynamic_batch, input_shape=tuple(shape), atol=atol,
                        max_abs_diff=diffs, latency=timed, warnings=notes)


def onnxruntime_latency(
    path: str | os.PathLike[str],
    example: torch.Tensor,
    *,
    threads: int | None = None,
    warmup: int = 5,
    min_run_time_s: float = 1.0,
) -> Latency:
    """ONNX Runtime CPU latency of the ONNX file ``path`` on ``example`` (its batch size), timed as
    :func:`measure_latency` times PyTorch: ``threads`` intra-op threads (default: torch's setting), spinning
    or sleeping, whichever :func:`faster_onnxruntime_session` finds faster (named in the method)."""
    threads = threads or torch.get_num_threads()
    inputs = example.detach().cpu().float()
    session, _ = faster_onnxruntime_session(path, inputs, threads=threads)  # a clear error without onnxruntime
    import onnxruntime

    measurement = time_step(lambda: run_onnx(session, inputs), threads=threads, warmup=warmup,
                             min_run_time_s=min_run_time_s)
    method = f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider{spinning_words(session)}, blocked_autorange"
    return to_latency(measurement, batch=int(example.shape[0]), method=method,
                    env=environment(torch.device("cpu"), torch.float32, threads))
