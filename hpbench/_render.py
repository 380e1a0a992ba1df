"""How each `hpbench` command shows its library result: rich tables and lines of plain text, printed through
hpbench._console (text as written, numbers never cut)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpbench._console import Kind, console, print_refused, print_table, table
from hpbench._text import plural

if TYPE_CHECKING:
    from pathlib import Path

    from hpbench.cards import ModelCard
    from hpbench.export import ExportReport
    from hpbench.report import Report
    from hpbench.runner import ModelRun
    from hpbench.scoring import Score
    from hpbench.sweep import SweepOutcome

__all__ = ["compact", "short_paper", "show_card", "show_export", "show_models", "show_report",
           "show_runs", "show_scores", "show_sweep", "show_throughput"]


def compact(value: float) -> str:
    """Three significant digits with a k, M or G suffix: 48, 63.5k, 1.28M, 6.22G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale * 0.9995:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def short_paper(paper: str) -> str:
    """First author's surname and the year of a card's paper ('Rezaei 2023'); the text itself when it quotes no
    title after its authors."""
    authors, quote, rest = paper.partition('"')
    year = re.search(r"\b(?:19|20)\d\d\b", rest)
    first = re.split(r",|&| et al\b| and ", authors.rpartition(": ")[2])[0].split()  # 'A2J head: Xiong et al.'
    if not quote or not first or year is None:
        return paper
    return f"{first[-1]} {year.group()}"


def show_models(names: Sequence[str]) -> None:
    """One line per model: name, input, parameters and thop MACs at ICVL / NYU joints, paper; then (on
    stderr) the cards that could not be read and the plugins that failed to load."""
    from hpbench.cards import CardError, load_card
    from hpbench.models import models

    if not names:
        console().print("no registered model matches")
    rows, problems = [], []
    for name in names:
        try:
            card = load_card(name)
        except CardError as error:
            rows.append([name, "", "", "", ""])
            problems.append(str(error))
            continue
        declared = [card.declared.get(dataset) for dataset in ("icvl", "nyu")]
        params = " / ".join("-" if d is None else compact(d.params) for d in declared)
        macs = " / ".join("-" if d is None else compact(d.thop_macs) for d in declared)
        rows.append([name, "x".join(map(str, card.input_shape)), params, macs, short_paper(card.paper)])
    columns: list[tuple[str, Kind]] = [("model", "name"), ("input", "number"), ("params", "number"),
                                       ("thop MACs", "number"), ("paper", "short")]
    if rows:
        print_table(console(), table(columns, rows, title="params and MACs at ICVL / NYU joints"))
    problems += [f"skipped plugin {plugin}: {reason}" for plugin, reason in models.plugin_errors.items()]
    for problem in problems:
        console(stderr=True).print(problem, style="yellow", soft_wrap=True)


def _card_value(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(_card_value, value))
    return str(value)


def _card_fields(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted field name, text) of every leaf of a card: nested dataclasses and mappings are walked."""
    if dataclasses.is_dataclass(value):
        items: Any = ((field.name, getattr(value, field.name)) for field in dataclasses.fields(value))
    elif isinstance(value, Mapping):
        items = value.items()
    else:
        yield prefix, _card_value(value)
        return
    for key, item in items:
        yield from _card_fields(item, f"{prefix}.{key}" if prefix else str(key))


def show_card(card: ModelCard) -> None:
    """The whole card, one field per line (nested fields dotted: declared.icvl.params); long text wraps."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, text in _card_fields(card):
        grid.add_row(Text(key), Text(text))
    console().print(grid)


def show_scores(scores: Sequence[Score]) -> None:
    """Mean error, max-joint success rates at 20 and 40 mm and the AUC over 0-80 mm of each score (if any)."""
    if not scores:
        return
    from hpbench import metrics

    rows = []
    for score in scores:
        curve = metrics.success_rate(score.errors_mm, metrics.THRESHOLDS_MM, criterion="max")
        rows.append([score.method, score.dataset.name, score.frames, score.reading, f"{score.mean_error_mm:.3f}",
                     f"{100 * score.success_rate(20):.1f}", f"{100 * score.success_rate(40):.1f}",
                     f"{100 * metrics.auc(metrics.THRESHOLDS_MM, curve):.1f}"])
    columns: list[tuple[str, Kind]] = [
        ("method", "text"), ("dataset", "text"), ("frames", "text"), ("read as", "text"),
        ("mean (mm)", "number"), ("<=20mm (%)", "number"), ("<=40mm (%)", "number"), ("AUC (%)", "number"),
    ]
    print_table(console(), table(columns, rows, title="3D joint error: mean, max-joint success rate, AUC over 0-80 mm"))


def show_report(report: Report, out: Path) -> None:
    """Per dataset, the summary table without the frame's index: errors (through Frames and Seeds), then the
    costs when there are any, each with the methods that have them; then the refused files, what was written."""
    from hpbench.report.tables import plain_cells

    for dataset, summary in report.tables.items():
        headers, numeric, rows = plain_cells(summary)
        split = max(headers.index(h) for h in ("Frames", "Seeds") if h in headers) + 1 if "Frames" in headers else 1
        parts = [(f"{dataset}: {plural(len(rows), 'method')}", range(1, split)),
                 (f"{dataset}: cost", range(split, len(headers)))]
        for title, indices in parts if split < len(headers) else parts[:1]:
            kept = [[row[0], *(row[i] for i in indices)] for row in rows
                    if any(numeric[i] and row[i] != "-" for i in indices)]
            columns: list[tuple[str, Kind]] = [(headers[0], "text")]
            columns += [(headers[i], "number" if numeric[i] else "text") for i in indices]
            print_table(console(), table(columns, kept, title=title))
    print_refused(report.refused)
    console().print(f"wrote {plural(len(report.written), 'file')} to {out}", soft_wrap=True)


def show_export(report: ExportReport) -> None:
    """What was written, how far ONNX Runtime is from PyTorch, and (when timed) both runtimes' latency."""
    size_mb, shape = report.path.stat().st_size / 1e6, "x".join(map(str, report.input_shape))
    diffs = ", ".join(f"{diff:.2g} at batch {batch}" for batch, diff in report.max_abs_diff.items())
    lines = [f"wrote {report.path} ({size_mb:.2f} MB, opset {report.opset}, "
             f"{'dynamic' if report.dynamic_batch else 'static'} batch, input {shape})",
             f"max |onnxruntime - torch| = {diffs} (atol {report.atol:g})"]
    if report.latency:
        torch_ms, env = report.latency["torch"].median_ms, report.latency["torch"].env
        lines.append(f"cpu latency at batch 1, {plural(env.threads, 'thread')}, {env.device_name}:")
        lines += [f"  {name:12s} {timed.median_ms:8.2f} ms [{timed.p10_ms:.2f}-{timed.p90_ms:.2f}]  "
                  f"x{timed.median_ms / torch_ms:.2f}  ({timed.method})" for name, timed in report.latency.items()]
    for line in lines:  # paths and numbers stay on one line (the terminal wraps, nothing is broken)
        console().print(line, soft_wrap=True)
    for warning in report.warnings:
        console(stderr=True).print(f"warning: {warning}", style="yellow", soft_wrap=True)


def show_throughput(rows: Sequence[Mapping[str, Any]]) -> None:
    """Rate per data-pipeline stage, then a line on the machine (CPUs, threads, load average before)."""
    cells = [[str(row["stage"]), f"{row['per_second']:.1f}", f"{row['items']:,}", f"{row['seconds']:.1f}",
              str(row["workers"])] for row in rows]
    columns: list[tuple[str, Kind]] = [("stage", "text"), ("items/s", "number"), ("items", "number"),
                                       ("seconds", "number"), ("workers", "number")]
    first = rows[0]
    machine = (f"{plural(int(first['cpus']), 'CPU')}, {plural(int(first['torch_threads']), 'torch thread')}, "
               f"load average {first['load_before']} before")
    print_table(console(), table(columns, cells, title="data pipeline throughput"))
    console().print(machine)


def show_runs(runs: Sequence[ModelRun], *, results: Path, written: Sequence[Path]) -> None:
    """`hpbench run`: one line per model (its mean error and notes, its refusal, or its failure in red), then
    where things are."""
    out = console()
    for item in runs:
        if item.refused:
            out.print(f"{item.model}: not run: {item.error}", style="yellow")
        elif item.error:
            out.print(f"{item.model}: failed {item.error}", style="red")
        else:
            out.print(f"{item.model}: mean error {item.mean_error_mm:.2f} mm; {'; '.join(item.notes)}")
    out.print(f"results in {results}, report: {', '.join(str(p) for p in written) or 'none'}", soft_wrap=True)


def show_sweep(outcomes: Sequence[SweepOutcome], *, results: Path, reports: Sequence[Path]) -> None:
    """`hpbench sweep`: the counts of trained, skipped and failed runs, then each failure in red."""
    out = console()
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    out.print(f"{plural(len(outcomes), 'run')}: {counts['done']} trained, {counts['skipped']} already done, "
              f"{counts['failed']} failed; results in {results}, reports in {', '.join(map(str, reports))}")
    for outcome in outcomes:
        if outcome.status == "failed":
            out.print(f"{outcome.model} on {outcome.dataset}, seed {outcome.seed}: failed {outcome.error}", style="red")
