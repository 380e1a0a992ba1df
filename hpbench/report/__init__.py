"""Paper-ready reports from tidy results rows only (hpbench.results).

For every dataset in the rows: a summary table (LaTeX tabular, Markdown, CSV)
and figures (max-joint success-rate curves; per-joint mean errors; error against
cost; and, for prediction files scored in the same command, per-joint error
distributions), each as PDF and PNG. The tables module needs only pandas;
matplotlib and seaborn are imported when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpbench.files import atomic_write_text
from hpbench.report.latex import summary_document
from hpbench.report.names import card_of
from hpbench.report.tables import latex_table, markdown_table, summary_table, table_notes

if TYPE_CHECKING:
    from hpbench.scoring import ReadOptions, Score

__all__ = [
    "FORMATS", "Report", "figure_methods", "latex_table", "markdown_table", "report_files", "summary_table",
    "write_report",
]

DEFAULT_FIGURE_METHODS = 8
"""Methods a figure shows by default (all are in the tables)."""

FORMATS: tuple[str, ...] = ("latex", "markdown", "csv")
"""Table formats write_report knows."""

_SUFFIXES = {"latex": ".tex", "markdown": ".md", "csv": ".csv"}


def write_report(
    results: pd.DataFrame,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    figures: bool = True,
    paper: bool = False,
    methods: Sequence[str] | None = None,
    figure_limit: int = DEFAULT_FIGURE_METHODS,
    scores: Sequence[Score] = (),
) -> list[Path]:
    """Write tables (and figures) of every dataset in ``results`` into ``out_dir``; returns the paths, sorted.

    Per dataset: ``<dataset>_table.{tex,md,csv}`` (those in ``formats``; with LaTeX also
    ``<dataset>_table_standalone.tex``, a document that compiles), ``<dataset>_reproduction.*`` (the
    reproduction gap, when a card has a published error for the dataset) and, with ``paper``,
    ``<dataset>_paper.*`` (the seed paper's Table 1/2 layout). With ``figures``:
    ``<dataset>_success_rate.{pdf,png}``, ``<dataset>_joint_error.{pdf,png}`` and
    ``<dataset>_cost.{pdf,png,csv}`` (error against cost), each written only when its rows exist, and
    ``<dataset>_joint_distribution.{pdf,png}`` from the per-frame errors of ``scores`` (the
    :class:`~hpbench.scoring.Score` objects behind rows of ``results``: nothing is read again).
    Figures show ``methods`` (registry/file or display names; all in the tables regardless), by
    default at most ``figure_limit`` (:func:`figure_methods`).
    """
    return sorted(_write_datasets(results, out_dir, formats=formats, figures=figures, paper=paper, methods=methods,
                                  figure_limit=figure_limit, scores=scores)[0])


def _write_datasets(results: pd.DataFrame, out_dir: Path, *, formats: Sequence[str], figures: bool, paper: bool,
                    methods: Sequence[str] | None, figure_limit: int,
                    scores: Sequence[Score]) -> tuple[list[Path], dict[str, pd.DataFrame]]:
    """:func:`write_report`'s work: the files written and the summary table of each dataset (made once)."""
    unknown = [name for name in formats if name not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; known: {', '.join(FORMATS)}")
    datasets = sorted({name for name in results["dataset"] if name})
    if not datasets:
        raise ValueError("no results rows with a dataset: nothing to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables: dict[str, pd.DataFrame] = {}
    for dataset in datasets:
        table = tables[dataset] = summary_table(results, dataset=dataset)
        notes = table_notes(results, dataset=dataset)
        written += _write_table(out_dir / f"{dataset}_table", table, formats, dataset=dataset, notes=notes, best=True,
                                document=lambda t=table, n=notes, d=dataset: summary_document(t, dataset=d, notes=n))
        written += _write_comparisons(results, out_dir, dataset, formats, paper=paper)
        if figures:
            shown = figure_methods(table, methods=methods, limit=figure_limit)
            errors = {score.method: score.errors_mm for score in scores
                      if score.dataset.name == dataset and score.method in shown}
            written += _write_figures(results, out_dir, dataset, order=shown, errors=errors)
    return written, tables


def _write_table(stem: Path, table: pd.DataFrame, formats: Sequence[str], *, dataset: str, notes: Sequence[str],
                 best: bool, document: Callable[[], str]) -> list[Path]:
    """``stem``.{tex,md,csv} of ``table`` (those in ``formats``), and ``stem``_standalone.tex with LaTeX."""
    written = []
    for name in dict.fromkeys(formats):
        path = stem.with_name(stem.name + _SUFFIXES[name])
        if name == "csv":
            atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))
        elif name == "latex":
            atomic_write_text(path, latex_table(table, dataset=dataset, notes=notes, best=best))
            standalone = stem.with_name(stem.name + "_standalone.tex")
            atomic_write_text(standalone, document())
            written.append(standalone)
        else:
            atomic_write_text(path, markdown_table(table, notes=notes, best=best))
        written.append(path)
    return written


def _write_comparisons(results: pd.DataFrame, out_dir: Path, dataset: str, formats: Sequence[str], *,
                       paper: bool) -> list[Path]:
    """The reproduction-gap table and, with ``paper``, the seed paper's layout, for ``dataset``."""
    from hpbench.report.latex import comparison_document
    from hpbench.report.paper import paper_table, reproduction_table

    written: list[Path] = []
    makers = [("reproduction", reproduction_table)] + ([("paper", paper_table)] if paper else [])
    for kind, make in makers:
        table, notes = make(results, dataset=dataset)
        if table.empty:
            continue
        caption = {"reproduction": f"Reproduction gap on {dataset.upper()}: mean 3D error (mm).",
                   "paper": f"The seed paper's comparison on {dataset.upper()}: quoted and measured."}[kind]
        written += _write_table(out_dir / f"{dataset}_{kind}", table, formats, dataset=dataset, notes=notes, best=False,
                                document=lambda t=table, n=notes, c=caption: comparison_document(t, caption=c, notes=n))
    return written


def figure_methods(table: pd.DataFrame, *, methods: Sequence[str] | None = None,
                   limit: int = DEFAULT_FIGURE_METHODS) -> list[str]:
    """Models a figure shows, in the table's order: those named in ``methods`` (registry/file or display
    names; an unknown one is a ValueError listing the table's), else this library's own models (with a card)
    and then the others by mean error, ``limit`` in all."""
    models, shown = list(table["Model"]), list(table["Method"])
    if methods is not None:
        lookup = {**dict(zip(shown, models, strict=True)), **{model: model for model in models}}
        missing = [name for name in methods if name not in lookup]
        if missing:
            raise ValueError(f"unknown method(s) for the figures: {', '.join(missing)}; known: {', '.join(models)}")
        wanted = {lookup[name] for name in methods}
        return [model for model in models if model in wanted]
    own = [model for model in models if card_of(model) is not None and card_of(model).name == model]
    chosen = set(own[:limit])
    chosen |= set([model for model in models if model not in chosen][: max(0, limit - len(chosen))])
    return [model for model in models if model in chosen]


def _write_figures(results: pd.DataFrame, out_dir: Path, dataset: str, *, order: list[str],
                   errors: dict[str, np.ndarray]) -> list[Path]:
    """The figures of ``dataset``: curves and bars from ``results``, distributions from ``errors`` (model ->
    per-frame errors, mm), error against cost."""
    from hpbench.data.specs import get_dataset
    from hpbench.report import figures
    from hpbench.report.cost import cost_figure, cost_points

    rows = results[(results["dataset"] == dataset) & results["model"].isin(order)]
    written: list[Path] = []
    for metric, kind, draw in (
        ("success_rate_max", "success_rate", figures.success_rate_figure),
        ("joint_error", "joint_error", figures.joint_error_figure),
    ):
        if (rows["metric"] == metric).any():
            written += figures.save_figure(draw(rows, dataset=dataset, order=order), out_dir / f"{dataset}_{kind}")
    if errors:
        figure = figures.joint_distribution_figure(errors, joints=get_dataset(dataset).joint_names, order=order)
        written += figures.save_figure(figure, out_dir / f"{dataset}_joint_distribution")
    points = cost_points(results, dataset=dataset)
    points = points[points["Model"].isin(order) | (points["error_from"] == "paper")]
    if np.isfinite(points["thop MACs (G)"].to_numpy(dtype=float)).any():
        stem = out_dir / f"{dataset}_cost"
        written += figures.save_figure(cost_figure(points.reset_index(drop=True), dataset=dataset), stem)
        atomic_write_text(stem.with_suffix(".csv"), points.to_csv(index=False, lineterminator="\n"))
        written.append(stem.with_suffix(".csv"))
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
    paper: bool = False,
    methods: Sequence[str] | None = None,
    dataset: str | None = None,
    options: ReadOptions | None = None,
    eval_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Report:
    """Score prediction files and read results files (:func:`hpbench.scoring.collect_results`), then write
    the report into ``out_dir`` (:func:`write_report`) and, when files were refused, ``refused.txt`` with
    one reason per line. A missing path raises FileNotFoundError, an unknown format ValueError (first).
    ``paper`` and ``methods`` are :func:`write_report`'s."""
    from hpbench.scoring import ReadOptions, collect

    unknown = [name for name in formats if name not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    found = collect(list(paths), dataset=dataset, options=options or ReadOptions(), eval_dir=eval_dir,
                    progress=progress)
    results, refused = found.rows, found.refused
    if results.empty:
        return Report(tables={}, refused=refused, written=())
    written, tables = _write_datasets(results, out_dir, formats=formats, figures=figures, paper=paper,
                                      methods=methods, figure_limit=DEFAULT_FIGURE_METHODS, scores=found.scores)
    written.sort()
    if refused:
        path = Path(out_dir) / "refused.txt"
        atomic_write_text(path, "".join(reason + "\n" for reason in refused))
        written.append(path)
    return Report(tables=tables, refused=refused, written=tuple(written))
