"""Tidy result rows: one row per (model, dataset, split, metric[, joint][, threshold]).

Every number hpbench reports lives in such a row with its unit and provenance, in
CSV files under results/. Reports are built from these files only.

Metric vocabulary (unit in brackets):
- ``mean_error`` [mm]: mean 3D joint error over joints and frames.
- ``joint_error`` [mm]: mean error of the joint named in ``joint``.
- ``success_rate_max`` / ``success_rate_mean`` [fraction]: fraction of frames whose
  max / mean joint error is <= ``threshold_mm``.
- ``auc_max`` / ``auc_mean`` [fraction]: area under that curve over 0..80 mm, / 80.
- cost rows (split ``profile``, see ``hpbench.profile``): ``params`` [count];
  ``macs`` [GMAC] per MAC ``counter``; ``latency_median`` / ``latency_p10`` /
  ``latency_p90`` [ms] (batch 1) and ``latency_spread`` [fraction] with the device ("cpu: <CPU
  name>") in ``device``, the runtime ("eager", "eager fused", "onnxruntime", ...) in ``runtime``,
  the timing method in ``counter`` and "reliable" or "unreliable: reasons" in ``source``;
  ``throughput`` [samples/s] per ``batch``; ``peak_memory`` [MB] of the first call.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["COLUMNS", "make_rows", "read_results", "write_results"]

COLUMNS: tuple[str, ...] = (
    "model", "dataset", "split", "metric", "joint", "threshold_mm", "value", "unit", "counter",
    "n", "frames", "source", "device", "runtime", "dtype", "batch", "threads", "torch", "hpbench",
    "git_commit", "seed", "date", "protocol", "schedule",
)
"""Column order of every results CSV; absent fields are empty. ``protocol``: the data and training
protocol behind a row (e.g. "TriHorn-Net (NYU)", "A2J (ICVL, borrowed)"; see
:func:`hpbench.record.protocol_label`); ``schedule``: "full" (the card's recipe) or "quick" (the smoke
schedule of ``hpbench run --quick``); ``runtime``: what ran a timed model (cost rows). Files written
before these columns read them as empty."""

_STRING_COLUMNS = tuple(c for c in COLUMNS if c not in ("threshold_mm", "value", "n", "batch", "threads", "seed"))


def make_rows(records: Iterable[Mapping[str, Any]], **common: Any) -> pd.DataFrame:
    """A results frame from metric records (each a dict of COLUMNS) plus shared fields.

    ``common`` fills every row (e.g. model=..., dataset=...); a record's own value wins.
    The date is stamped when not given.
    """
    unknown = set(common) - set(COLUMNS)
    rows = []
    for record in records:
        unknown |= set(record) - set(COLUMNS)
        rows.append({**common, **record})
    if unknown:
        raise ValueError(f"unknown result columns: {', '.join(sorted(unknown))}")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if frame["date"].isna().all():
        frame["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _normalize(frame)


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=list(COLUMNS))
    for column in _STRING_COLUMNS:
        frame[column] = frame[column].astype("string").fillna("")
    for column in ("threshold_mm", "value"):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    for column in ("n", "batch", "threads", "seed"):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("Int64")
    return frame


def write_results(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as CSV atomically (temp file + rename, the umask's mode); returns the path."""
    from hpbench.files import atomic_write

    normalized = _normalize(frame)
    return atomic_write(path, lambda temporary: normalized.to_csv(temporary, index=False, float_format="%.9g"))


def read_results(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate results CSVs; a file without the results columns is a clear error."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"model", "dataset", "metric", "value", "unit"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: not an hpbench results file (missing columns: {', '.join(sorted(missing))})")
        frame = frame.replace("", None)
        frames.append(_normalize(frame))
    if not frames:
        return _normalize(pd.DataFrame(columns=list(COLUMNS)))
    return pd.concat(frames, ignore_index=True)
