"""Paper-ready reports from tidy results rows only (hpbench.results).

For every dataset in the rows: a summary table (LaTeX tabular, Markdown, CSV)
and two figures (max-joint success-rate curves; per-joint mean errors), each as
PDF and PNG. The tables module needs only pandas; matplotlib and seaborn are
imported when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from hpbench.report.tables import latex_table, markdown_table, summary_table

if TYPE_CHECKING:
    from hpbench.scoring import ReadOptions

__all__ = ["FORMATS", "Report", "latex_table", "markdown_table", "report_files", "summary_table", "write_report"]

FORMATS: tuple[str, ...] = ("latex", "markdown", "csv")
"""Table formats write_report knows."""

_SUFFIXES = {"latex": ".tex", "markdown": ".md", "csv": ".csv"}


def write_report(
    results: pd.DataFrame,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    figures: bool = True,
) -> list[Path]:
    """Write tables (and figures) of every dataset in ``results`` into ``out_dir``; returns the paths, sorted.

    Per dataset: ``<dataset>_table.{tex,md,csv}`` (those in ``formats``) and, with
    ``figures``, ``<dataset>_success_rate.{pdf,png}`` and ``<dataset>_joint_error.{pdf,png}``
    (a figure whose rows are absent, e.g. cost-only rows, is not written).
    """
    unknown = [name for name in formats if name not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; known: {', '.join(FORMATS)}")
    datasets = sorted({name for name in results["dataset"] if name})
    if not datasets:
        raise ValueError("no results rows with a dataset: nothing to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for dataset in datasets:
        table = summary_table(results, dataset=dataset)
        for name in dict.fromkeys(formats):
            path = out_dir / f"{dataset}_table{_SUFFIXES[name]}"
            if name == "csv":
                table.to_csv(path, index=False, lineterminator="\n")
            else:
                text = latex_table(table, dataset=dataset) if name == "latex" else markdown_table(table)
                path.write_text(text, encoding="utf-8")
            written.append(path)
        if figures:
            written += _write_figures(results, out_dir, dataset, order=list(table["Method"]))
    return sorted(written)


def _write_figures(results: pd.DataFrame, out_dir: Path, dataset: str, *, order: list[str]) -> list[Path]:
    from hpbench.report import figures

    rows = results[results["dataset"] == dataset]
    written: list[Path] = []
    for metric, kind, draw in (
        ("success_rate_max", "success_rate", figures.success_rate_figure),
        ("joint_error", "joint_error", figures.joint_error_figure),
    ):
        if (rows["metric"] == metric).any():
            written += figures.save_figure(draw(rows, dataset=dataset, order=order), out_dir / f"{dataset}_{kind}")
    return written


@dataclass(frozen=True)
class Report:
    """A report made from files: the summary table per dataset, the refused files' reasons, the files written.

    No tables means no file could be scored, and nothing was written.
    """

    tables: dict[str, pd.DataFrame]
    refused: tuple[str, ...]
    written: tuple[Path, ...]


def report_files(
    paths: Sequence[Path],
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    figures: bool = True,
    dataset: str | None = None,
    options: ReadOptions | None = None,
    eval_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Report:
    """Score prediction files and read results files (:func:`hpbench.scoring.collect_results`), then write
    the report into ``out_dir`` (:func:`write_report`) and, when files were refused, ``refused.txt`` with
    one reason per line. A missing path raises FileNotFoundError, an unknown format ValueError (first)."""
    from hpbench.scoring import ReadOptions, collect_results

    unknown = [name for name in formats if name not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    results, refused = collect_results(list(paths), dataset=dataset, options=options or ReadOptions(),
                                       eval_dir=eval_dir, progress=progress)
    if results.empty:
        return Report(tables={}, refused=tuple(refused), written=())
    written = write_report(results, out_dir, formats=formats, figures=figures)
    if refused:
        path = Path(out_dir) / "refused.txt"
        path.write_text("".join(reason + "\n" for reason in refused), encoding="utf-8")
        written.append(path)
    tables = {name: summary_table(results, dataset=name) for name in sorted({n for n in results["dataset"] if n})}
    return Report(tables=tables, refused=tuple(refused), written=tuple(written))
