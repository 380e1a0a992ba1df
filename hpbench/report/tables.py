"""Summary tables from tidy results rows, rendered as LaTeX, Markdown and CSV.

A summary table has one row per method of one dataset, sorted by mean error, with
the unit of every column in its header ("Mean error (mm)", "SR@20mm (%)", ...).
The frame holds unrounded numbers; rounding and bolding of the best value of a
column happen only when rendering, with the precision read off the header's unit,
so a table edited or filtered by a user renders the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "best_cells",
    "column_rule",
    "latex_escape",
    "latex_table",
    "markdown_table",
    "metric_values",
    "summary_table",
]

SR_THRESHOLDS_MM: tuple[float, ...] = (20.0, 40.0)
"""Thresholds of the success-rate columns of a summary table, mm."""


@dataclass(frozen=True)
class _Cost:
    """How one cost metric becomes table columns: header stem, shown unit, config fields.

    ``exponent`` maps each accepted row unit to the power of ten that converts it to
    the shown unit (count -> M is -6).
    """

    stem: str
    shown_unit: str
    exponent: dict[str, int]
    config: tuple[str, ...]


# Config fields split one metric into several columns (MACs per counter, latency per device/batch...).
_COSTS: dict[str, _Cost] = {
    "params": _Cost("Params", "M", {"count": -6, "M": 0}, ()),
    "macs": _Cost("MACs", "G", {"MAC": -9, "MMAC": -3, "GMAC": 0}, ("counter",)),
    "latency_median": _Cost("Latency", "ms", {"s": 3, "ms": 0, "us": -3}, ("device", "dtype", "batch", "threads")),
}

# Unit suffix of a header -> (decimals, which value is best); other columns are text.
_RULES: dict[str, tuple[int, str]] = {
    "(mm)": (3, "min"),
    "(%)": (1, "max"),
    "(M)": (2, "min"),
    "(G)": (3, "min"),
    "(ms)": (2, "min"),
}


def column_rule(header: str) -> tuple[int, str] | None:
    """(decimals, "min" or "max" is best) of a numeric column, from its header's unit; None for text."""
    for suffix, rule in _RULES.items():
        if header.endswith(suffix):
            return rule
    return None


def metric_values(
    rows: pd.DataFrame, metric: str, *, unit: str, by: Sequence[str] = ("model",), threshold_mm: float | None = None
) -> pd.Series:
    """Values of ``metric`` (checked to be in ``unit``) indexed by ``by``; duplicates are an error.

    ``threshold_mm`` selects one point of a curve. The index keeps the rows' order.
    """
    selected = rows[rows["metric"] == metric]
    if threshold_mm is not None:
        selected = selected[np.isclose(selected["threshold_mm"].to_numpy(dtype=float), threshold_mm)]
    wrong = selected[selected["unit"] != unit]
    if not wrong.empty:
        first = wrong.iloc[0]
        raise ValueError(
            f"{metric} of {first['model']} on {first['dataset']} is in {first['unit']!r}, expected {unit!r}"
        )
    by = list(by)
    duplicated = selected.duplicated(by, keep=False)
    if duplicated.any():
        first = selected[duplicated].iloc[0]
        key = ", ".join(f"{column}={first[column]}" for column in by)
        raise ValueError(
            f"several {metric} rows for {key} on dataset {first['dataset']!r} "
            f"(splits: {sorted(set(selected[duplicated]['split']))}); keep one result per method before reporting"
        )
    index = pd.MultiIndex.from_frame(selected[by]) if len(by) > 1 else pd.Index(selected[by[0]], name=by[0])
    return pd.Series(selected["value"].to_numpy(dtype=float), index=index, name=metric)


def _frames_texts(rows: pd.DataFrame) -> dict[str, str]:
    """Scored frames per model: the ``frames`` note of its mean_error row, else of any row, else its ``n``."""
    texts: dict[str, str] = {}
    ranked = rows.assign(rank=np.where(rows["metric"] == "mean_error", 0, 1)).sort_values("rank", kind="mergesort")
    for model, mine in ranked.groupby("model", sort=False):
        notes = mine["frames"][mine["frames"] != ""]
        counts = mine["n"].dropna()
        texts[str(model)] = notes.iloc[0] if not notes.empty else str(int(counts.iloc[0])) if not counts.empty else ""
    return texts


def _cost_label(cost: _Cost, config: dict[str, object], varying: set[str]) -> str:
    parts = [cost.stem]
    for field in cost.config:
        value = config[field]
        if field == "counter" and value:
            parts.append(str(value))  # counters always named: thop and an exact count differ
        elif field in varying and value not in ("", None) and not pd.isna(value):
            parts.append({"batch": f"batch {value}", "threads": f"{value} threads"}.get(field, str(value)))
    return f"{' '.join(parts)} ({cost.shown_unit})"


def _cost_columns(results: pd.DataFrame, dataset: str, models: Sequence[str]) -> dict[str, pd.Series]:
    """Cost columns (header -> values by model) from cost rows of ``dataset`` or of no dataset.

    A model's rows for the dataset shadow its rows without one, config by config.
    """
    columns: dict[str, pd.Series] = {}
    for metric, cost in _COSTS.items():
        rows = results[
            (results["metric"] == metric) & results["model"].isin(models) & results["dataset"].isin([dataset, ""])
        ]
        if rows.empty:
            continue
        unknown = sorted(set(rows["unit"]) - set(cost.exponent))
        if unknown:
            raise ValueError(f"{metric} rows in unknown unit(s) {unknown}; known: {sorted(cost.exponent)}")
        fields = list(cost.config)
        config = rows[fields].astype(str).agg(" / ".join, axis=1) if fields else pd.Series("", index=rows.index)
        exponent = rows["unit"].map(cost.exponent).astype(int).to_numpy()
        # divide by exact powers of ten (1e-6 is inexact: 55054402 * 1e-6 = 55.054401999999996)
        power = 10.0 ** np.abs(exponent)
        value = np.where(exponent >= 0, rows["value"] * power, rows["value"] / power)
        rows = rows.assign(value=value, unit=cost.shown_unit, config=config)
        specific = set(zip(rows["model"][rows["dataset"] == dataset], rows["config"][rows["dataset"] == dataset]))
        shadowed = [d == "" and (m, c) in specific for d, m, c in zip(rows["dataset"], rows["model"], rows["config"])]
        rows = rows[~np.asarray(shadowed, dtype=bool)]
        varying = {field for field in fields if rows[field].astype(str).nunique() > 1}
        for _, group in rows.groupby("config", sort=False):
            first = group.iloc[0]
            label = _cost_label(cost, {field: first[field] for field in fields}, varying)
            columns[label] = metric_values(group, metric, unit=cost.shown_unit)
    return columns


def summary_table(results: pd.DataFrame, *, dataset: str) -> pd.DataFrame:
    """One row per method on ``dataset``, sorted by mean error (mm) ascending, numbers unrounded.

    Columns: Method, Mean error (mm), SR@20mm (%), SR@40mm (%) (max-joint success
    rate), AUC 0-80mm (%) (of that curve), Frames, then cost columns when cost rows
    exist: Params (M), MACs <counter> (G), Latency (ms). Missing numbers are NaN.
    """
    rows = results[results["dataset"] == dataset]
    if rows.empty:
        present = sorted({name for name in results["dataset"] if name})
        raise ValueError(
            f"no results rows for dataset {dataset!r}; datasets present: {', '.join(present) or 'none'}"
        )
    models = list(dict.fromkeys(rows["model"]))
    columns: dict[str, pd.Series] = {"Mean error (mm)": metric_values(rows, "mean_error", unit="mm")}
    for threshold in SR_THRESHOLDS_MM:
        curve = metric_values(rows, "success_rate_max", unit="fraction", threshold_mm=threshold)
        columns[f"SR@{threshold:g}mm (%)"] = 100.0 * curve
    columns["AUC 0-80mm (%)"] = 100.0 * metric_values(rows, "auc_max", unit="fraction")
    columns["Frames"] = pd.Series(_frames_texts(rows), dtype=object)
    columns.update(_cost_columns(results, dataset, models))
    table = pd.DataFrame({"Method": models})
    for header, values in columns.items():
        table[header] = values.reindex(models).to_numpy()
    table = table.sort_values(["Mean error (mm)", "Method"], na_position="last", kind="mergesort")
    return table.reset_index(drop=True)


def best_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame: True where a cell holds its column's best value at display precision (ties all win)."""
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    for header in table.columns:
        rule = column_rule(str(header))
        if rule is None:
            continue
        decimals, better = rule
        shown = pd.to_numeric(table[header], errors="coerce").round(decimals)
        if shown.notna().any():
            target = shown.min() if better == "min" else shown.max()
            best[header] = (shown == target).fillna(False).to_numpy(dtype=bool)
    return best


def _formatter(decimals: int):
    return lambda value: f"{value:.{decimals}f}"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters made literal (one pass, so nothing is escaped twice)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def latex_table(table: pd.DataFrame, *, dataset: str) -> str:
    """A booktabs tabular of a summary table (best values bold), ready to ``\\input``.

    Built with pandas' Styler; text and headers are LaTeX-escaped (``_``, ``&``,
    ``%``...). Needs ``\\usepackage{booktabs}`` in the including document.
    """
    from hpbench import __version__

    table = table.reset_index(drop=True)
    rules = {header: column_rule(str(header)) for header in table.columns}
    # text columns escaped by latex_escape: pandas' escape="latex" leaves |, < and > (wrong glyphs in OT1)
    formatters = {
        header: latex_escape if rule is None else _formatter(rule[0]) for header, rule in rules.items()
    }
    bold = best_cells(table)
    css = pd.DataFrame(np.where(bold.to_numpy(), "textbf: --rwrap;", ""), index=table.index, columns=table.columns)
    styler = (
        table.style.hide(axis="index")
        .format(formatters, na_rep="--")
        .format_index(lambda header: latex_escape(str(header)), axis=1)
        .apply(lambda _: css, axis=None)
    )
    column_format = "".join("l" if rules[header] is None else "r" for header in table.columns)
    body = styler.to_latex(hrules=True, column_format=column_format)
    comment = (
        f"% Generated by hpbench {__version__} from results rows: dataset {dataset}, {len(table)} methods.\n"
        "% A tabular only: \\input it inside a table environment; needs \\usepackage{booktabs}.\n"
    )
    return comment + body


_MARKDOWN_SPECIAL = "\\`*_[]<>|$~"  # $ starts math and ~ strikes through on GitHub


def _markdown_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in _MARKDOWN_SPECIAL else char for char in text)


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of a summary table: numbers right-aligned and rounded, best values in **bold**."""
    table = table.reset_index(drop=True)
    bold = best_cells(table)
    rules = [column_rule(str(header)) for header in table.columns]
    header = [_markdown_escape(str(name)) for name in table.columns]
    body: list[list[str]] = []
    for row_index in range(len(table)):
        cells = []
        for column_index, rule in enumerate(rules):
            value = table.iat[row_index, column_index]
            if rule is None:
                text = _markdown_escape("" if pd.isna(value) else str(value))
            elif pd.isna(value):
                text = "-"
            else:
                text = f"{value:.{rule[0]}f}"
            if bold.iat[row_index, column_index]:
                text = f"**{text}**"
            cells.append(text)
        body.append(cells)
    widths = [max([len(header[i]), 3, *(len(cells[i]) for cells in body)]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.rjust(w) if rule else cell.ljust(w) for cell, w, rule in zip(cells, widths, rules, strict=True))
        return "| " + " | ".join(padded) + " |"

    dashes = ("-" * (w + 1) + ":" if rule else ":" + "-" * (w + 1) for w, rule in zip(widths, rules, strict=True))
    separator = "|" + "|".join(dashes) + "|"
    return "\n".join([line(header), separator, *(line(cells) for cells in body)]) + "\n"
