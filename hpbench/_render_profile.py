"""How `hpbench profile` shows its report: the cost table (as before), the timing table (one row per model,
runtime and batch; figures with the digits their spread allows, ``(!)`` on unreliable ones), then notes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hpbench._console import Kind, console, print_table, table
from hpbench.latency import significant

if TYPE_CHECKING:
    from hpbench.profile import ProfileReport, TimingRow

__all__ = ["show_profile", "timing_cells"]


def timing_cells(row: TimingRow, *, reference: str | None, devices: int = 1) -> list[str]:
    """The table's cells for one timing: model (with ``(!)`` when unreliable), runtime, batch, median ms,
    p10-p90 ms, spread, samples, samples/s, peak MB and (with a reference) the ratio."""
    t = row.timing
    known = t.uncertainty_ms is not None
    relative = t.uncertainty_ms / t.median_ms if known else None
    runtime = t.runtime.label + (f" ({t.env.device})" if devices > 1 else "") + (" unverified" if t.unverified else "")
    per_second = t.throughput
    cells = [t.model + ("" if t.reliable else " (!)"), runtime, str(t.batch),
             significant(t.median_ms, t.uncertainty_ms),
             f"{significant(t.p10_ms, t.uncertainty_ms)}-{significant(t.p90_ms, t.uncertainty_ms)}" if known else "-",
             "-" if t.spread is None else f"{100 * t.spread:.0f} %", str(t.samples),
             significant(per_second, per_second * relative if known else None),
             "-" if t.peak_mb is None else significant(t.peak_mb)]
    if reference is not None:
        if row.ratio is None:
            cells.append("-")
        elif t.model == reference:
            cells.append("1")
        else:
            cells.append(significant(row.ratio, row.ratio * math.sqrt(2) * relative if known else None))
    return cells


def show_profile(report: ProfileReport) -> None:
    """Cost per model (params, GMAC per counter), timing per model, runtime and batch, the notes, then (on
    stderr) the warnings."""
    costs = [[row.model + (" (!)" if row.disagree else ""), f"{row.params:,}", f"{row.thop_gmac:.3f}",
              f"{row.exact_gmac:.3f}", "-" if row.fvcore_gmac is None else f"{row.fvcore_gmac:.3f}"]
             for row in report.costs]
    cost_columns: list[tuple[str, Kind]] = [("model", "name"), ("params", "number"), ("thop GMAC", "number"),
                                            ("exact GMAC", "number"), ("fvcore GMAC", "number")]
    out = console()
    print_table(out, table(cost_columns, costs, title=f"cost at {report.dataset} joints"))
    devices = len({row.timing.env.device for row in report.timings})
    columns: list[tuple[str, Kind]] = [("model", "name"), ("runtime", "name"), ("batch", "number"),
                                       ("median ms", "number"), ("p10-p90 ms", "number"), ("spread", "number"),
                                       ("n", "number"), ("samples/s", "number"), ("peak MB", "number")]
    title = f"timing at {report.dataset} input"
    if report.reference is not None:
        columns.append((f"x {report.reference}", "number"))
        title += f"; x {report.reference}: median / {report.reference}'s in the same runtime and batch"
    rows = [timing_cells(row, reference=report.reference, devices=devices) for row in report.timings]
    if rows:
        print_table(out, table(columns, rows, title=title))
    for note in report.notes:
        out.print(note)
    for warning in report.warnings:
        console(stderr=True).print(warning, style="yellow")
    if report.written is not None:
        out.print(f"wrote {report.written}", soft_wrap=True)
