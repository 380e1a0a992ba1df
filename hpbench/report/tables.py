"""Summary tables from tidy results rows, rendered as LaTeX, Markdown and CSV.

A summary table has one row per method of one dataset, sorted by mean error, with
the unit of every column in its header ("Mean error (mm)", "SR@20mm (%)", ...).
The frame holds unrounded numbers; rounding and bolding of the best value of a
column happen only when rendering, with the precision read off the header's unit,
so a table edited or filtered by a user renders the same way.

Several seeds of one method (a sweep) make one table row: the mean over seeds in
each error column, its sample standard deviation in a companion column named
with "std" before the unit ("Mean error std (mm)"), and the number of seeds in a
"Seeds" column. LaTeX and Markdown fold each companion into its column as
"mean +- std"; the CSV keeps both, unrounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpbench._text import plural
from hpbench.report.names import display_name, is_reference

__all__ = [
    "META_COLUMNS",
    "best_cells",
    "column_rule",
    "latex_cells",
    "latex_escape",
    "latex_footer",
    "latex_table",
    "markdown_table",
    "metric_values",
    "plain_cells",
    "row_marks",
    "seed_statistics",
    "std_header",
    "summary_table",
    "table_notes",
    "visible",
]

SR_THRESHOLDS_MM: tuple[float, ...] = (20.0, 40.0)
"""Thresholds of the success-rate columns of a summary table, mm."""

META_COLUMNS: tuple[str, ...] = ("Model", "Protocol", "Schedule")
"""Columns of a summary table that the CSV keeps and LaTeX/Markdown turn into row marks and a legend:
the registry or file name, the protocol behind the row, its training schedule ("full" or "quick")."""

QUICK = "quick"
"""Schedule value of a row trained on ``hpbench run --quick``'s smoke schedule."""


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
    "latency_median": _Cost("Latency", "ms", {"s": 3, "ms": 0, "us": -3},
                            ("device", "runtime", "dtype", "batch", "threads")),
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


def _selected(rows: pd.DataFrame, metric: str, unit: str, threshold_mm: float | None) -> pd.DataFrame:
    """Rows of ``metric`` (at ``threshold_mm`` when given), checked to be in ``unit``."""
    selected = rows[rows["metric"] == metric]
    if threshold_mm is not None:
        selected = selected[np.isclose(selected["threshold_mm"].to_numpy(dtype=float), threshold_mm)]
    wrong = selected[selected["unit"] != unit]
    if not wrong.empty:
        first = wrong.iloc[0]
        raise ValueError(
            f"{metric} of {first['model']} on {first['dataset']} is in {first['unit']!r}, expected {unit!r}"
        )
    return selected


def _refuse_duplicates(selected: pd.DataFrame, metric: str, by: list[str], *, seeds: bool = False) -> None:
    keys = by + (["seed"] if seeds else [])
    duplicated = selected.duplicated(keys, keep=False)
    if duplicated.any():
        first = selected[duplicated].iloc[0]
        key = ", ".join(f"{column}={first[column]}" for column in by)
        if seeds:
            key += f" (seed {first['seed']})" if not pd.isna(first["seed"]) else " (no seed)"
        raise ValueError(
            f"several {metric} rows for {key} on dataset {first['dataset']!r} "
            f"(splits: {sorted(set(selected[duplicated]['split']))}); keep one result per method before reporting"
        )


def metric_values(
    rows: pd.DataFrame, metric: str, *, unit: str, by: Sequence[str] = ("model",), threshold_mm: float | None = None
) -> pd.Series:
    """Values of ``metric`` (checked to be in ``unit``) indexed by ``by``; duplicates are an error.

    ``threshold_mm`` selects one point of a curve. The index keeps the rows' order.
    """
    selected = _selected(rows, metric, unit, threshold_mm)
    by = list(by)
    _refuse_duplicates(selected, metric, by)
    index = pd.MultiIndex.from_frame(selected[by]) if len(by) > 1 else pd.Index(selected[by[0]], name=by[0])
    return pd.Series(selected["value"].to_numpy(dtype=float), index=index, name=metric)


def seed_statistics(
    rows: pd.DataFrame, metric: str, *, unit: str, by: Sequence[str] = ("model",), threshold_mm: float | None = None
) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof 1) and count over the seeds of ``metric``, indexed by ``by``.

    Columns ``mean``, ``std`` (NaN for a single seed) and ``seeds``. A group with
    one row is its value unchanged; two rows of one group with the same seed (or
    both without one) are an error, as in :func:`metric_values`. The index keeps
    the rows' order.
    """
    selected = _selected(rows, metric, unit, threshold_mm)
    by = list(by)
    _refuse_duplicates(selected, metric, by, seeds=True)
    grouped = selected.groupby(by, sort=False)["value"]
    stats = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "seeds": grouped.count()})
    if len(by) == 1:  # a plain index named like metric_values's, whatever groupby made of a one-key list
        stats.index = pd.Index(stats.index.get_level_values(0), name=by[0])
    return stats.astype({"mean": float, "std": float, "seeds": int})


_STD = " std ("


def std_header(header: str) -> str:
    """Header of the standard-deviation companion of a numeric column: "Mean error (mm)" -> "Mean error std (mm)"."""
    stem, _, unit = header.rpartition(" (")
    return f"{stem}{_STD}{unit}"


def _fold_std(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """(table without its std companions, header -> its companion's values) for rendering "mean +- std"."""
    companions = {header: table[std_header(str(header))] for header in table.columns
                  if _STD not in str(header) and column_rule(str(header)) and std_header(str(header)) in table.columns}
    dropped = [std_header(str(header)) for header in companions]
    return table.drop(columns=dropped), companions


def _with_std(value: float, std: float, decimals: int, pm: str) -> str:
    text = f"{value:.{decimals}f}"
    return text if pd.isna(std) else f"{text}{pm}{std:.{decimals}f}"


def _frames_texts(rows: pd.DataFrame) -> dict[str, str]:
    """Scored frames per model: the ``frames`` note of its mean_error row, else of any row, else its ``n``."""
    notes = _first_texts(rows, "frames")
    counts = _ranked(rows).dropna(subset=["n"]).groupby("model", sort=False)["n"].first()
    return {model: note or (str(int(counts[model])) if model in counts.index else "") for model, note in notes.items()}


def _ranked(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the mean_error rows first, each part in its order."""
    return rows.assign(rank=np.where(rows["metric"] == "mean_error", 0, 1)).sort_values("rank", kind="mergesort")


def _cost_label(cost: _Cost, config: dict[str, object], varying: set[str]) -> str:
    parts = [cost.stem]
    for field in cost.config:
        value = config[field]
        if field == "counter" and value:
            parts.append(str(value))  # counters always named: thop and an exact count differ
        elif field in varying and value not in ("", None) and not pd.isna(value):
            parts.append(f"batch {value}" if field == "batch" else plural(int(value), "thread") if field == "threads"
                         else str(value))
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
    When a method has several seeds, its error columns hold the mean over seeds,
    each followed by its sample standard deviation (:func:`std_header`; NaN for a
    single seed), and a Seeds column after Frames counts them.
    """
    rows = results[results["dataset"] == dataset]
    if rows.empty:
        present = sorted({name for name in results["dataset"] if name})
        raise ValueError(
            f"no results rows for dataset {dataset!r}; datasets present: {', '.join(present) or 'none'}"
        )
    models = list(dict.fromkeys(rows["model"]))
    errors: dict[str, tuple[pd.DataFrame, float]] = {
        "Mean error (mm)": (seed_statistics(rows, "mean_error", unit="mm"), 1.0)
    }
    for threshold in SR_THRESHOLDS_MM:
        curve = seed_statistics(rows, "success_rate_max", unit="fraction", threshold_mm=threshold)
        errors[f"SR@{threshold:g}mm (%)"] = (curve, 100.0)
    errors["AUC 0-80mm (%)"] = (seed_statistics(rows, "auc_max", unit="fraction"), 100.0)
    several = any((stats["seeds"] > 1).any() for stats, _ in errors.values())
    columns: dict[str, pd.Series] = {}
    for header, (stats, scale) in errors.items():
        columns[header] = scale * stats["mean"]
        if several:
            columns[std_header(header)] = scale * stats["std"]
    columns["Frames"] = pd.Series(_frames_texts(rows), dtype=object)
    if several:
        counts = errors["Mean error (mm)"][0]["seeds"]
        columns["Seeds"] = pd.Series({model: str(count) for model, count in counts.items()}, dtype=object)
    columns.update(_cost_columns(results, dataset, models))
    table = pd.DataFrame({"Method": _display_names(models)})
    for header, values in columns.items():
        values = values.reindex(models)
        table[header] = values.fillna("").to_numpy() if header == "Seeds" else values.to_numpy()
    table["Model"] = models
    for header, field in (("Protocol", "protocol"), ("Schedule", "schedule")):
        texts = _first_texts(rows, field)
        if any(texts.values()):
            table[header] = [texts.get(model, "") for model in models]
    table = table.sort_values(["Mean error (mm)", "Method"], na_position="last", kind="mergesort")
    return table.reset_index(drop=True)


def _display_names(models: Sequence[str]) -> list[str]:
    """Display names of ``models`` (:func:`~hpbench.report.names.display_name`); where two would read
    the same, those keep their own names."""
    shown = [display_name(model) for model in models]
    counts = pd.Series(shown).value_counts()
    return [name if counts[name] == 1 else model for name, model in zip(shown, models, strict=True)]


def _first_texts(rows: pd.DataFrame, field: str) -> dict[str, str]:
    """Per model, the first non-empty ``field`` of its rows (mean_error rows first); {} without the column."""
    if field not in rows.columns:
        return {}
    ranked = _ranked(rows)
    text = ranked[field].astype(str).to_numpy()
    keep = ranked[field].notna().to_numpy() & (text != "")
    found = pd.Series(text[keep]).groupby(ranked["model"].to_numpy()[keep], sort=False).first()
    return {str(model): found[model] if model in found.index else "" for model in ranked["model"].dropna().unique()}


def table_notes(results: pd.DataFrame, *, dataset: str) -> list[str]:
    """Plain-text notes under a summary table: how each latency column was measured (device, threads,
    dtype, batch, torch version, timing method), from the latency rows of ``dataset`` or of no dataset."""
    rows = results[(results["metric"] == "latency_median") & results["dataset"].isin([dataset, ""])]
    notes = []
    fields = ["device", "runtime", "threads", "dtype", "batch", "torch", "counter"]
    for values in dict.fromkeys(rows.reindex(columns=fields).fillna("").astype(str)
                                .itertuples(index=False, name=None)):
        device, runtime, threads, dtype, batch, torch, method = values
        parts = [device or "unknown device"] + ([runtime] if runtime else [])
        parts += [plural(int(threads), "thread")] if threads not in ("", "<NA>", "nan") else ["threads not recorded"]
        parts += [text for text in (dtype, f"batch {batch}" if batch not in ("", "<NA>", "nan") else "",
                                    f"torch {torch}" if torch else "", method) if text]
        notes.append("Latency (ms): median on " + ", ".join(parts) + ".")
    return notes


def visible(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without its :data:`META_COLUMNS` (what LaTeX, Markdown and a terminal show)."""
    return table.drop(columns=[header for header in META_COLUMNS if header in table.columns])


def row_marks(table: pd.DataFrame, *, dagger: str = "†") -> tuple[list[list[str]], list[str]]:
    """(marks per row, legend lines): a letter per protocol in order of appearance, ``dagger`` on rows
    trained on the smoke schedule; the legend explains each mark once. No meta columns: no marks."""
    protocols = table["Protocol"] if "Protocol" in table.columns else pd.Series("", index=table.index)
    schedules = table["Schedule"] if "Schedule" in table.columns else pd.Series("", index=table.index)
    letters: dict[str, str] = {}
    marks: list[list[str]] = []
    for protocol, schedule in zip(protocols, schedules, strict=True):
        mine = []
        if protocol:
            mine.append(letters.setdefault(str(protocol), chr(ord("a") + len(letters))))
        if schedule == QUICK:
            mine.append(dagger)
        marks.append(mine)
    legend = [f"{letter}: protocol {protocol}" for protocol, letter in letters.items()]
    if any(dagger in mine for mine in marks):
        legend.append(f"{dagger}: smoke schedule (hpbench run --quick), a pipeline check, not a ranking; "
                      "never bold")
    return marks, legend


def best_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame: True where a cell holds its column's unique best value at display precision.

    A tie for best bolds nothing. Reference models (a floor such as the mean pose) and rows
    trained on the smoke schedule are never best (read from the Model and Schedule columns when
    present); standard-deviation companions (:func:`std_header`) neither: the mean decides.
    """
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    eligible = np.ones(len(table), dtype=bool)
    if "Model" in table.columns:
        eligible &= ~np.array([is_reference(str(model)) for model in table["Model"]], dtype=bool)
    if "Schedule" in table.columns:
        eligible &= (table["Schedule"] != QUICK).to_numpy(dtype=bool)
    for header in table.columns:
        rule = column_rule(str(header))
        if rule is None or _STD in str(header):
            continue
        decimals, better = rule
        shown = pd.to_numeric(table[header], errors="coerce").round(decimals).where(eligible)
        if shown.notna().any():
            target = shown.min() if better == "min" else shown.max()
            winners = (shown == target).fillna(False).to_numpy(dtype=bool)
            best[header] = winners if winners.sum() == 1 else False
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


def _rendered(
    table: pd.DataFrame, best: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.Series], list[list[str]], list[str]]:
    """(visible table without std companions, its bold cells (none unless ``best``), std companions, row marks,
    mark legend)."""
    table = table.reset_index(drop=True)
    bold = best_cells(table) if best else pd.DataFrame(False, index=table.index, columns=table.columns)
    marks, legend = row_marks(table)
    shown, stds = _fold_std(visible(table))
    return shown, bold[shown.columns], stds, marks, legend


def _latex_marks(marks: list[str]) -> str:
    return "\\textsuperscript{" + ",".join(marks).replace("†", "\\dag{}") + "}" if marks else ""


def latex_footer(lines: Sequence[str], columns: int) -> str:
    """Lines of small text under a tabular's bottom rule, each spanning its ``columns`` (LaTeX-escaped; † as \\dag)."""
    spans = (latex_escape(line).replace("†", r"\dag{}") for line in lines)
    return "".join(rf"\multicolumn{{{columns}}}{{@{{}}l}}{{\footnotesize {span}}} \\" + "\n" for span in spans)


def latex_cells(table: pd.DataFrame, *, best: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(LaTeX-ready cells of a summary table's visible columns: strings rounded at display precision,
    None where missing, method names escaped and marked; its bold cells (none unless ``best``); the marks'
    legend)."""
    shown, bold, stds, marks, legend = _rendered(table, best)
    cells = pd.DataFrame(index=shown.index, columns=shown.columns, dtype=object)
    for header in shown.columns:
        rule = column_rule(str(header))
        values = shown[header]
        if rule is None:
            cells[header] = [None if pd.isna(value) else latex_escape(str(value)) for value in values]
        else:
            std = stds.get(header, pd.Series(float("nan"), index=shown.index))
            cells[header] = [None if pd.isna(value) else _with_std(value, deviation, rule[0], r" $\pm$ ")
                             for value, deviation in zip(values, std, strict=True)]
    cells["Method"] = [str(name) + _latex_marks(mine) for name, mine in zip(cells["Method"], marks, strict=True)]
    return cells, bold, legend


def latex_table(table: pd.DataFrame, *, dataset: str, notes: Sequence[str] = (), best: bool = True) -> str:
    """A booktabs tabular of a summary table (unique best values bold), ready to ``\\input``.

    Built with pandas' Styler; text and headers are LaTeX-escaped (``_``, ``&``,
    ``%``...). Needs ``\\usepackage{booktabs}`` in the including document. A
    column with a std companion shows "mean $\\pm$ std". Rows carry protocol letters and a
    dagger for the smoke schedule (:func:`row_marks`); their legend and ``notes`` (e.g.
    :func:`table_notes`) follow the bottom rule in small type.
    """
    from hpbench import __version__

    table, bold, stds, marks, legend = _rendered(table, best)
    rules = {header: column_rule(str(header)) for header in table.columns}
    # text columns escaped by latex_escape: pandas' escape="latex" leaves |, < and > (wrong glyphs in OT1)
    formatters = {
        header: latex_escape if rule is None else _formatter(rule[0]) for header, rule in rules.items()
    }
    table["Method"] = [latex_escape(str(name)) + _latex_marks(mine) for name, mine in zip(table["Method"], marks)]
    formatters["Method"] = str
    for header, std in stds.items():
        decimals = rules[header][0]  # type: ignore[index]
        table[header] = [None if pd.isna(value) else _with_std(value, deviation, decimals, r" $\pm$ ")
                         for value, deviation in zip(table[header], std, strict=True)]
        formatters[header] = str
    css = pd.DataFrame(np.where(bold.to_numpy(), "textbf: --rwrap;", ""), index=table.index, columns=table.columns)
    styler = (
        table.style.hide(axis="index")
        .format(formatters, na_rep="--")
        .format_index(lambda header: latex_escape(str(header)), axis=1)
        .apply(lambda _: css, axis=None)
    )
    column_format = "".join("l" if rules[header] is None else "r" for header in table.columns)
    body = styler.to_latex(hrules=True, column_format=column_format)
    footer = latex_footer([*legend, *notes], len(table.columns))
    body = body.replace("\\bottomrule\n", "\\bottomrule\n" + footer, 1)
    comment = (
        f"% Generated by hpbench {__version__} from results rows: dataset {dataset}, {plural(len(table), 'method')}.\n"
        "% A tabular only: \\input it inside a table environment; needs \\usepackage{booktabs}.\n"
    )
    if stds:
        comment += "% mean $\\pm$ sample standard deviation over seeds (the Seeds column counts them).\n"
    return comment + body


_MARKDOWN_SPECIAL = "\\`*_[]<>|$~"  # $ starts math and ~ strikes through on GitHub


def _markdown_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in _MARKDOWN_SPECIAL else char for char in text)


def markdown_table(table: pd.DataFrame, *, notes: Sequence[str] = (), best: bool = True) -> str:
    """A pipe table of a summary table: numbers right-aligned and rounded, unique best values in **bold**
    (with ``best``).

    A column with a std companion shows "mean ± std", and a note under the table says so.
    Protocol letters and the smoke-schedule dagger (:func:`row_marks`) follow method names in
    ``<sup>``; their legend and ``notes`` follow the table.
    """
    table, bold, stds, marks, legend = _rendered(table, best)
    rules = [column_rule(str(header)) for header in table.columns]
    header = [_markdown_escape(str(name)) for name in table.columns]
    body: list[list[str]] = []
    for row_index in range(len(table)):
        cells = []
        for column_index, rule in enumerate(rules):
            value = table.iat[row_index, column_index]
            if rule is None:
                text = _markdown_escape("" if pd.isna(value) else str(value))
                if column_index == 0 and marks[row_index]:
                    text += f"<sup>{','.join(marks[row_index])}</sup>"
            elif pd.isna(value):
                text = "-"
            elif table.columns[column_index] in stds:
                text = _with_std(value, stds[table.columns[column_index]].iat[row_index], rule[0], " ± ")
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
    below = ["Mean ± sample standard deviation over seeds (Seeds: how many)."] if stds else []
    below += [_markdown_escape(text) for text in [*legend, *notes]]
    note = ["", *(text + "  " for text in below[:-1]), *below[-1:]] if below else []
    return "\n".join([line(header), separator, *(line(cells) for cells in body), *note]) + "\n"


def plain_cells(table: pd.DataFrame) -> tuple[list[str], list[bool], list[list[str]]]:
    """A summary table as plain text for a terminal: headers, which columns are numbers, and rows of cells
    rounded as in :func:`markdown_table` ("mean ± std" where a std companion exists, "-" when missing).
    Method names carry their marks in brackets (:func:`row_marks` gives the legend)."""
    marks, _ = row_marks(table.reset_index(drop=True))
    table, stds = _fold_std(visible(table.reset_index(drop=True)))
    rules = [column_rule(str(header)) for header in table.columns]
    rows = []
    for row_index in range(len(table)):
        cells = []
        for header, rule, value in zip(table.columns, rules, table.iloc[row_index], strict=True):
            if rule is None:
                cells.append("" if pd.isna(value) else str(value))
            elif pd.isna(value):
                cells.append("-")
            else:
                std = stds[header].iat[row_index] if header in stds else float("nan")
                cells.append(_with_std(value, std, rule[0], " ± "))
        if marks[row_index]:
            cells[0] += f" [{','.join(marks[row_index])}]"
        rows.append(cells)
    return [str(header) for header in table.columns], [rule is not None for rule in rules], rows
